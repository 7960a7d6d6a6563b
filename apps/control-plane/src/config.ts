import { ConfigError, crashPointsVar, datasourcesVar, installationVar, intVar, logLevelVar, unleashVar, urlVar, webhookSecretVar, webhookUrlsVar, type UnleashSettings } from '@tideway/engine';

export { ConfigError };

/**
 * The control plane's configuration: the only module that reads `process.env`. Parsed and checked
 * once at boot, frozen, and passed down.
 */
export interface ControlPlaneConfig {
  /** @defaultValue '127.0.0.1' (`TIDEWAY_HOST`) */
  readonly host: string;
  /** @defaultValue 7070 (`TIDEWAY_PORT`) */
  readonly port: number;
  /** Orchestrator database. @defaultValue 'postgres://postgres@127.0.0.1:5432/tideway' (`TIDEWAY_DATABASE_URL`) */
  readonly databaseUrl: string;
  /** @defaultValue 'redis://127.0.0.1:6379' (`TIDEWAY_REDIS_URL`) */
  readonly redisUrl: string;
  /** Key prefix of every Redis key, hash-tagged for Redis Cluster. @defaultValue '{tideway}' (`TIDEWAY_REDIS_PREFIX`) */
  readonly redisPrefix: string;
  /** Datasource name → connection string (`TIDEWAY_DATASOURCES`, a JSON object). @defaultValue {} */
  readonly datasources: Readonly<Record<string, string>>;
  /** Secret of the bootstrap admin token (`TIDEWAY_ADMIN_TOKEN`); `null` disables it. */
  readonly adminToken: string | null;
  /** pino level, or 'silent'. @defaultValue 'info' (`TIDEWAY_LOG_LEVEL`) */
  readonly logLevel: string;
  /** The flag server (`TIDEWAY_UNLEASH_URL`, `_ADMIN_TOKEN`, `_PROJECT` default `default`, `_ENVIRONMENT` default `development`); `null` when `TIDEWAY_UNLEASH_URL=off`. @defaultValue http://127.0.0.1:4242 */
  readonly unleash: UnleashSettings | null;
  /**
   * Webhook receivers (`TIDEWAY_WEBHOOK_URLS`, comma-separated). @defaultValue []
   * Setting them without `TIDEWAY_WEBHOOK_SECRET` (which the workers sign with) is refused at boot.
   */
  readonly webhookUrls: readonly string[];
  /** Largest accepted request body, bytes. @defaultValue 1048576 (`TIDEWAY_BODY_LIMIT_BYTES`) */
  readonly bodyLimitBytes: number;
  /** Installation id marking what Tideway creates outside its database (`TIDEWAY_INSTALLATION`); `null` reads it from the orchestrator database. */
  readonly installation: string | null;
  /** Crash points for fault tests only (`TIDEWAY_FAULT_CRASH_AT`). @defaultValue null */
  readonly crashPoints: string | null;
}

/**
 * Reads and checks the configuration.
 * @throws ConfigError naming the first bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ControlPlaneConfig {
  const logLevel = logLevelVar(env);
  const adminToken = env['TIDEWAY_ADMIN_TOKEN'] || null;
  if (adminToken !== null && adminToken.length < 16) throw new ConfigError('TIDEWAY_ADMIN_TOKEN must be at least 16 characters');
  const redisPrefix = env['TIDEWAY_REDIS_PREFIX'] || '{tideway}';
  const webhookUrls = webhookUrlsVar(env);
  // The control plane only enqueues deliveries; workers sign them. Refusing here too means a
  // deployment never runs with webhooks that some process cannot sign.
  webhookSecretVar(env, webhookUrls);
  return Object.freeze({
    host: env['TIDEWAY_HOST'] || '127.0.0.1',
    port: intVar(env, 'TIDEWAY_PORT', 7070, 0, 65535),
    databaseUrl: urlVar(env, 'TIDEWAY_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/tideway', ['postgres:', 'postgresql:']),
    redisUrl: urlVar(env, 'TIDEWAY_REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    redisPrefix,
    datasources: datasourcesVar(env),
    adminToken,
    logLevel,
    unleash: unleashVar(env),
    webhookUrls,
    bodyLimitBytes: intVar(env, 'TIDEWAY_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    installation: installationVar(env),
    crashPoints: crashPointsVar(env),
  });
}
