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
  /** Largest accepted request body, bytes. @defaultValue 1048576 (`TIDEWAY_BODY_LIMIT_BYTES`) */
  readonly bodyLimitBytes: number;
}

/** A configuration value that cannot be used; the message names the variable. */
export class ConfigError extends Error {}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const SLUG = /^[a-z][a-z0-9_-]{0,62}$/;

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return value;
}

function url(env: NodeJS.ProcessEnv, name: string, fallback: string, protocols: string[]): string {
  const raw = env[name] || fallback;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
  return raw;
}

function datasources(env: NodeJS.ProcessEnv): Record<string, string> {
  const raw = env['TIDEWAY_DATASOURCES'];
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('TIDEWAY_DATASOURCES must be a JSON object {"name":"postgres://…"}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError('TIDEWAY_DATASOURCES must be a JSON object');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (!SLUG.test(name)) throw new ConfigError(`TIDEWAY_DATASOURCES: "${name}" is not a slug (a-z, 0-9, _ and -)`);
    if (typeof value !== 'string' || !/^postgres(ql)?:\/\//.test(value)) throw new ConfigError(`TIDEWAY_DATASOURCES.${name} must be a postgres:// URL`);
    out[name] = value;
  }
  return out;
}

/**
 * Reads and checks the configuration.
 * @throws ConfigError naming the first bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ControlPlaneConfig {
  const logLevel = env['TIDEWAY_LOG_LEVEL'] || 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`TIDEWAY_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const adminToken = env['TIDEWAY_ADMIN_TOKEN'] || null;
  if (adminToken !== null && adminToken.length < 16) throw new ConfigError('TIDEWAY_ADMIN_TOKEN must be at least 16 characters');
  const redisPrefix = env['TIDEWAY_REDIS_PREFIX'] || '{tideway}';
  return Object.freeze({
    host: env['TIDEWAY_HOST'] || '127.0.0.1',
    port: int(env, 'TIDEWAY_PORT', 7070, 0, 65535),
    databaseUrl: url(env, 'TIDEWAY_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/tideway', ['postgres:', 'postgresql:']),
    redisUrl: url(env, 'TIDEWAY_REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    redisPrefix,
    datasources: Object.freeze(datasources(env)),
    adminToken,
    logLevel,
    bodyLimitBytes: int(env, 'TIDEWAY_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
  });
}
