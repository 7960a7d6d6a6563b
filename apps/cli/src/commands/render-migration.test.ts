import { describe, expect, it } from 'vitest';
import type { MigrationResource } from '../api-types.js';
import { rampText, renderBackfill, renderMigration, throttledText } from './render-migration.js';

const base: MigrationResource = {
  id: '00000000-0000-4000-8000-000000000001',
  name: 'orders-v2',
  phase: 'cutover',
  status: 'active',
  version: 9,
  spec: { ramp: { steps: [1, 10, 50, 100] } },
  progress: {},
  gates: [{ name: 'ramp-complete', passed: false, message: 'at 10%', observed: {} }],
  allowedActions: ['advance', 'pause', 'abort', 'rollback'],
  phaseEnteredAt: '2026-01-01T00:00:00.000Z',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

describe('renderMigration', () => {
  it('shows the ramp from progress.ramp (or a top-level ramp), steps counted from 1', () => {
    const m = { ...base, progress: { ramp: { step: 1, percent: 10, status: 'holding', nextAt: '2026-01-01T00:05:00.000Z' } } };
    expect(rampText(m)).toBe('step 2/4, 10%, holding, next at 2026-01-01T00:05:00.000Z');
    expect(rampText({ ...base, ramp: { step: -1, percent: 0, nextAt: null } })).toBe('before the first step, 0%');
    expect(rampText(base)).toBeNull();
    const text = renderMigration(m);
    expect(text).toContain('  ramp       step 2/4, 10%, holding, next at 2026-01-01T00:05:00.000Z\n');
    expect(text).toContain('gates of cutover\n  not met  ramp-complete: at 10%\n');
  });

  it('shows backfill figures only once there are some, with throttling and ETA', () => {
    expect(renderBackfill(base)).toBe('');
    const m = {
      ...base,
      phase: 'backfill' as const,
      progress: { chunksDone: 3, chunksTotal: 12, chunksRunning: 2, chunksFailed: 0, rowsCopied: 15000, rowsEstimated: 60000, rowsPerSecond: 5000, etaSeconds: 9, throttled: { reason: 'replication_lag', since: '2026-01-01T00:01:00.000Z' }, completedAt: null },
    };
    expect(renderBackfill(m)).toBe(
      'backfill\n' +
        '  chunks     3/12 (25%), 2 running, 0 failed\n' +
        '  rows       15,000 of ~60,000, 5,000 rows/s, ETA 9s\n' +
        '  throttled  replication_lag since 2026-01-01T00:01:00.000Z\n',
    );
  });

  it('shows the rows skipped on their data once there are some, and nothing while there are none', () => {
    const progress = { chunksDone: 12, chunksTotal: 12, rowsCopied: 59993, rowsEstimated: 60000, completedAt: '2026-01-01T00:09:00.000Z' };
    expect(renderBackfill({ ...base, phase: 'backfill' as const, progress: { ...progress, skippedRows: { unresolved: 0, redriven: 0, accepted: 0 } } })).not.toContain('skipped');
    const text = renderBackfill({ ...base, phase: 'backfill' as const, progress: { ...progress, skippedRows: { unresolved: 3, redriven: 4, accepted: 0 } } });
    expect(text).toContain(`  skipped    3 row(s) on their data to resolve, 4 re-driven, 0 accepted (GET /v1/migrations/${base.id}/skipped-rows)\n`);
  });

  it("shows the latency guard's numbers when it holds the copy back", () => {
    const since = '2026-01-01T00:01:00.000Z';
    const progress = {
      chunksDone: 3,
      chunksTotal: 12,
      rowsCopied: 15000,
      rowsEstimated: 60000,
      rowsPerSecond: 4200,
      etaSeconds: 11,
      throttled: { reason: 'latency', since, observedP99Ms: 3.14, baselineP99Ms: 2, paceRowsPerSecond: 4200 },
      latencyGuard: { mode: 'guarding' as const, holding: true, paceRowsPerSecond: 4200, observedP99Ms: 3.14, baselineP99Ms: 2, targetP99Ms: 2.6 },
      completedAt: null,
    };
    const text = renderBackfill({ ...base, phase: 'backfill' as const, progress });
    expect(text).toContain(`  throttled  latency (p99 3.1 ms, baseline 2.0 ms, pace 4,200 rows/s) since ${since}\n`);
    expect(text).toContain('  guard      pace 4,200 rows/s, p99 3.1 ms of 2.6 ms allowed (baseline 2.0 ms), holding back\n');
    expect(throttledText({ ...progress, throttled: { reason: 'latency', since, measuringBaseline: true } })).toBe('latency (measuring the baseline)');
  });

  it('names the signal that holds the copy back, with its own units, and shows other clients\' throughput', () => {
    const since = '2026-01-01T00:01:00.000Z';
    const progress = { chunksDone: 3, chunksTotal: 12, rowsCopied: 15000, completedAt: null };
    const t = (throttled: NonNullable<Parameters<typeof throttledText>[0]>['throttled']) => throttledText({ ...progress, throttled });
    expect(t({ reason: 'latency', since, signal: 'statements', statementsObservedMeanMs: 1.26, statementsBaselineMeanMs: 0.5, paceRowsPerSecond: 800 })).toBe(
      "latency (statements' mean 1.3 ms, baseline 0.5 ms, pace 800 rows/s)",
    );
    const guard = { mode: 'guarding' as const, holding: false, paceRowsPerSecond: 800, observedP99Ms: 2, baselineP99Ms: 2, targetP99Ms: 2.6, throughput: { baselinePerSecond: 3400, observedPerSecond: 3300 } };
    expect(renderBackfill({ ...base, phase: 'backfill' as const, progress: { ...progress, latencyGuard: guard } })).toContain(
      '  guard      pace 800 rows/s, p99 2.0 ms of 2.6 ms allowed (baseline 2.0 ms), other clients 3,300 statements/s (3,400 held back)\n',
    );
    expect(t({ reason: 'latency', since, signal: 'commit', observedP99Ms: 9, baselineP99Ms: 3, paceRowsPerSecond: 800 })).toBe('latency (commit p99 9.0 ms, baseline 3.0 ms, pace 800 rows/s)');
    expect(t({ reason: 'latency', since, signal: 'throughput', statementsPerSecond: 6500, baselineStatementsPerSecond: 14500, paceRowsPerSecond: 800 })).toBe(
      'latency (other clients 6,500 statements/s, 14,500 held back, pace 800 rows/s)',
    );
  });
});
