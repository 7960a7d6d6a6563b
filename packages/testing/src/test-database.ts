import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, migrateToLatest, type Database } from '@tideway/db';
import type { Kysely } from 'kysely';

/** Where the test server's maintenance database is; override with `TIDEWAY_PG_ADMIN_URL`. */
export const PG_ADMIN_URL = process.env['TIDEWAY_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database made for one test file; `drop()` removes it (and ends every session on it). */
export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** A plain client on the database, for arranging and asserting in tests. Closed by `drop()`. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

function urlFor(name: string, adminUrl = PG_ADMIN_URL): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>, adminUrl = PG_ADMIN_URL): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  // A dropped connection is the query's error, not an uncaught 'error' event.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates an empty database with a unique name (`tw_<label>_<random>`) on the local server.
 *
 * @param label - lower-case letters, digits and `_`; part of the name to tell databases apart.
 * @param adminUrl - the maintenance database of the server to create it on (a private cluster's
 *   `url`). @defaultValue {@link PG_ADMIN_URL}
 * @example
 * ```ts
 * const userDb = await createTestDatabase('orders');
 * await userDb.query('create table orders (id bigint primary key)');
 * await userDb.drop();
 * ```
 */
export async function createTestDatabase(label: string, adminUrl = PG_ADMIN_URL): Promise<TestDatabase> {
  if (!/^[a-z0-9_]{1,30}$/.test(label)) throw new Error(`bad test database label "${label}"`);
  const name = `tw_${label}_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE "${name}"`), adminUrl);
  const url = urlFor(name, adminUrl);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // DROP DATABASE … WITH (FORCE) terminates sessions that may still be closing; never crash on it.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    query: (text, values) => pool.query(text, values),
    drop: async () => {
      await pool.end();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`), adminUrl);
    },
  };
}

/** A fresh orchestrator database with the schema migrated, plus a Kysely handle on it. */
export interface OrchestratorTestDatabase extends TestDatabase {
  readonly db: Kysely<Database>;
}

/**
 * Creates a fresh orchestrator database and applies every schema migration.
 * `drop()` destroys the Kysely handle and the database.
 */
export async function createOrchestratorTestDatabase(label = 'orch'): Promise<OrchestratorTestDatabase> {
  const base = await createTestDatabase(label);
  const db = createDb({ connectionString: base.url, max: 4 });
  await migrateToLatest(db);
  return {
    ...base,
    db,
    drop: async () => {
      await db.destroy();
      await base.drop();
    },
  };
}
