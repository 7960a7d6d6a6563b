import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './database.js';

/** Options of {@link createDb} and {@link createPool}. */
export interface DbOptions {
  /** `postgres://user@host:port/database`. */
  readonly connectionString: string;
  /** Pool size. @defaultValue 10 */
  readonly max?: number;
  /** Name shown in pg_stat_activity. @defaultValue 'tideway' */
  readonly applicationName?: string;
  /** Per-statement timeout, milliseconds; 0 for none. @defaultValue 0 */
  readonly statementTimeoutMs?: number;
  /**
   * `search_path` of every session, set at connection time (`options=-c search_path=…`), so no
   * statement runs before it applies; schema names separated by commas, no spaces
   * (`pg_catalog,pg_temp`). @defaultValue the server's (or the role's or database's) setting
   */
  readonly searchPath?: string;
  /** Every transaction read-only (`default_transaction_read_only = on`, set at connection time). @defaultValue false */
  readonly readOnly?: boolean;
  /**
   * Further settings of every session, set at connection time like {@link searchPath}: name →
   * value, names `[a-z_][a-z0-9_]*` with at most one dot (`tideway.syncing`), values
   * `[A-Za-z0-9_]+`. @defaultValue none
   */
  readonly settings?: Readonly<Record<string, string>>;
  /**
   * Longest wait for a connection, milliseconds: to open a new one or for a busy pool to hand one
   * over. A server that is down, hung or unreachable then fails a query within this time (pg-pool's
   * "timeout exceeded when trying to connect") instead of hanging it. 0 waits forever.
   * @defaultValue 5000 ({@link DEFAULT_CONNECTION_TIMEOUT_MS})
   */
  readonly connectionTimeoutMs?: number;
  /**
   * Told when a pooled client fails, idle or checked out (the server restarted, the backend was
   * terminated, the socket was reset). Idle clients are discarded; a checked-out one fails its
   * query and is discarded when released. @defaultValue ignore
   */
  readonly onIdleClientError?: (error: Error) => void;
}

/** Default of {@link DbOptions.connectionTimeoutMs}, milliseconds. */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 5000;

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * Type parsers set on purpose rather than globally: `bigint`/`bigserial` (int8) become JS numbers
 * when they fit in 2^53 − 1 and throw otherwise, so a count is never silently wrong; `numeric`
 * stays a string (exact).
 */
export const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') {
      return (value: string) => {
        const n = Number(value);
        if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${value} does not fit in a JS number`);
        return n;
      };
    }
    if (oid === NUMERIC_OID) return (value: string) => value;
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
} as pg.CustomTypesConfig;

function searchPathOption(searchPath: string): string {
  if (!/^[a-z_][a-z0-9_]*(,[a-z_][a-z0-9_]*)*$/.test(searchPath)) throw new Error(`searchPath must be schema names separated by commas, got "${searchPath}"`);
  return searchPath;
}

/** The libpq `options` string of {@link DbOptions} (`-c name=value …`), or `undefined` when there is nothing to set. */
function sessionOptions(options: DbOptions): string | undefined {
  const parts: string[] = [];
  if (options.searchPath) parts.push(`-c search_path=${searchPathOption(options.searchPath)}`);
  if (options.readOnly) parts.push('-c default_transaction_read_only=on');
  for (const [name, value] of Object.entries(options.settings ?? {})) {
    if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/.test(name)) throw new Error(`setting name must be a plain (optionally dotted) identifier, got "${name}"`);
    if (!/^[A-Za-z0-9_]+$/.test(value)) throw new Error(`setting ${name} must be letters, digits and underscores, got "${value}"`);
    parts.push(`-c ${name}=${value}`);
  }
  return parts.length ? parts.join(' ') : undefined;
}

/**
 * A `pg` pool with Tideway's type parsers, a bounded connection wait, and an error listener on the
 * pool and on every client it opens. The caller ends it (`pool.end()`).
 *
 * Why every client: node-postgres emits `'error'` on a client whose connection dies (a restart
 * sends 57P01 and closes the socket; a reset socket gives ECONNRESET), even while a query is
 * running, and pg-pool listens only while the client is idle. A checked-out client without a
 * listener turns a PostgreSQL restart into an uncaught exception that ends the process. With one,
 * the running query fails with the error (callers retry it as transient, see
 * {@link isConnectionError}) and the broken client is discarded when released.
 *
 * @throws Error when `searchPath` is not a comma-separated list of plain schema names, or a
 *   `settings` name or value is not of its shape.
 */
export function createPool(options: DbOptions): pg.Pool {
  const sessionOptionsText = sessionOptions(options);
  const pool = new pg.Pool({
    ...(sessionOptionsText ? { options: sessionOptionsText } : {}),
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'tideway',
    types: typeParsers,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
    ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
  });
  const onError = options.onIdleClientError ?? (() => undefined);
  pool.on('error', onError);
  pool.on('connect', (client) => {
    client.on('error', onError);
  });
  return pool;
}

/**
 * A Kysely instance on the orchestrator database. Close it with `db.destroy()`.
 *
 * @example
 * ```ts
 * const db = createDb({ connectionString: 'postgres://postgres@127.0.0.1:5432/tideway' });
 * await db.selectFrom('migrations').selectAll().execute();
 * await db.destroy();
 * ```
 */
export function createDb(options: DbOptions): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: createPool(options) }) });
}
