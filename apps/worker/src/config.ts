import { ConfigError, crashPointsVar, datasourcesVar, installationVar, intVar, logLevelVar, unleashVar, urlVar, webhookSecretVar, webhookUrlsVar, type UnleashSettings } from '@tideway/engine';

export { ConfigError };

/** The worker's configuration; the only module that reads `process.env`. */
export interface WorkerConfig {
  /** @defaultValue 'postgres://postgres@127.0.0.1:5432/tideway' (`TIDEWAY_DATABASE_URL`) */
  readonly databaseUrl: string;
  /** @defaultValue 'redis://127.0.0.1:6379' (`TIDEWAY_REDIS_URL`) */
  readonly redisUrl: string;
  /** @defaultValue '{tideway}' (`TIDEWAY_REDIS_PREFIX`) */
  readonly redisPrefix: string;
  /** Datasource name → URL (`TIDEWAY_DATASOURCES`, JSON). */
  readonly datasources: Readonly<Record<string, string>>;
  /** Jobs this process runs at once. 1 keeps "at most one chunk redone per killed worker". @defaultValue 1 (`TIDEWAY_WORKER_CONCURRENCY`) */
  readonly concurrency: number;
  /** Chunks in flight per datasource across all migrations. @defaultValue 4 (`TIDEWAY_DATASOURCE_CONCURRENCY`) */
  readonly datasourceConcurrency: number;
  /** How often the reconciler re-creates lost work from PostgreSQL, milliseconds. @defaultValue 2000 (`TIDEWAY_RECONCILE_INTERVAL_MS`) */
  readonly reconcileIntervalMs: number;
  /** @defaultValue `<hostname>:<pid>` (`TIDEWAY_WORKER_NAME`) */
  readonly workerName: string | null;
  /** How often the abort criteria are judged, milliseconds. @defaultValue 10000 (`TIDEWAY_EVALUATION_INTERVAL_MS`) */
  readonly evaluationIntervalMs: number;
  /** The flag server (`TIDEWAY_UNLEASH_URL`, `_ADMIN_TOKEN`, `_PROJECT` default `default`, `_ENVIRONMENT` default `development`); `null` when `TIDEWAY_UNLEASH_URL=off`. @defaultValue http://127.0.0.1:4242 */
  readonly unleash: UnleashSettings | null;
  /** Webhook receivers (`TIDEWAY_WEBHOOK_URLS`, comma-separated). @defaultValue [] */
  readonly webhookUrls: readonly string[];
  /**
   * HMAC key of `X-Tideway-Signature` (`TIDEWAY_WEBHOOK_SECRET`); required when `TIDEWAY_WEBHOOK_URLS`
   * is set, `null` otherwise (a webhook job then fails without retry). No default.
   */
  readonly webhookSecret: string | null;
  /** @defaultValue 'info' (`TIDEWAY_LOG_LEVEL`) */
  readonly logLevel: string;
  /** Installation id marking what Tideway creates outside its database (`TIDEWAY_INSTALLATION`); `null` reads it from the orchestrator database. */
  readonly installation: string | null;
  /** Crash points for fault tests only (`TIDEWAY_FAULT_CRASH_AT`). @defaultValue null */
  readonly crashPoints: string | null;
}

/** Reads and checks the configuration. @throws ConfigError naming the first bad variable. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const webhookUrls = webhookUrlsVar(env);
  return Object.freeze({
    databaseUrl: urlVar(env, 'TIDEWAY_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/tideway', ['postgres:', 'postgresql:']),
    redisUrl: urlVar(env, 'TIDEWAY_REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    redisPrefix: env['TIDEWAY_REDIS_PREFIX'] || '{tideway}',
    datasources: datasourcesVar(env),
    concurrency: intVar(env, 'TIDEWAY_WORKER_CONCURRENCY', 1, 1, 64),
    datasourceConcurrency: intVar(env, 'TIDEWAY_DATASOURCE_CONCURRENCY', 4, 1, 256),
    reconcileIntervalMs: intVar(env, 'TIDEWAY_RECONCILE_INTERVAL_MS', 2000, 50, 600_000),
    workerName: env['TIDEWAY_WORKER_NAME'] || null,
    evaluationIntervalMs: intVar(env, 'TIDEWAY_EVALUATION_INTERVAL_MS', 10_000, 100, 3_600_000),
    unleash: unleashVar(env),
    webhookUrls,
    webhookSecret: webhookSecretVar(env, webhookUrls),
    logLevel: logLevelVar(env),
    installation: installationVar(env),
    crashPoints: crashPointsVar(env),
  });
}
