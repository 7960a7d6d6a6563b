/**
 * The latency guard across the ways a backfill loses its guard (ADR 014): the worker holding a
 * datasource's guard goes away mid-backfill and another worker takes the guard over once the lease
 * lapses, starting with a baseline of its own, and the backfill still ends exact; an abort of the
 * guarded migration gives the guard up, and its probes stop.
 */
import { GUARD_LEASE_MS } from '@tideway/engine';
import { waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerRuntime } from '../src/worker.js';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 30_000;

let f: BackfillFixture;
const workers = new Map<string, WorkerRuntime>();

beforeAll(async () => {
  f = await createGuardFixture('latency_guard_handover', ROWS, { startWorker: false });
  await f.user.query(`create table small (id bigint primary key, v int); insert into small select g, g from generate_series(1, ${ROWS}) g; create table small_v2 (id bigint primary key, v int);`);
  for (const name of ['worker-a', 'worker-b']) workers.set(name, await f.startWorker({ TIDEWAY_WORKER_NAME: name }));
}, 120_000);

afterAll(async () => {
  await f?.close();
});

const guardOf = async () => f.engine.paces.get(f.engine.db, 'main');

describe('latency guard handover', () => {
  it('is taken over by the other worker when its holder goes away, with a baseline of its own, and the backfill ends exact', async () => {
    const id = await driveToBackfill(
      f.engine,
      // Slow enough that the copy still runs when the holder goes.
      bigSpec('handover', { latencyGuard: { minRowsPerSecond: 500 }, backfill: { maxRowsPerSecond: 2000 } }),
    );
    const first = await waitFor('a holder guarding', async () => {
      const g = await guardOf();
      return g?.holder && g.mode === 'guarding' ? g.holder : null;
    }, 30_000);
    expect([...workers.keys()]).toContain(first);
    const other = first === 'worker-a' ? 'worker-b' : 'worker-a';
    await workers.get(first)?.close();
    const stoppedAt = Date.now();
    const taken = await waitFor('the other worker holds the guard', async () => {
      const g = await guardOf();
      return g?.holder === other ? { ...g, at: Date.now() } : null;
    }, GUARD_LEASE_MS + 15_000);
    // Not before the lease ran out; a new holder measures its own baseline first.
    expect(taken.at - stoppedAt).toBeGreaterThanOrEqual(GUARD_LEASE_MS - 1000);
    expect(taken.mode).toBe('baseline');
    await waitFor('the new holder guarding', async () => ((await guardOf())?.mode === 'guarding' ? true : null), 30_000);
    expect((await f.engine.backfillReadModel.progress(id))?.completedAt).toBeNull();
    // Shown; the operator's switch lets the rest run free.
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { enabled: false } }, backfill: { maxRowsPerSecond: null } }, { actor: 'test', role: 'operator' });
    const done = await waitForBackfill(f.engine, id, 120_000);
    expect(done.rowsCopied).toBe(ROWS);
    expect(await bigDiff(f)).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  }, 240_000);

  it('gives the guard up when the guarded migration is aborted, and its probes stop', async () => {
    const id = await driveToBackfill(f.engine, {
      name: 'aborted-guarded',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'small', key: 'id' },
      target: { datasource: 'main', table: 'small_v2', key: 'id' },
      mapping: { id: 'id', v: 'v' },
      throttle: { latencyGuard: { enabled: true, minRowsPerSecond: 200 } },
      backfill: { maxRowsPerSecond: 1000 },
    });
    await waitFor('the guard guarding', async () => ((await guardOf())?.mode === 'guarding' ? true : null), 30_000);
    await f.engine.migrations.act(id, 'abort', { actor: 'test' });
    await waitFor('the guard given up', async () => {
      const g = await guardOf();
      return g && g.holder === null && g.pace_rows_per_second === null ? g : null;
    }, 15_000);
    // The probe sessions stay open in their pools but run nothing: idle for over a second, where a
    // running probe starts a statement every 20 ms.
    await waitFor('the probe sessions idle', async () => {
      const r = await f.user.query<{ n: number; idle: number }>(
        `select count(*)::int as n, count(*) filter (where state = 'idle' and now() - state_change > interval '1 second')::int as idle
           from pg_stat_activity where datname = current_database() and application_name like 'tideway-probe%'`,
      );
      const row = r.rows[0];
      return row && row.n === row.idle ? true : null;
    }, 15_000);
  }, 120_000);
});
