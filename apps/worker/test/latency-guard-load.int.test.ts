/**
 * The latency guard under a load step (ADR 014, issue 13's acceptance 3). A real worker guards a
 * backfill beside pgbench on the same database; pgbench runs at 45 % of the saturation TPS measured
 * at the start, and in the middle of the backfill its rate doubles. Within 5 s of the step the pace
 * drops (or the guard re-measures its baseline, or already holds the copy at its floor); no breach
 * of the budget lasts 5 s unanswered (the signal back under it, or the pace cut as above); within 10 s the signal is back under
 * its budget; the backfill still ends exact. Bounds are generous (the machine also runs other
 * tests); the figures are the bench's and the demo's.
 */
import type { DatasourcePaceRow } from '@tideway/db';
import { initPgbench, runPgbench, waitFor, type PgTarget } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 600_000;
/**
 * pgbench's base rate as a share of its saturation TPS measured on this machine at the start; the
 * step adds as much again (to 90 %): a fixed rate breached the budget on some machine states and
 * not on others, and a step that does not hurt tests nothing.
 */
const BASE_SHARE = 0.45;
let rate = 0;

let f: BackfillFixture;
let target: PgTarget;

beforeAll(async () => {
  f = await createGuardFixture('latency_guard_load', ROWS);
  const url = new URL(f.user.url);
  target = { host: url.hostname, port: url.port || '5432', user: decodeURIComponent(url.username || 'postgres'), database: url.pathname.slice(1) };
  await initPgbench(target, 2);
  // Saturation: 4 clients as fast as they go (a rate far above what they can do), for 5 s.
  const saturation = await runPgbench(target, 'saturation', 5, 1_000_000, 4);
  expect(saturation.tps, 'pgbench measured no saturation TPS').toBeGreaterThan(0);
  rate = Math.max(50, Math.round(saturation.tps * BASE_SHARE));
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
    // Long enough to outlast the guard's start (≤ 30 s), the 10 s settling and the step's 12 s.
    const base = runPgbench(target, 'base', 60, rate, 4);
    try {
      // The guard measures its baseline, then paces; let it settle before the step.
      await waitFor('the guard paces the backfill', async () => ((await f.engine.paces.get(f.engine.db, 'main'))?.mode === 'guarding' ? true : null), 30_000);
      await new Promise((r) => setTimeout(r, 10_000));
      const progress = await f.engine.backfillReadModel.progress(id);
      expect(progress?.completedAt, 'the backfill must still run at the step (make ROWS larger)').toBeNull();
      const stepAt = Date.now();
      const step = runPgbench(target, 'step', 25, rate, 4);
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
      // 5 s: the signal is back under its budget (earlier cuts may have answered it already: one
      // cut per window of evidence), the pace drops under 0.9 × the pace at the breach, the guard
      // re-measures its baseline, or it already holds the copy at its floor.
      const floor = 200;
      const breaches = readings.filter((r) => r.at > stepAt && r.at + 5000 <= end && guarding(r) && ratio(r) > 1 + budget);
      // Within 5 s of the step the pace drops (under 0.9 × the highest pace since just before the
      // step: the guard may grow a little before the signal reaches its setpoint), or the guard
      // re-measures its baseline, or it already holds the copy at its floor. The guard may answer
      // before the signal crosses its budget (its setpoint is under it), so a breach is not required.
      const atStep = readings.filter((r) => r.at > stepAt - 1000 && r.at <= stepAt && guarding(r));
      const atFloor = atStep.length > 0 && atStep.every((r) => (r.row.pace_rows_per_second ?? 0) <= floor * 1.05);
      let peak = Math.max(0, ...atStep.map((r) => r.row.pace_rows_per_second ?? 0));
      let dropped = false;
      for (const r of readings.filter((x) => x.at > stepAt && x.at <= stepAt + 5000)) {
        if (r.row.mode === 'baseline' || (r.row.pace_rows_per_second ?? Infinity) < 0.9 * peak) dropped = true;
        peak = Math.max(peak, r.row.pace_rows_per_second ?? 0);
      }
      expect(atFloor || dropped, `the pace did not drop within 5 s of the step: ${trace}`).toBe(true);
      for (const breach of breaches) {
        const answered = readings.some(
          (r) => r.at > breach.at && r.at <= breach.at + 5000 && (r.row.mode === 'baseline' || (guarding(r) && ratio(r) > 0 && ratio(r) <= 1 + budget) || (r.row.pace_rows_per_second ?? 0) < 0.9 * (breach.row.pace_rows_per_second ?? 0) || (r.row.pace_rows_per_second ?? 0) <= floor * 1.05),
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
  }, 240_000);
});
