import type pg from 'pg';
import { createPool } from '@tideway/db';
import { DependencyUnavailableError } from '@tideway/core';

/**
 * The `search_path` of every Tideway connection to a datasource: built-ins only, then the session's
 * temporary schema. Names in generated SQL are schema-qualified; an unqualified function, operator
 * or type in a mapping resolves to pg_catalog whatever the database's or role's own `search_path`
 * says (`ALTER DATABASE … SET search_path = public, pg_catalog` cannot put a shadowing
 * `public.lower` in front). `format_type` then qualifies every other type (`public.mood`).
 */
export const DATASOURCE_SEARCH_PATH = 'pg_catalog,pg_temp';

/**
 * The setting that tells the trigger sync (ADR 009) a write is the sync's own: its function returns
 * at once when it reads `on`. The sync sets it locally while it writes the other table; every
 * Tideway connection to a datasource has it `on` for the whole session ({@link DatasourceRegistry}),
 * so what Tideway itself writes — chunks, the purge of a re-run, re-drives, repairs, the tombstone
 * sweep — is never synced to the other table. (A chunk written into the target while the reverse sync
 * of a rollback's grace was still installed went back into the source as the chunk's snapshot,
 * and the purge of a re-run deleted the source's rows through it.)
 */
export const SYNCING_SETTING = 'tideway.syncing';

/** Statement timeout of the latency guard's probe connections, milliseconds: a probe slower than this is a failed probe. */
export const PROBE_STATEMENT_TIMEOUT_MS = 2000;

/** The pools a datasource has: the shared one, and the latency guard's two probe connections. */
type PoolKind = 'shared' | 'probe' | 'commit-probe';

/**
 * The user databases Tideway may touch, by name. Datasources are server configuration only (a name
 * → a connection string); specs refer to them by name and never carry credentials. Every connection
 * runs with `search_path = pg_catalog, pg_temp` ({@link DATASOURCE_SEARCH_PATH}) and with
 * {@link SYNCING_SETTING} on: no write Tideway makes is taken for an application's by a sync trigger.
 */
export class DatasourceRegistry {
  readonly #urls: ReadonlyMap<string, string>;
  /** Pools by kind and datasource name. */
  readonly #pools = new Map<string, pg.Pool>();
  readonly #poolSize: number;

  /**
   * @param urls - datasource name → `postgres://…` connection string.
   * @param poolSize - connections per datasource pool. @defaultValue 4
   */
  constructor(urls: Readonly<Record<string, string>>, poolSize = 4) {
    this.#urls = new Map(Object.entries(urls));
    this.#poolSize = poolSize;
  }

  /** The configured names, sorted. */
  names(): string[] {
    return [...this.#urls.keys()].sort();
  }

  has(name: string): boolean {
    return this.#urls.has(name);
  }

  /**
   * The shared pool of a datasource, created on first use.
   * @throws Error when the name is not configured (callers check {@link has} first).
   */
  pool(name: string): pg.Pool {
    return this.#poolFor(name, 'shared', { max: this.#poolSize, applicationName: `tideway:${name}` });
  }

  /**
   * The latency guard's probe pool of a datasource: one connection of its own (application_name
   * `tideway-probe:<name>`, statement timeout 2 s, every transaction read-only), so a probe never
   * waits behind a chunk for a connection, measures only what production would wait for, and cannot
   * write.
   * @throws Error when the name is not configured.
   */
  probePool(name: string): pg.Pool {
    return this.#poolFor(name, 'probe', { max: 1, applicationName: `tideway-probe:${name}`, statementTimeoutMs: PROBE_STATEMENT_TIMEOUT_MS, readOnly: true });
  }

  /**
   * The latency guard's commit-probe pool of a datasource: one connection of its own
   * (`tideway-probe-commit:<name>`, statement timeout 2 s) that runs only the fixed commit probe.
   * @throws Error when the name is not configured.
   */
  commitProbePool(name: string): pg.Pool {
    return this.#poolFor(name, 'commit-probe', { max: 1, applicationName: `tideway-probe-commit:${name}`, statementTimeoutMs: PROBE_STATEMENT_TIMEOUT_MS });
  }

  /** The pool of `kind` for datasource `name`, created on first use with `options` (always with {@link DATASOURCE_SEARCH_PATH} and {@link SYNCING_SETTING} on). */
  #poolFor(name: string, kind: PoolKind, options: { max: number; applicationName: string; statementTimeoutMs?: number; readOnly?: boolean }): pg.Pool {
    const id = `${kind}\u0000${name}`;
    const existing = this.#pools.get(id);
    if (existing) return existing;
    const url = this.#urls.get(name);
    if (!url) throw new Error(`datasource "${name}" is not configured`);
    const pool = createPool({ connectionString: url, searchPath: DATASOURCE_SEARCH_PATH, settings: { [SYNCING_SETTING]: 'on' }, ...options });
    this.#pools.set(id, pool);
    return pool;
  }

  /**
   * Runs `fn` with a client of the datasource.
   * @throws DependencyUnavailableError when no connection can be made.
   */
  async withClient<T>(name: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool(name).connect();
    } catch (error) {
      throw new DependencyUnavailableError(`datasource "${name}"`, 'cannot connect', { cause: error });
    }
    try {
      return await fn(client);
    } finally {
      client.release();
    }
  }

  /** Ends every pool. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.end()));
  }
}
