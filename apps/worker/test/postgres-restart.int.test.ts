import { fileURLToPath } from 'node:url';
import { createDb, createPool, migrateToLatest, type Database } from '@tideway/db';
import { BullmqWorkQueue, createEngine, type Engine } from '@tideway/engine';
import { QUEUE_NAMES, createRedisConnection, openQueue } from '@tideway/queue';
import { TEST_REDIS_URL, mappingDiff, startPrivatePostgres, startTsProcess, uniqueRedisPrefix, waitFor, type PrivatePostgres, type TsProcess, unguarded } from '@tideway/testing';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Issue 11, acceptance 3: PostgreSQL restarted (and stopped for 10 s) mid-backfill, 5 times each:
 * every run completes exact with no manual action and no worker process exits. The orchestrator
 * database and the user database live on one private cluster, so each fault takes both away at
 * once; two worker processes run the chunks; a writer keeps changing the source through the sync
 * trigger (lock-free chunks, ADR 005) throughout.
 */

const WORKER_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const ROWS = 200_000;
const CHUNK_ROWS = 2_500;
/** Chunks done between two faults, so every fault lands mid-backfill with work in flight. */
const CHUNKS_BETWEEN_FAULTS = 4;
const FAULTS = 5;
const mapping = { id: 'id', total_cents: 'total * 100', note: "'n' || id::text" };
// The way back of the mapping (issue 12 §1): every source column the mapping reads comes back.
const reverseMapping = { total: 'total_cents / 100' };

let server: PrivatePostgres;
let orchDb: Kysely<Database>;
let orch: pg.Pool;
let user: pg.Pool;
let redis: Redis;
let queue: Queue;
let engine: Engine;
const workers: TsProcess[] = [];
let n = 0;

beforeAll(async () => {
  server = await startPrivatePostgres();
  const orchUrl = await server.createDatabase('tideway');
  const userUrl = await server.createDatabase('app');
  orchDb = createDb({ connectionString: orchUrl, max: 4, connectionTimeoutMs: 2000 });
  await migrateToLatest(orchDb);
  orch = createPool({ connectionString: orchUrl, max: 2, connectionTimeoutMs: 2000 });
  user = createPool({ connectionString: userUrl, max: 4, connectionTimeoutMs: 2000 });
  const prefix = uniqueRedisPrefix();
  redis = createRedisConnection(TEST_REDIS_URL);
  queue = openQueue(QUEUE_NAMES.work, { redisUrl: TEST_REDIS_URL, prefix }, redis);
  engine = createEngine({ db: orchDb, datasources: { main: userUrl }, queue: new BullmqWorkQueue(queue), workerName: 'control' });
  const env = {
    TIDEWAY_DATABASE_URL: orchUrl,
    TIDEWAY_REDIS_URL: TEST_REDIS_URL,
    TIDEWAY_REDIS_PREFIX: prefix,
    TIDEWAY_DATASOURCES: JSON.stringify({ main: userUrl }),
    TIDEWAY_RECONCILE_INTERVAL_MS: '250',
    TIDEWAY_UNLEASH_URL: 'off',
    TIDEWAY_LOG_LEVEL: 'warn',
  };
  for (const name of ['pg-a', 'pg-b']) workers.push(await startTsProcess(WORKER_MAIN, { ...env, TIDEWAY_WORKER_NAME: name }));
}, 60_000);

afterAll(async () => {
  for (const w of workers) await w.kill();
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  redis?.disconnect();
  await engine?.close();
  await orchDb?.destroy();
  await orch?.end();
  await user?.end();
  await server?.stop();
});

/** A query that answers `null` while the server is down or restarting. */
async function tolerant<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[] = []): Promise<R[] | null> {
  try {
    return (await pool.query<R>(text, values)).rows;
  } catch {
    return null;
  }
}

async function chunksDone(id: string): Promise<number | null> {
  const rows = await tolerant<{ n: number }>(orch, `select count(*)::int as n from backfill_chunks where migration_id = $1 and status = 'done'`, [id]);
  return rows ? (rows[0]?.n ?? 0) : null;
}

/**
 * Changes the source through the sync trigger until stopped: updates, inserts past the copied key
 * range and deletes, one statement at a time, about 100 a second. Errors while the server is down
 * are expected; the loop carries on.
 */
function startWriter(source: string): { stop(): Promise<{ ok: number; failed: number }> } {
  let stopping = false;
  const counts = { ok: 0, failed: 0 };
  const loop = (async () => {
    let i = 0;
    while (!stopping) {
      i++;
      const id = 1 + ((i * 7919) % (ROWS + 5_000));
      const text =
        i % 10 === 0
          ? `delete from ${source} where id = $1`
          : i % 10 === 1
            ? `insert into ${source} values ($1 + ${ROWS}, 7) on conflict (id) do nothing`
            : `update ${source} set total = total + 1 where id = $1`;
      try {
        await user.query(text, [id]);
        counts.ok++;
        await new Promise((r) => setTimeout(r, 10));
      } catch {
        counts.failed++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await loop;
      return counts;
    },
  };
}

/**
 * Backfills a fresh 200,000-row table while `fault` strikes {@link FAULTS} times, each once
 * {@link CHUNKS_BETWEEN_FAULTS} more chunks are done; then waits for the run to complete by itself
 * and checks it is exact, no chunk failed, the gate holds and both worker processes still run.
 */
async function backfillThrough(label: string, fault: (i: number) => Promise<void>): Promise<{ faults: number; seconds: number; writes: { ok: number; failed: number } }> {
  n++;
  const source = `src_${n}`;
  const target = `dst_${n}`;
  await user.query(`
    create table ${source} (id bigint primary key, total int not null);
    insert into ${source} select g, g % 1000 from generate_series(1, ${ROWS}) g;
    analyze ${source};
    create table ${target} (id bigint primary key, total_cents bigint, note text);`);
  const t0 = Date.now();
  const m = await engine.migrations.create(
    unguarded({
      name: `${label}-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      // Fixed small chunks under a rows/s cap: the backfill lasts long enough to be interrupted
      // between chunks and mid-chunk.
      backfill: { initialChunkRows: CHUNK_ROWS, minChunkRows: CHUNK_ROWS, maxChunkRows: CHUNK_ROWS, concurrency: 2, maxRowsPerSecond: 12_000 },
    }),
    { actor: 'test' },
  );
  for (const action of ['start', 'advance'] as const) await engine.migrations.act(m.id, action, { actor: 'test' });
  const writer = startWriter(source);
  await engine.migrations.act(m.id, 'advance', { actor: 'test' });
  let last = 0;
  for (let i = 0; i < FAULTS; i++) {
    const reached = await waitFor(`${CHUNKS_BETWEEN_FAULTS} more chunks before fault ${i + 1}`, async () => {
      const done = await chunksDone(m.id);
      return done !== null && done >= last + CHUNKS_BETWEEN_FAULTS ? done : null;
    }, 60_000, 20);
    const run = await tolerant<{ completed_at: Date | null }>(orch, 'select completed_at from backfill_runs where migration_id = $1', [m.id]);
    expect(run?.[0]?.completed_at ?? null).toBeNull(); // mid-backfill
    last = reached;
    await fault(i);
  }
  await waitFor('the backfill completes by itself', async () => {
    const rows = await tolerant<{ completed_at: Date | null }>(orch, 'select completed_at from backfill_runs where migration_id = $1', [m.id]);
    return rows?.[0]?.completed_at ?? null;
  }, 90_000, 100);
  const seconds = (Date.now() - t0) / 1000;
  const writes = await writer.stop();

  for (const w of workers) expect({ worker: w.pid, exitCode: w.child.exitCode, signal: w.child.signalCode }).toEqual({ worker: w.pid, exitCode: null, signal: null });
  const view = await engine.migrations.describe(m.id);
  expect({ phase: view.migration.phase, status: view.migration.status }).toEqual({ phase: 'backfill', status: 'active' });
  expect(view.gates.find((g) => g.name === 'backfill-complete')).toMatchObject({ passed: true });
  const progress = view.progress as { chunksFailed: number; rowsCopied: number; blocked: unknown };
  expect(progress.chunksFailed).toBe(0);
  expect(progress.blocked).toBeNull();
  const chunks = (await orch.query<{ status: string; n: number }>(`select status, count(*)::int as n from backfill_chunks where migration_id = $1 group by status`, [m.id])).rows;
  expect(chunks.map((c) => c.status)).toEqual(['done']);
  // Every time the work was reported blocked, it was reported moving again.
  const events = (await orch.query<{ action: string; n: number }>(`select action, count(*)::int as n from migration_events where migration_id = $1 and action like 'work.%' group by action`, [m.id])).rows;
  const count = (a: string) => events.find((e) => e.action === a)?.n ?? 0;
  expect(count('work.blocked')).toBe(count('work.unblocked'));
  expect(await mappingDiff(user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  expect(writes.ok).toBeGreaterThan(100);
  return { faults: FAULTS, seconds, writes };
}

describe('PostgreSQL restarts and outages mid-backfill (orchestrator and datasource on one cluster)', () => {
  it('restarted 5 times: completes exact, no manual action, no chunk failed, no worker exited', async () => {
    const r = await backfillThrough('restart', () => server.restart('fast'));
    console.info(`postgres-restart: ${r.faults} restarts, backfill of ${ROWS} rows in ${r.seconds.toFixed(1)} s, writer ${r.writes.ok} ok / ${r.writes.failed} refused`);
  }, 150_000);

  it('stopped for 10 s 5 times (fast and immediate shutdowns): completes exact, no manual action, no chunk failed, no worker exited', async () => {
    const r = await backfillThrough('outage', (i) => server.stopFor(10_000, i % 2 === 0 ? 'immediate' : 'fast'));
    console.info(`postgres-restart: ${r.faults} outages of 10 s, backfill of ${ROWS} rows in ${r.seconds.toFixed(1)} s, writer ${r.writes.ok} ok / ${r.writes.failed} refused`);
  }, 180_000);
});
