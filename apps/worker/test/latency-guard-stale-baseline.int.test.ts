/**
 * A stale-high baseline relearned (ADR 014, "A stale-high baseline"), end to end with a real
 * worker: while the guard measures its first baseline, another session holds an ACCESS EXCLUSIVE
 * lock on the source table for a second, so the read probe's samples in that window include a
 * stall and its baseline p99 is many times the database's. With the copy running afterwards the
 * read probe's full window sits far under that bar; the guard measures a new baseline well before
 * the scheduled one (a minute later), without the stalled window, and the backfill ends exact.
 */
import { SMOOTH_WINDOW_MS } from '@tideway/core';
import { waitFor } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 20_000;
/** The copy's static cap, rows/s: slow enough that the backfill still runs when the guard relearns. */
const CAP = 800;
/** How long the lock stalls the read probe inside the baseline window, ms. */
const STALL_MS = 1000;

let f: BackfillFixture;
/** What the worker logged, with when (ms since the epoch). */
const logged: { at: number; msg: string; extra: Record<string, unknown> }[] = [];

beforeAll(async () => {
  f = await createGuardFixture('guard_stale_baseline', ROWS, { startWorker: false });
  await f.startWorker({}, (msg, extra) => logged.push({ at: Date.now(), msg, extra: (extra ?? {}) as Record<string, unknown> }));
}, 120_000);

afterAll(async () => {
  await f?.close();
});

describe('latency guard: a stale-high baseline', () => {
  it('is measured again, without the window that caught a stall, well before the scheduled baseline', async () => {
    const id = await driveToBackfill(f.engine, bigSpec('stale-baseline', { backfill: { maxRowsPerSecond: CAP } }));
    // Held by a worker, whose probe runs: the window's samples are being taken.
    await waitFor('the first baseline window', async () => {
      const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
      return g?.mode === 'baseline' && g.holder !== null ? true : null;
    }, 30_000, 20);
    // A stall inside the window: the read probe waits on the lock, its sample is the wait.
    const locker = new pg.Client({ connectionString: f.user.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table big in access exclusive mode');
      await new Promise((r) => setTimeout(r, STALL_MS));
      await locker.query('rollback');
    } finally {
      await locker.end();
    }
    const inflated = await waitFor('a baseline that caught the stall', async () => {
      const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
      return g?.mode === 'guarding' && g.baselineP99Ms != null ? g : null;
    }, 30_000);
    const guardingSince = Date.now();
    // The stall set the bar: the probe's p99 with nothing in its way is a few ms on this machine.
    expect(inflated.baselineP99Ms as number).toBeGreaterThan(STALL_MS / 4);
    // Relearned once a full window with the copy running shows it, not a minute later.
    const relearned = await waitFor('a baseline without the stall', async () => {
      const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
      return g?.mode === 'guarding' && g.baselineP99Ms != null && g.baselineP99Ms < (inflated.baselineP99Ms as number) / 4 ? g : null;
    }, 45_000);
    expect(relearned.baselineP99Ms as number).toBeLessThan(STALL_MS / 10);
    // It was the stale bar that was relearned — once a full window had run, not seconds later —
    // and not the floor's relearn (a breach of another signal can take the copy there too).
    const stale = logged.find((l) => l.msg.startsWith('latency guard: a baseline is stale high'));
    expect(stale, JSON.stringify(logged.map((l) => l.msg))).toBeDefined();
    const staleAfterMs = (stale?.at ?? Infinity) - guardingSince;
    expect(staleAfterMs).toBeGreaterThan(SMOOTH_WINDOW_MS - 1000);
    expect(staleAfterMs).toBeLessThan(SMOOTH_WINDOW_MS + 4000);
    expect(stale?.extra.readBaselineP99Ms as number).toBeCloseTo(inflated.baselineP99Ms as number, 3);
    expect(stale?.extra.readWindowP99Ms as number).toBeLessThan(STALL_MS / 10);
    expect(logged.some((l) => l.msg.includes('at its floor') && l.at < (stale?.at ?? 0))).toBe(false);
    // The rest of the copy unguarded and uncapped (the guard's pace is not what this test is about): it ends exact.
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { enabled: false } }, backfill: { maxRowsPerSecond: null } }, { actor: 'test', role: 'operator' });
    const done = await waitForBackfill(f.engine, id, 120_000);
    expect(done.rowsCopied).toBe(ROWS);
    expect(await bigDiff(f)).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  }, 180_000);
});
