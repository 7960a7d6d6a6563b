import { QUEUE_NAMES, createRedisConnection, openQueue, type BackfillChunkJob } from '@tideway/queue';
import { TEST_REDIS_URL, createOrchestratorTestDatabase, createTestDatabase, uniqueRedisPrefix, type OrchestratorTestDatabase, type TestDatabase, unguarded } from '@tideway/testing';
import { Worker, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullmqWorkQueue, CHUNK_WORK, LEASE_MS, LeasedWork, createEngine, type Engine } from '../src/index.js';

let orch: OrchestratorTestDatabase;
let user: TestDatabase;
let redis: Redis;
let queue: Queue;
let engine: Engine;
let chunks: LeasedWork;
const prefix = uniqueRedisPrefix();
let n = 0;

beforeAll(async () => {
  orch = await createOrchestratorTestDatabase('leases');
  user = await createTestDatabase('leases_user');
  redis = createRedisConnection(TEST_REDIS_URL);
  queue = openQueue(QUEUE_NAMES.work, { redisUrl: TEST_REDIS_URL, prefix }, redis);
  const workQueue = new BullmqWorkQueue(queue);
  // Every test's migration plans its chunks, whatever earlier tests left pending on the datasource.
  engine = createEngine({ db: orch.db, datasources: { main: user.url }, queue: workQueue, workerName: 'test', datasourceConcurrency: 100 });
  chunks = new LeasedWork(CHUNK_WORK, orch.db, workQueue, engine.workBlocks);
});

afterAll(async () => {
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  redis?.disconnect();
  await engine?.close();
  await orch?.drop();
  await user?.drop();
});

/** A migration in backfill over a fresh 100-row table in chunks of 50: its first chunks are planned and their jobs sent. */
async function backfilling(): Promise<string> {
  n++;
  await user.query(`create table s${n} (id bigint primary key, v int); insert into s${n} select g, g from generate_series(1, 100) g; create table t${n} (id bigint primary key, v int);`);
  const m = await engine.migrations.create(
    unguarded({
      name: `leases-${n}`,
      syncMode: 'application',
      source: { datasource: 'main', table: `s${n}`, key: 'id' },
      target: { datasource: 'main', table: `t${n}`, key: 'id' },
      mapping: { id: 'id', v: 'v' },
      // No SDK instance here to wait for: the backfill may start at once.
      backfill: { initialChunkRows: 50, minChunkRows: 50, maxChunkRows: 50, concurrency: 1, flagPropagationSeconds: 0 },
      throttle: { enabled: false },
    }),
    { actor: 'test' },
  );
  for (const action of ['start', 'advance', 'advance'] as const) await engine.migrations.act(m.id, action, { actor: 'test' });
  return m.id;
}

const chunkRows = async (migrationId: string) =>
  (await orch.query<{ id: number; status: string; attempts: number; enqueues: number }>(`select id::int, status, attempts, enqueues from backfill_chunks where migration_id = $1 order by id`, [migrationId])).rows;

describe('leased work: enqueue generations', () => {
  it('a chunk job that failed before it leased its chunk is replaced under a new id, and the chunk is copied', async () => {
    const id = await backfilling();
    const [first] = await chunkRows(id);
    expect(first).toMatchObject({ status: 'pending', attempts: 0, enqueues: 1 });
    const firstJob = `chunk-${first?.id}-a1-e1`;
    expect(await queue.getJobState(firstJob)).toBe('prioritized');

    // The failure: the job fails before it reaches its chunk (the orchestrator database
    // restarting) and stays in BullMQ's failed set; the chunk stays pending with attempts 0.
    const failing = new Worker(QUEUE_NAMES.work, async (job) => {
      if (job.id === firstJob) throw new Error('the database system is starting up');
      throw new Error('not this one');
    }, { connection: createRedisConnection(TEST_REDIS_URL), prefix, autorun: true });
    try {
      await expect.poll(() => queue.getJobState(firstJob), { timeout: 10_000 }).toBe('failed');
    } finally {
      await failing.close();
    }
    // Re-adding the same id would be a no-op: BullMQ keeps the failed job under it.
    await queue.add('backfill.chunk', {}, { jobId: firstJob });
    expect(await queue.getJobState(firstJob)).toBe('failed');

    // The reconciler's lost-job check (queued longer than LOST_JOB_AFTER_SECONDS) finds no live
    // job and the pump sends one for the next generation.
    await orch.query(`update backfill_chunks set enqueued_at = now() - interval '1 minute' where migration_id = $1`, [id]);
    const r = await engine.backfill.reconcile();
    expect(r.lostJobs).toBeGreaterThanOrEqual(1);
    const [again] = await chunkRows(id);
    expect(again).toMatchObject({ status: 'pending', attempts: 0, enqueues: 2 });
    const job = await queue.getJob(`chunk-${first?.id}-a1-e2`);
    expect(job?.data).toEqual({ migrationId: id, chunkId: first?.id, attempt: 1, enqueue: 2 });

    // The old generation's job cannot lease the chunk; the new one copies it.
    expect(await engine.backfill.runChunk({ migrationId: id, chunkId: first?.id as number, attempt: 1, enqueue: 1 })).toMatchObject({ kind: 'skipped', reason: 'stale job for an earlier enqueue' });
    expect(await engine.backfill.runChunk(job?.data as BackfillChunkJob)).toMatchObject({ kind: 'copied', rows: 50 });
  });

  it('hands each unit to exactly one of two concurrent pumps', async () => {
    const id = await backfilling();
    await orch.query(`update backfill_chunks set enqueued_at = null where migration_id = $1`, [id]);
    const take = () => orch.db.transaction().execute((trx) => chunks.take(trx, sql<boolean>`u.migration_id = ${id}`));
    const [a, b] = await Promise.all([take(), take()]);
    const ids = [...(a ?? []), ...(b ?? [])].map((u) => u.id).sort();
    expect(ids).toEqual((await chunkRows(id)).map((c) => c.id).sort());
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('leased work: leases', () => {
  it('a lease is renewed while held, never revived once it ran out, and released by the reconciler', async () => {
    const id = await backfilling();
    const [c] = await chunkRows(id);
    expect(await chunks.claim(c?.id as number, 0, 'w')).toBeUndefined(); // not this generation
    const taken = await chunks.claim<{ lease_expires_at: Date }>(c?.id as number, c?.enqueues as number, 'w');
    if (!taken) throw new Error('not claimed');
    const { lease } = taken;
    expect(lease).toMatchObject({ migrationId: id, attempts: 1, interruptions: 0 });
    const remaining = async () => (await orch.query<{ ms: number }>(`select (extract(epoch from lease_expires_at - now()) * 1000)::float8 as ms from backfill_chunks where id = $1`, [lease.id])).rows[0]?.ms ?? 0;
    expect(await remaining()).toBeLessThanOrEqual(LEASE_MS);
    await orch.query(`update backfill_chunks set lease_expires_at = now() + interval '1 second' where id = $1`, [lease.id]);
    expect(await chunks.renew(lease)).toBe(true);
    expect(await remaining()).toBeGreaterThan(LEASE_MS - 1000);
    expect(await chunks.holds(lease)).toBe(true);

    // Run out (the worker stalled): neither the fence nor a renewal lets it back, released or not.
    await orch.query(`update backfill_chunks set lease_expires_at = now() - interval '1 millisecond' where id = $1`, [lease.id]);
    expect(await chunks.holds(lease)).toBe(false);
    expect(await chunks.renew(lease)).toBe(false);
    const released = await chunks.releaseExpired();
    expect(released).toContainEqual({ id: lease.id, parent: id });
    expect((await chunkRows(id)).find((r) => r.id === lease.id)).toMatchObject({ status: 'pending', attempts: 1 });
  });

  it('an interrupted attempt goes back with a backoff and is not counted toward maxAttempts', async () => {
    const id = await backfilling();
    const [c] = await chunkRows(id);
    const taken = await chunks.claim(c?.id as number, c?.enqueues as number, 'w');
    if (!taken) throw new Error('not claimed');
    await chunks.retryLater(taken.lease, { error: 'Connection terminated unexpectedly', delayMs: 60_000, interrupted: true });
    const row = (await orch.query<{ status: string; attempts: number; interruptions: number; backoff: boolean; last_error: string }>(
      `select status, attempts, interruptions, not_before > now() + interval '50 seconds' as backoff, last_error from backfill_chunks where id = $1`,
      [c?.id],
    )).rows[0];
    expect(row).toEqual({ status: 'pending', attempts: 1, interruptions: 1, backoff: true, last_error: 'Connection terminated unexpectedly' });
    // Backing off: not claimable, whatever job comes.
    const [now] = await orch.db.transaction().execute((trx) => chunks.take(trx, sql<boolean>`u.id = ${c?.id}`));
    expect(await chunks.claim(c?.id as number, now?.enqueues as number, 'w')).toBeUndefined();
  });
});

describe('leased work: blocked', () => {
  it('one event when work becomes blocked, one when it moves again; the block shows in progress meanwhile', async () => {
    const id = await backfilling();
    const events = async () => (await orch.query<{ action: string; details: Record<string, unknown> }>(`select action, details from migration_events where migration_id = $1 and action like 'work.%' order by seq`, [id])).rows;
    const block = { reason: 'datasource-unavailable' as const, dependency: 'datasource "main"', message: 'cannot connect' };
    expect(await engine.workBlocks.block(id, 'backfill', block)).toBe(true);
    expect(await engine.workBlocks.block(id, 'backfill', { ...block, message: 'still cannot connect' })).toBe(false);
    expect((await engine.migrations.describe(id)).progress['blocked']).toMatchObject({ kind: 'backfill', ...block, message: 'still cannot connect' });
    expect(await engine.workBlocks.clear(id, 'backfill', 'a chunk finished')).toBe(true);
    expect(await engine.workBlocks.clear(id, 'backfill', 'a chunk finished')).toBe(false);
    expect((await events()).map((e) => e.action)).toEqual(['work.blocked', 'work.unblocked']);
    expect((await events())[1]?.details).toMatchObject({ kind: 'backfill', reason: 'datasource-unavailable', why: 'a chunk finished', blockedSeconds: expect.any(Number) });
    expect((await engine.migrations.describe(id)).progress['blocked']).toBeNull();

    // Blocked, then the migration is paused: no live chunk is left, the sweep clears it.
    await engine.workBlocks.block(id, 'backfill', block);
    expect(await engine.workBlocks.sweep(CHUNK_WORK)).toBe(0);
    await engine.migrations.act(id, 'pause', { actor: 'test' });
    expect(await engine.workBlocks.sweep(CHUNK_WORK)).toBe(1);
    expect((await events()).map((e) => [e.action, e.details['why'] ?? null])).toEqual([
      ['work.blocked', null],
      ['work.unblocked', 'a chunk finished'],
      ['work.blocked', null],
      ['work.unblocked', 'no work left'],
    ]);
  });
});
