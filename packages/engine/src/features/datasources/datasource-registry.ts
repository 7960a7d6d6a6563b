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
 * The user databases Tideway may touch, by name. Datasources are server configuration only (a name
 * → a connection string); specs refer to them by name and never carry credentials. Every connection
 * runs with `search_path = pg_catalog, pg_temp` ({@link DATASOURCE_SEARCH_PATH}).
 */
export class DatasourceRegistry {
  readonly #urls: ReadonlyMap<string, string>;
  readonly #pools = new Map<string, pg.Pool>();
  readonly #probePools = new Map<string, pg.Pool>();
  readonly #commitProbePools = new Map<string, pg.Pool>();
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
    const existing = this.#pools.get(name);
    if (existing) return existing;
    const url = this.#urls.get(name);
    if (!url) throw new Error(`datasource "${name}" is not configured`);
    const pool = createPool({ connectionString: url, max: this.#poolSize, applicationName: `tideway:${name}`, searchPath: DATASOURCE_SEARCH_PATH });
    this.#pools.set(name, pool);
    return pool;
  }

  /**
   * The latency guard's probe pool of a datasource: one connection of its own (application_name
   * `tideway-probe:<name>`, statement timeout 2 s, every transaction read-only), so a probe never
   * waits behind a chunk for a connection, measures only what production would wait for, and cannot
   * write.
   * @throws Error when the name is not configured.
   */
  probePool(name: string): pg.Pool {
    const existing = this.#probePools.get(name);
    if (existing) return existing;
    const url = this.#urls.get(name);
    if (!url) throw new Error(`datasource "${name}" is not configured`);
    const pool = createPool({ connectionString: url, max: 1, applicationName: `tideway-probe:${name}`, searchPath: DATASOURCE_SEARCH_PATH, statementTimeoutMs: 2000, readOnly: true });
    this.#probePools.set(name, pool);
    return pool;
  }

  /**
   * The latency guard's commit-probe pool of a datasource: one connection of its own
   * (`tideway-probe-commit:<name>`, statement timeout 2 s) that runs only the fixed commit probe.
   * @throws Error when the name is not configured.
   */
  commitProbePool(name: string): pg.Pool {
    const existing = this.#commitProbePools.get(name);
    if (existing) return existing;
    const url = this.#urls.get(name);
    if (!url) throw new Error(`datasource "${name}" is not configured`);
    const pool = createPool({ connectionString: url, max: 1, applicationName: `tideway-probe-commit:${name}`, searchPath: DATASOURCE_SEARCH_PATH, statementTimeoutMs: 2000 });
    this.#commitProbePools.set(name, pool);
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
    const pools = [...this.#pools.values(), ...this.#probePools.values(), ...this.#commitProbePools.values()];
    this.#pools.clear();
    this.#probePools.clear();
    this.#commitProbePools.clear();
    await Promise.all(pools.map((p) => p.end()));
  }
}
