import { createPool } from '@tideway/db';
import { createOrchestratorTestDatabase, createTestDatabase, uniqueRedisPrefix, TEST_REDIS_URL, ordersSpec, unleashTestEnv } from '@tideway/testing';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type pg from 'pg';
import { buildApp, type BuildAppOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';

/** Secret of the bootstrap admin token every harness app accepts (acts as `bootstrap-admin`). */
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** The user tables every harness user database holds. */
const USER_SCHEMA = `
  create table orders (id bigint primary key, total int);
  create table orders_v2 (id bigint primary key, total_cents bigint);
  create table orders_nokey (id bigint, total int);
  create table orders_v2_nullable_unique (id bigint, total_cents bigint);
  create unique index orders_v2_nullable_unique_id on orders_v2_nullable_unique (id);
`;

/** A database of the harness with a client pool for arranging and asserting. */
export interface HarnessDatabase {
  readonly url: string;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** One test file's world: a fresh orchestrator database, a user database, and the app on them. */
export interface Harness {
  readonly app: FastifyInstance;
  readonly orch: HarnessDatabase;
  readonly user: HarnessDatabase;
  close(): Promise<void>;
}

/**
 * Creates a migrated orchestrator database and a user database (`orders`, `orders_v2`, …) named
 * after `label`, and builds the app on them with datasource `main` and the bootstrap admin token.
 *
 * Tests query through pools of their own (`createPool`, which handles errors of idle clients), not
 * through the fixtures' `query`: `drop()` forces the database away while ended clients may still
 * be closing, and a pool without an error listener would turn that into an uncaught exception.
 */
export async function startHarness(label: string, options: BuildAppOptions = {}): Promise<Harness> {
  const [orchDb, userDb] = await Promise.all([createOrchestratorTestDatabase(`${label}_orch`), createTestDatabase(`${label}_user`)]);
  const orchPool = createPool({ connectionString: orchDb.url, max: 3, applicationName: 'tideway-test' });
  const userPool = createPool({ connectionString: userDb.url, max: 3, applicationName: 'tideway-test' });
  const orch: HarnessDatabase = { url: orchDb.url, query: (text, values) => orchPool.query(text, values) };
  const user: HarnessDatabase = { url: userDb.url, query: (text, values) => userPool.query(text, values) };
  const dropAll = async () => {
    await Promise.all([orchPool.end(), userPool.end()]);
    await Promise.all([orchDb.drop(), userDb.drop()]);
  };
  let app: FastifyInstance;
  try {
    await user.query(USER_SCHEMA);
    const config = loadConfig({
      TIDEWAY_DATABASE_URL: orch.url,
      TIDEWAY_REDIS_URL: TEST_REDIS_URL,
      TIDEWAY_REDIS_PREFIX: uniqueRedisPrefix(),
      TIDEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
      TIDEWAY_DATASOURCES: JSON.stringify({ main: user.url }),
      TIDEWAY_LOG_LEVEL: 'silent',
      ...unleashTestEnv(),
    });
    app = await buildApp(config, options);
    await app.ready();
  } catch (error) {
    await dropAll();
    throw error;
  }
  return {
    app,
    orch,
    user,
    close: async () => {
      await app.close();
      await dropAll();
    },
  };
}

/** An injected request; `token` becomes `Authorization: Bearer <token>` (`null` sends none). */
export interface CallOptions {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  readonly url: string;
  readonly token?: string | null;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** A response with its JSON body parsed (`undefined` when the body is not JSON). */
export interface CallResult {
  readonly status: number;
  readonly headers: LightMyRequestResponse['headers'];
  readonly text: string;
  // Tests read arbitrary fields of answers; the schema tests pin their shapes.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

/** Sends a request through `app.inject()` with the admin token unless told otherwise. */
export async function call(app: FastifyInstance, options: CallOptions): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const request: InjectOptions = { method: options.method, url: options.url, headers };
  if (options.body !== undefined) request.payload = options.body as InjectOptions['payload'];
  const res = await app.inject(request);
  let body: unknown;
  try {
    body = res.body.length ? JSON.parse(res.body) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text: res.body, body };
}


/** Creates a migration as the admin and returns its resource; fails the test unless 201. */
export async function createMigration(app: FastifyInstance, name: string, overrides: Record<string, unknown> = {}): Promise<MigrationResource> {
  const res = await call(app, { method: 'POST', url: '/v1/migrations', body: ordersSpec(name, overrides) });
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.text}`);
  return res.body as MigrationResource;
}

/** Applies an action as the admin and returns the resource; fails the test unless 200. */
export async function act(app: FastifyInstance, id: string, action: string, body?: Record<string, unknown>): Promise<MigrationResource> {
  const res = await call(app, { method: 'POST', url: `/v1/migrations/${id}/${action}`, ...(body ? { body } : {}) });
  if (res.status !== 200) throw new Error(`${action} ${id}: ${res.status} ${res.text}`);
  return res.body as MigrationResource;
}

/** Creates an API token as the admin and returns its secret. */
export async function createToken(app: FastifyInstance, name: string, role: 'viewer' | 'operator' | 'admin'): Promise<string> {
  const res = await call(app, { method: 'POST', url: '/v1/tokens', body: { name, role } });
  if (res.status !== 201) throw new Error(`token ${name}: ${res.status} ${res.text}`);
  return (res.body as { token: string }).token;
}

/** The migration resource as the API returns it. */
export interface MigrationResource {
  id: string;
  name: string;
  phase: string;
  status: string;
  version: number;
  spec: Record<string, unknown>;
  progress: Record<string, unknown>;
  gates: { name: string; passed: boolean; message: string; observed: Record<string, unknown> }[];
  allowedActions: string[];
  installation: string;
  flags: { dualWrite: string; shadowRead: string; readNew: string; writeNew: string };
  phaseEnteredAt: string;
  createdAt: string;
  updatedAt: string;
}

const SNAPSHOT_QUERIES = {
  migrations: 'select * from migrations order by seq',
  migration_events: 'select * from migration_events order by id',
  backfill_skipped_rows: 'select * from backfill_skipped_rows order by migration_id, chunk_id',
  // last_used_at is left out: every authenticated request may write it, off the request path and
  // at most once a minute per token, so it is bookkeeping rather than a change the request made.
  api_tokens: 'select id, name, role, secret_sha256, created_by, created_at, revoked_at from api_tokens order by name',
  audit_events: 'select * from audit_events order by id',
  idempotency_keys: 'select * from idempotency_keys order by actor, key',
} as const;

/** Every row of every orchestrator table, to compare before and after a request that must change nothing. */
export async function snapshot(orch: HarnessDatabase): Promise<Record<keyof typeof SNAPSHOT_QUERIES, unknown[]>> {
  const entries = await Promise.all(
    Object.entries(SNAPSHOT_QUERIES).map(async ([table, text]) => [table, (await orch.query(text)).rows] as const),
  );
  return Object.fromEntries(entries) as Record<keyof typeof SNAPSHOT_QUERIES, unknown[]>;
}

export { ordersSpec };
