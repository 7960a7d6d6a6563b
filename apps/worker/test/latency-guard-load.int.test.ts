/**
 * The latency guard under a load step (ADR 014), outside `npm test` (`npm run test:guard-load`):
 * it passed 2 of 3 runs alone on the 2-core machine — whether doubling pgbench's rate breaches the
 * guard's budget at all depends on the machine's state, and the signal is still noisy (issue 13).
 * A real worker guards a backfill beside pgbench on the same database. Across a load step (pgbench's rate doubles mid-backfill) every breach of the budget
 * must be answered within 5 s (the pace drops, or the guard re-measures its baseline, or it already
 * holds the copy at its floor) and the signal must be back under its budget within 10 s; the
 * backfill still ends exact. Bounds are generous (the machine also runs other tests); the figures
 * are the bench's and the demo's.
 */
import type { DatasourcePaceRow } from '@tideway/db';
import { initPgbench, runPgbench, waitFor, type PgTarget } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 600_000;
/** pgbench's base rate, transactions/s; the step adds as much again. */
const RATE = 700;

let f: BackfillFixture;
let target: PgTarget;

beforeAll(async () => {
  f = await createGuardFixture('latency_guard_load', ROWS);
  const url = new URL(f.user.url);
  target = { host: url.hostname, port: url.port || '5432', user: decodeURIComponent(url.username || 'postgres'), database: url.pathname.slice(1) };
  await initPgbench(target, 2);
}, 120_000);

afterAll(async () => {
  await f?.close();
});

interface Reading {
  readonly at: number;
  readonly row: DatasourcePaceRow;
}

describe('latency guard', () => {
  it('answers every breach after a load step within 5 s and brings p99 back under its budget', async () => {
    const budget = 0.3;
    const id = await driveToBackfill(f.engine, bigSpec('guarded', { latencyGuard: { latencyBudget: budget } }));
    const readings: Reading[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const row = await f.engine.paces.get(f.engine.db, 'main');
        if (row) readings.push({ at: Date.now(), row });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const base = runPgbench(target, 'base', 45, RATE, 4);
    try {
      // The guard measures its baseline, then paces; let it settle before the step.
      await waitFor('the guard paces the backfill', async () => ((await f.engine.paces.get(f.engine.db, 'main'))?.mode === 'guarding' ? true : null), 30_000);
      await new Promise((r) => setTimeout(r, 10_000));
      const progress = await f.engine.backfillReadModel.progress(id);
      expect(progress?.completedAt, 'the backfill must still run at the step (make ROWS larger)').toBeNull();
      const stepAt = Date.now();
      const step = runPgbench(target, 'step', 25, RATE, 4);
      await new Promise((r) => setTimeout(r, 12_000));
      sampling = false;
      await sampler;

      const guarding = (r: Reading) => r.row.mode === 'guarding' && r.row.pace_rows_per_second !== null;
      // The worse of the two signals over its own baseline, as the controller judges it.
      const ratio = (r: Reading) =>
        Math.max(
          r.row.observed_p99_ms !== null && r.row.baseline_p99_ms ? r.row.observed_p99_ms / r.row.baseline_p99_ms : 0,
          r.row.commit_observed_p99_ms !== null && r.row.commit_baseline_p99_ms ? r.row.commit_observed_p99_ms / r.row.commit_baseline_p99_ms : 0,
        );
      const trace = JSON.stringify(readings.filter((r) => r.at > stepAt - 3000).map((r) => [r.at - stepAt, r.row.mode, Math.round(r.row.pace_rows_per_second ?? 0), Math.round(ratio(r) * 100) / 100, r.row.holding]));
      const end = readings[readings.length - 1]?.at ?? stepAt;
      // Every breach of the budget after the step (with 5 s of readings after it) is answered within
      // 5 s: the pace drops under 0.9 × the pace at the breach, the guard re-measures its baseline,
      // or it already holds the copy at its floor.
      const floor = 200;
      const breaches = readings.filter((r) => r.at > stepAt && r.at + 5000 <= end && guarding(r) && ratio(r) > 1 + budget);
      // The step must have pushed the signal over its budget, or found the copy already held at its
      // floor: otherwise nothing was tested.
      const atStep = readings.filter((r) => r.at > stepAt - 1000 && r.at <= stepAt && guarding(r));
      const atFloor = atStep.length > 0 && atStep.every((r) => (r.row.pace_rows_per_second ?? 0) <= floor * 1.05);
      expect(breaches.length > 0 || atFloor, `the load step did not breach the budget: ${trace}`).toBe(true);
      for (const breach of breaches) {
        const answered = readings.some(
          (r) => r.at > breach.at && r.at <= breach.at + 5000 && (r.row.mode === 'baseline' || (r.row.pace_rows_per_second ?? 0) < 0.9 * (breach.row.pace_rows_per_second ?? 0) || (r.row.pace_rows_per_second ?? 0) <= floor * 1.05),
        );
        expect(answered, `breach at ${breach.at - stepAt} ms not answered: ${trace}`).toBe(true);
      }
      // …and within 10 s of the step the signal is under its budget (against the baselines in force).
      const recovered = readings.some((r) => r.at > stepAt && r.at <= stepAt + 10_000 && guarding(r) && ratio(r) > 0 && ratio(r) <= 1 + budget);
      expect(recovered, trace).toBe(true);
      await step;
    } finally {
      sampling = false;
      await base;
    }
    // The guard did its part; on a machine busy with other tests it would go on holding the copy
    // back (by design), so the operator's switch finishes it: PATCH it off, and the rest runs free.
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { enabled: false } } }, { actor: 'test', role: 'operator' });
    const done = await waitForBackfill(f.engine, id, 120_000);
    expect(done.rowsCopied).toBe(ROWS);
    expect(await bigDiff(f)).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    const events = await f.engine.migrationReadModel.allEvents(id);
    expect(events.some((e) => e.action === 'latency-guard.holding')).toBe(true);
  }, 240_000);
});
