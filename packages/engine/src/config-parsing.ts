/**
 * Parsers for the environment values both apps read. Each app's `config.ts` stays the only reader
 * of `process.env`; these only check values handed to them.
 */

/** A configuration value that cannot be used; the message names the variable. */
export class ConfigError extends Error {}

/** An integer variable in [min, max], or `fallback` when unset. @throws ConfigError */
export function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return value;
}

/** A URL variable with one of `protocols` (`'postgres:'`), or `fallback` when unset. @throws ConfigError */
export function urlVar(env: NodeJS.ProcessEnv, name: string, fallback: string, protocols: string[]): string {
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

const SLUG = /^[a-z][a-z0-9_-]{0,62}$/;

/**
 * `TIDEWAY_DATASOURCES`: a JSON object of datasource name (slug) → `postgres://` URL.
 * @throws ConfigError naming the bad entry.
 */
export function datasourcesVar(env: NodeJS.ProcessEnv, name = 'TIDEWAY_DATASOURCES'): Readonly<Record<string, string>> {
  const raw = env[name];
  if (!raw) return Object.freeze({});
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(`${name} must be a JSON object {"name":"postgres://…"}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${name} must be a JSON object`);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!SLUG.test(key)) throw new ConfigError(`${name}: "${key}" is not a slug (a-z, 0-9, _ and -)`);
    if (typeof value !== 'string' || !/^postgres(ql)?:\/\//.test(value)) throw new ConfigError(`${name}.${key} must be a postgres:// URL`);
    out[key] = value;
  }
  return Object.freeze(out);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A pino level or `silent`. @throws ConfigError */
export function logLevelVar(env: NodeJS.ProcessEnv, name = 'TIDEWAY_LOG_LEVEL', fallback = 'info'): string {
  const level = env[name] || fallback;
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`${name} must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** `TIDEWAY_WEBHOOK_URLS`: comma-separated http(s) URLs. @throws ConfigError naming the bad one. */
export function webhookUrlsVar(env: NodeJS.ProcessEnv, name = 'TIDEWAY_WEBHOOK_URLS'): readonly string[] {
  const raw = env[name];
  if (!raw) return Object.freeze([]);
  const urls = raw.split(',').map((u) => u.trim()).filter(Boolean);
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new ConfigError(`${name}: "${u}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(`${name}: "${u}" must be http or https`);
  }
  return Object.freeze(urls);
}

/**
 * `TIDEWAY_WEBHOOK_SECRET`, the HMAC-SHA256 key of `X-Tideway-Signature`: `null` when unset. There is
 * no default: a published default key would let anyone forge signed events.
 *
 * @param urls - the parsed `TIDEWAY_WEBHOOK_URLS` ({@link webhookUrlsVar}).
 * @throws ConfigError naming `TIDEWAY_WEBHOOK_SECRET` when `urls` is not empty and the secret is unset.
 * @example
 * ```ts
 * webhookSecretVar({ TIDEWAY_WEBHOOK_SECRET: 's3cret' }, ['https://hooks.example/t']); // 's3cret'
 * webhookSecretVar({}, []); // null
 * webhookSecretVar({}, ['https://hooks.example/t']); // throws ConfigError
 * ```
 */
export function webhookSecretVar(env: NodeJS.ProcessEnv, urls: readonly string[], name = 'TIDEWAY_WEBHOOK_SECRET'): string | null {
  const secret = env[name] || null;
  if (secret === null && urls.length > 0) {
    throw new ConfigError(`${name} must be set when TIDEWAY_WEBHOOK_URLS is set: it is the HMAC key that signs every webhook (X-Tideway-Signature)`);
  }
  return secret;
}

/** Where and how Tideway drives the flag server (see {@link unleashVar}). */
export interface UnleashSettings {
  /** Base URL (`TIDEWAY_UNLEASH_URL`). @defaultValue `http://127.0.0.1:4242` */
  readonly url: string;
  /** Admin API token (`TIDEWAY_UNLEASH_ADMIN_TOKEN`). @defaultValue the local dev token `*:*.tideway-admin-dev-token` */
  readonly adminToken: string;
  /** Unleash project holding Tideway's flags (`TIDEWAY_UNLEASH_PROJECT`). @defaultValue `'default'` */
  readonly project: string;
  /** Environment whose rollouts Tideway drives and applications read (`TIDEWAY_UNLEASH_ENVIRONMENT`). @defaultValue `'development'` */
  readonly environment: string;
}

/** Unleash project and environment ids: what its URL-friendly names allow, at most 100 characters. */
const UNLEASH_ID = /^[A-Za-z0-9_.~-]{1,100}$/;

/**
 * The flag server: `TIDEWAY_UNLEASH_URL` (`off` disables flags: `null`), `TIDEWAY_UNLEASH_ADMIN_TOKEN`,
 * `TIDEWAY_UNLEASH_PROJECT` (default `default`) and `TIDEWAY_UNLEASH_ENVIRONMENT` (default
 * `development`). The SDK's client token must be for the same project and environment.
 * @throws ConfigError naming the bad variable.
 */
export function unleashVar(env: NodeJS.ProcessEnv): UnleashSettings | null {
  if (env['TIDEWAY_UNLEASH_URL'] === 'off') return null;
  const url = urlVar(env, 'TIDEWAY_UNLEASH_URL', `http://127.0.0.1:${env['TIDEWAY_UNLEASH_PORT'] || 4242}`, ['http:', 'https:']);
  const id = (name: string, fallback: string): string => {
    const value = env[name] || fallback;
    if (!UNLEASH_ID.test(value)) throw new ConfigError(`${name} must be an Unleash id (letters, digits, - _ . ~; at most 100), got "${value}"`);
    return value;
  };
  return {
    url,
    adminToken: env['TIDEWAY_UNLEASH_ADMIN_TOKEN'] || '*:*.tideway-admin-dev-token',
    project: id('TIDEWAY_UNLEASH_PROJECT', 'default'),
    environment: id('TIDEWAY_UNLEASH_ENVIRONMENT', 'development'),
  };
}

/** `TIDEWAY_INSTALLATION`: 1–16 lower-case letters and digits, or `null` when unset (read from the orchestrator database). @throws ConfigError */
export function installationVar(env: NodeJS.ProcessEnv, name = 'TIDEWAY_INSTALLATION'): string | null {
  const raw = env[name];
  if (!raw) return null;
  if (!/^[a-z0-9]{1,16}$/.test(raw)) throw new ConfigError(`${name} must be 1-16 lower-case letters and digits, got "${raw}"`);
  return raw;
}

/** `TIDEWAY_FAULT_CRASH_AT`: crash points for fault tests (comma-separated names), `null` when unset. Never set it in production. */
export function crashPointsVar(env: NodeJS.ProcessEnv, name = 'TIDEWAY_FAULT_CRASH_AT'): string | null {
  return env[name] || null;
}
