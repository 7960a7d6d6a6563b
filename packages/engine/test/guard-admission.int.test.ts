import { QUEUE_NAMES, createRedisConnection, openQueue } from '@tideway/queue';
import { TEST_REDIS_URL, createOrchestratorTestDatabase, createTestDatabase, uniqueRedisPrefix, type OrchestratorTestDatabase, type TestDatabase } from '@tideway/testing';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullmqWorkQueue, createEngine, type Engine } from '../src/index.js';

// A chunk of a guarded migration whose slot of the guard's pace is not due is sent back on one
// read of the pace, before the catalog (DDL) and health checks spend the datasource's time on it;
// once its slot is due, those checks still run before anything is copied.

let orch: OrchestratorTestDatabase;
let user: TestDatabase;
let redis: Redis;
let queue: Queue;
let engine: Engine;
const prefix = uniqueRedisPrefix();

beforeAll(async () => {
  orch = await createOrchestratorTestDatabase('guard_admission');
  user = await createTestDatabase('guard_admission_user');
  redis = createRedisConnection(TEST_REDIS_URL);
  queue = openQueue(QUEUE_NAMES.work, { redisUrl: TEST_REDIS_URL, prefix }, redis);
  engine = createEngine({ db: orch.db, datasources: { main: user.url }, queue: new BullmqWorkQueue(queue), workerName: 'test', datasourceConcurrency: 100 });
});

afterAll(async () => {
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  redis?.disconnect();
  await engine?.close();
  await orch?.drop();
  await user?.drop();
});

describe('latency guard admission', () => {
  it('a chunk not due at the guard’s pace goes back before the DDL check; a due one is still checked before it copies', async () => {
    await user.query('create table s (id bigint primary key, v int, w int); insert into s select g, g, g from generate_series(1, 100) g; create table t (id bigint primary key, v int, w int);');
    const m = await engine.migrations.create(
      {
        name: 'guard-admission',
        syncMode: 'application',
        source: { datasource: 'main', table: 's', key: 'id' },
        target: { datasource: 'main', table: 't', key: 'id' },
        mapping: { id: 'id', v: 'v', w: 'w' },
        backfill: { initialChunkRows: 50, minChunkRows: 50, maxChunkRows: 50, concurrency: 1, flagPropagationSeconds: 0 },
      },
      { actor: 'test' },
    );
    for (const action of ['start', 'advance', 'advance'] as const) await engine.migrations.act(m.id, action, { actor: 'test' });
    const chunk = (await orch.query<{ id: number; enqueues: number }>(`select id::int, enqueues from backfill_chunks where migration_id = $1 order by id limit 1`, [m.id])).rows[0];
    expect(chunk).toBeDefined();
    const job = { migrationId: m.id, chunkId: chunk?.id as number, attempt: 1, enqueue: chunk?.enqueues as number };

    // The datasource's pace is reserved 30 s ahead (other chunks took the slots), and a mapped
    // column is dropped behind Tideway's back.
    await orch.query(`insert into datasource_paces (datasource, rate_tat) values ('main', now() + interval '30 seconds')
                      on conflict (datasource) do update set rate_tat = excluded.rate_tat`);
    await user.query('alter table s drop column w');
    const early = await engine.backfill.runChunk(job);
    expect(early).toMatchObject({ kind: 'throttled', reason: 'latency' });
    // Sent back on the pace alone: the DDL check did not run (nothing paused, nothing recorded).
    expect((await engine.migrations.describeLite(m.id)).migration.status).toBe('active');
    expect((await orch.query<{ detected: unknown }>(`select detected from ddl_guards where migration_id = $1`, [m.id])).rows[0]?.detected ?? null).toBeNull();

    // Its slot due, the chunk meets the DDL check before any copy: the migration pauses, nothing copied.
    await orch.query(`update datasource_paces set rate_tat = null where datasource = 'main'`);
    const due = await engine.backfill.runChunk(job);
    expect(due).toMatchObject({ kind: 'skipped' });
    expect((due as { reason: string }).reason).toMatch(/DDL/);
    expect((await engine.migrations.describeLite(m.id)).migration.status).toBe('paused');
    expect((await user.query<{ n: number }>('select count(*)::int as n from t')).rows[0]?.n).toBe(0);
  });
});
