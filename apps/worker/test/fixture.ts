import { BullmqWorkQueue, createEngine, type Engine } from '@tideway/engine';
import { QUEUE_NAMES, createRedisConnection, openQueue } from '@tideway/queue';
import {
  createOrchestratorTestDatabase,
  createTestDatabase,
  TEST_REDIS_URL,
  uniqueRedisPrefix,
  unleashTestEnv,
  waitFor,
  mappingDiff,
  type OrchestratorTestDatabase,
  type TestDatabase, unguarded,
} from '@tideway/testing';
import type { MigrationSpecInput } from '@tideway/core';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadWorkerConfig } from '../src/config.js';
import { startWorker, type WorkerRuntime } from '../src/worker.js';

/** Everything a backfill test needs: orchestrator + user databases, a queue prefix, a control engine. */
export interface BackfillFixture {
  readonly orch: OrchestratorTestDatabase;
  readonly user: TestDatabase;
  readonly prefix: string;
  readonly engine: Engine;
  readonly queue: Queue;
  readonly redis: Redis;
  readonly env: Record<string, string>;
  /** Starts an in-process worker; `log` receives what a worker process would log. */
  startWorker(extra?: Record<string, string>, log?: (msg: string, extra?: unknown) => void): Promise<WorkerRuntime>;
  close(): Promise<void>;
}

/**
 * @param options.redisUrl - the Redis to use (default the shared TEST_REDIS_URL); tests that FLUSHALL
 *   pass a private one (startPrivateRedis) so other packages' tests keep their queues.
 * @param options.userServerUrl - the server of the user database (a private cluster's maintenance
 *   URL, for settings the shared one lacks); default the shared server.
 */
export async function createBackfillFixture(label: string, options: { redisUrl?: string; userServerUrl?: string } = {}): Promise<BackfillFixture> {
  const redisUrl = options.redisUrl ?? TEST_REDIS_URL;
  const orch = await createOrchestratorTestDatabase(label);
  const user = await createTestDatabase(`${label}_user`, options.userServerUrl);
  const prefix = uniqueRedisPrefix();
  const redis = createRedisConnection(redisUrl);
  const queue = openQueue(QUEUE_NAMES.work, { redisUrl, prefix }, redis);
  const engine = createEngine({ db: orch.db, datasources: { main: user.url }, queue: new BullmqWorkQueue(queue), workerName: 'control' });
  const env = {
    TIDEWAY_DATABASE_URL: orch.url,
    TIDEWAY_REDIS_URL: redisUrl,
    TIDEWAY_REDIS_PREFIX: prefix,
    TIDEWAY_DATASOURCES: JSON.stringify({ main: user.url }),
    TIDEWAY_RECONCILE_INTERVAL_MS: '250',
    TIDEWAY_LOG_LEVEL: 'warn',
    ...unleashTestEnv(),
  };
  const workers: WorkerRuntime[] = [];
  return {
    orch,
    user,
    prefix,
    engine,
    queue,
    redis,
    env,
    startWorker: async (extra = {}, log) => {
      const w = await startWorker(loadWorkerConfig({ ...env, ...extra }), log);
      workers.push(w);
      return w;
    },
    close: async () => {
      for (const w of workers) await w.close().catch(() => undefined);
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      redis.disconnect();
      await engine.close();
      await orch.drop();
      await user.drop();
    },
  };
}

/** Creates a migration and drives it to `backfill` (start, advance to dual_write, advance to backfill); the latency guard is off unless `spec` turns it on ({@link unguarded}). */
export async function driveToBackfill(engine: Engine, spec: MigrationSpecInput): Promise<string> {
  const m = await engine.migrations.create(unguarded(spec), { actor: 'test' });
  await engine.migrations.act(m.id, 'start', { actor: 'test' });
  await engine.migrations.act(m.id, 'advance', { actor: 'test' });
  await engine.migrations.act(m.id, 'advance', { actor: 'test' });
  return m.id;
}

/** Waits until the backfill gate holds, and returns the progress. */
export async function waitForBackfill(engine: Engine, id: string, timeoutMs = 60_000) {
  return waitFor(
    'backfill complete',
    async () => {
      const p = await engine.backfillReadModel.progress(id);
      if (p && p.chunksFailed > 0) throw new Error(`chunks failed: ${JSON.stringify(p)}`);
      return p?.completedAt ? p : null;
    },
    timeoutMs,
  );
}

/**
 * The fixture of the latency guard's tests: a `big` table of `rows` rows (id, payload, n) and its
 * empty `big_v2`, analysed, with a worker running (unless `startWorker` is false).
 */
export async function createGuardFixture(label: string, rows: number, options: { userServerUrl?: string; startWorker?: boolean } = {}): Promise<BackfillFixture> {
  const f = await createBackfillFixture(label, options.userServerUrl ? { userServerUrl: options.userServerUrl } : {});
  await f.user.query(`
    create table big (id bigint primary key, payload text, n int);
    insert into big select g, repeat(md5(g::text), 3), g % 1000 from generate_series(1, ${rows}) g;
    create table big_v2 (id bigint primary key, payload text, n int);
  `);
  await f.user.query('vacuum analyze big');
  if (options.startWorker !== false) await f.startWorker();
  return f;
}

/** The mapping of the guard fixture's `big` → `big_v2`. */
export const BIG_MAPPING = { id: 'id', payload: 'payload', n: 'n' } as const;

/**
 * A trigger-sync migration of the guard fixture's `big` into `big_v2` named `name`, with the
 * latency guard on and `throttle.latencyGuard` / `backfill` options from `options`.
 */
export function bigSpec(name: string, options: { latencyGuard?: Record<string, unknown>; backfill?: Record<string, unknown> } = {}): MigrationSpecInput {
  return {
    name,
    syncMode: 'trigger',
    source: { datasource: 'main', table: 'big', key: 'id' },
    target: { datasource: 'main', table: 'big_v2', key: 'id' },
    mapping: { ...BIG_MAPPING },
    throttle: { latencyGuard: { enabled: true, ...options.latencyGuard } },
    ...(options.backfill ? { backfill: options.backfill } : {}),
  } as MigrationSpecInput;
}

/** How `big_v2` differs from what the mapping makes of `big` (`{ missingOrDifferent: 0, extraOrDifferent: 0 }` when exact). */
export function bigDiff(f: BackfillFixture): ReturnType<typeof mappingDiff> {
  return mappingDiff(f.user, { source: 'big', target: 'big_v2', mapping: { ...BIG_MAPPING } });
}
