import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createDb, createPool, migrateToLatest } from '@tideway/db';
import { freePort, ordersSpec, waitFor, startPrivatePostgres, startPrivateRedis, uniqueRedisPrefix, type PrivatePostgres, type PrivateRedis } from '@tideway/testing';
import { QUEUE_NAMES, createRedisConnection, openQueue } from '@tideway/queue';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { ADMIN_TOKEN, call, type CallOptions, type CallResult } from './support/harness.js';

/**
 * Issue 11, acceptance 6 (first two checks): a dependency that is down or hung is a prompt 503
 * `DEPENDENCY_UNAVAILABLE` naming it — never a 500, never a hang. On a private PostgreSQL and a
 * private Redis, so stopping them touches no other test.
 */

let server: PrivatePostgres;
let redis: PrivateRedis;
let redisPort: number;
let orchUrl: string;
let userUrl: string;
let orch: pg.Pool;
let app: FastifyInstance;
const prefix = uniqueRedisPrefix();
const apps: FastifyInstance[] = [];
const holes: (() => Promise<void>)[] = [];

function configFor(databaseUrl: string, redisUrl: string) {
  return loadConfig({
    TIDEWAY_DATABASE_URL: databaseUrl,
    TIDEWAY_REDIS_URL: redisUrl,
    TIDEWAY_REDIS_PREFIX: prefix,
    TIDEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    TIDEWAY_DATASOURCES: JSON.stringify({ main: userUrl }),
    TIDEWAY_UNLEASH_URL: 'off',
    TIDEWAY_LOG_LEVEL: 'silent',
  });
}

async function appOn(databaseUrl: string, redisUrl: string): Promise<FastifyInstance> {
  const a = await buildApp(configFor(databaseUrl, redisUrl));
  await a.ready();
  apps.push(a);
  return a;
}

/** A TCP server that accepts connections and never answers: a hung PostgreSQL or Redis. */
async function blackHole(): Promise<number> {
  const sockets: net.Socket[] = [];
  const hole = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => hole.listen(port, '127.0.0.1', resolve));
  holes.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => hole.close(() => resolve()));
  });
  return port;
}

/** A request and how long it took, milliseconds. */
async function timed(a: FastifyInstance, options: CallOptions): Promise<CallResult & { ms: number }> {
  const t0 = performance.now();
  const res = await call(a, options);
  return { ...res, ms: performance.now() - t0 };
}

beforeAll(async () => {
  server = await startPrivatePostgres();
  orchUrl = await server.createDatabase('tideway');
  userUrl = await server.createDatabase('app');
  const db = createDb({ connectionString: orchUrl, max: 2 });
  await migrateToLatest(db);
  await db.destroy();
  const user = createPool({ connectionString: userUrl, max: 1 });
  await user.query(`create table orders (id bigint primary key, total int);
    insert into orders select g, g from generate_series(1, 2000) g;
    create table orders_v2 (id bigint primary key, total_cents bigint);`);
  await user.end();
  orch = createPool({ connectionString: orchUrl, max: 2, connectionTimeoutMs: 2000 });
  redisPort = await freePort();
  redis = await startPrivateRedis({ port: redisPort });
  app = await appOn(orchUrl, redis.url);
}, 60_000);

afterAll(async () => {
  for (const a of apps) await a.close();
  for (const close of holes) await close();
  await orch?.end();
  await redis?.stop();
  await server?.stop();
});

const expect503 = (res: CallResult & { ms: number }, dependency: string, withinMs: number) => {
  expect({ status: res.status, code: res.body?.error?.code, dependency: res.body?.error?.details?.dependency }).toEqual({ status: 503, code: 'DEPENDENCY_UNAVAILABLE', dependency });
  expect(res.ms).toBeLessThan(withinMs);
};

describe('orchestrator PostgreSQL unavailable', () => {
  it('down: every request answers 503 naming postgres at once, and works again once it is back', async () => {
    const created = await call(app, { method: 'POST', url: '/v1/migrations', body: ordersSpec('pg-down') });
    expect(created.status).toBe(201);
    const viewer = await call(app, { method: 'POST', url: '/v1/tokens', body: { name: 'pg-down-viewer', role: 'viewer' } });
    const id = created.body.id as string;
    await server.halt('immediate');
    try {
      expect503(await timed(app, { method: 'GET', url: '/v1/migrations' }), 'postgres', 2000);
      expect503(await timed(app, { method: 'GET', url: `/v1/migrations/${id}` }), 'postgres', 2000);
      expect503(await timed(app, { method: 'POST', url: `/v1/migrations/${id}/start` }), 'postgres', 2000);
      expect503(await timed(app, { method: 'POST', url: '/v1/migrations', body: ordersSpec('pg-down-2') }), 'postgres', 2000);
      // A token looked up in the database: the authentication itself answers 503, not 401 or 500.
      expect503(await timed(app, { method: 'GET', url: '/v1/migrations', token: viewer.body.token as string }), 'postgres', 2000);
      const ready = await call(app, { method: 'GET', url: '/readyz', token: null });
      expect(ready.status).toBe(503);
      expect(ready.body.error.details.unavailable).toEqual(['postgres']);
    } finally {
      await server.start();
    }
    const back = await call(app, { method: 'GET', url: `/v1/migrations/${id}` });
    expect({ status: back.status, phase: back.body.phase }).toEqual({ status: 200, phase: 'draft' });
  });

  it('hung (the connection is accepted and never answered): 503 naming postgres within the pool connection timeout', async () => {
    const hung = await appOn(`postgres://postgres@127.0.0.1:${await blackHole()}/tideway`, redis.url);
    const res = await timed(hung, { method: 'GET', url: '/v1/migrations' });
    // createDb's connectionTimeoutMs (5 s by default) bounds the wait.
    expect503(res, 'postgres', 7000);
    expect(res.ms).toBeGreaterThan(4000);
    expect(res.body.error.message).toContain('timeout');
  });
});

describe('Redis unavailable', () => {
  it('down: starting a verification answers 503 naming redis within 2 s and creates nothing; transitions still commit; the backfill says it is blocked until work moves', async () => {
    const created = await call(app, { method: 'POST', url: '/v1/migrations', body: ordersSpec('redis-down', { backfill: { initialChunkRows: 500, minChunkRows: 500, maxChunkRows: 500 } }) });
    const id = created.body.id as string;
    for (const action of ['start', 'advance']) expect((await call(app, { method: 'POST', url: `/v1/migrations/${id}/${action}` })).status).toBe(200);
    await redis.stop();

    // PostgreSQL is the state of record: entering backfill, pause and resume commit; their wake-up
    // of the workers fails within the bound and leaves the chunks for the reconciler.
    for (const action of ['advance', 'pause', 'resume', 'pause', 'resume']) {
      const res = await timed(app, { method: 'POST', url: `/v1/migrations/${id}/${action}` });
      expect({ status: res.status, action }).toEqual({ status: 200, action });
      expect(res.ms).toBeLessThan(2500);
    }
    expect503(await timed(app, { method: 'POST', url: `/v1/migrations/${id}/verifications` }), 'redis', 2000);
    expect((await orch.query('select 1 from verifications where migration_id = $1', [id])).rowCount).toBe(0);
    const ready = await call(app, { method: 'GET', url: '/readyz', token: null });
    expect(ready.body.error.details.unavailable).toEqual(['redis']);

    const blocked = await call(app, { method: 'GET', url: `/v1/migrations/${id}` });
    expect(blocked.body.progress.blocked).toMatchObject({ kind: 'backfill', reason: 'queue-unavailable', dependency: 'redis', since: expect.any(String) });
    const events = async () => (await orch.query<{ action: string }>(`select action from migration_events where migration_id = $1 and action like 'work.%' order by seq`, [id])).rows.map((r) => r.action);
    expect(await events()).toEqual(['work.blocked']); // once, not once per try

    // Redis comes back where the app reconnects: the reconciler sends the chunks (new enqueue
    // generations), a chunk runs, and the block clears with one event.
    redis = await startPrivateRedis({ port: redisPort });
    // As a worker's reconciler does every round, until the app's connection is back.
    const sent = await waitFor('the reconciler sends the chunks', async () => (await app.engine.backfill.reconcile().catch(() => null))?.enqueued, 10_000, 100);
    expect(sent).toBeGreaterThan(0);
    const connection = createRedisConnection(redis.url);
    const queue = openQueue(QUEUE_NAMES.work, { redisUrl: redis.url, prefix }, connection);
    try {
      const [job] = await queue.getJobs(['prioritized', 'waiting', 'delayed'], 0, 0, true);
      expect(job?.id).toMatch(/^chunk-\d+-a1-e\d+$/);
      expect(await app.engine.backfill.runChunk(job?.data)).toMatchObject({ kind: 'copied' });
    } finally {
      await queue.close();
      connection.disconnect();
    }
    expect(await events()).toEqual(['work.blocked', 'work.unblocked']);
    expect((await call(app, { method: 'GET', url: `/v1/migrations/${id}` })).body.progress.blocked).toBeNull();
  });

  it('hung (accepts, never answers): no request waits on it for more than ~2 s', async () => {
    const hung = await appOn(orchUrl, `redis://127.0.0.1:${await blackHole()}`);
    const created = await call(hung, { method: 'POST', url: '/v1/migrations', body: ordersSpec('redis-hung') });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    for (const action of ['start', 'advance', 'advance']) {
      const res = await timed(hung, { method: 'POST', url: `/v1/migrations/${id}/${action}` });
      expect({ status: res.status, action }).toEqual({ status: 200, action });
      expect(res.ms).toBeLessThan(3000);
    }
    const res = await timed(hung, { method: 'POST', url: `/v1/migrations/${id}/verifications` });
    expect503(res, 'redis', 3000);
    expect(res.body.error.message).toContain('no answer within 2000 ms');
  });
});
