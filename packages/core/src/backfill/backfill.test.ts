import { describe, expect, it } from 'vitest';
import { SPEC_DEFAULTS } from '../spec/migration-spec.js';
import { nextChunkRows, retryDelayMs } from './chunk-sizing.js';
import { judgeHealth, rateCapSeconds, type HealthReading } from './throttle.js';

const base = { targetChunkMs: 500, minChunkRows: 100, maxChunkRows: 50_000 };

describe('nextChunkRows', () => {
  it('grows at most ×1.5 per chunk toward the target time', () => {
    const r = nextChunkRows({ ...base, rows: 1000, durationMs: 10, previousChunkRows: 1000, previousRowsPerMs: null });
    expect(r).toEqual({ chunkRows: 1500, rowsPerMs: 100 });
  });

  it('shrinks at once when a chunk took longer than the target', () => {
    const r = nextChunkRows({ ...base, rows: 10_000, durationMs: 2000, previousChunkRows: 10_000, previousRowsPerMs: null });
    expect(r.chunkRows).toBe(2500);
  });

  it('smooths the rate and stays within bounds', () => {
    const r = nextChunkRows({ ...base, rows: 1000, durationMs: 100, previousChunkRows: 40_000, previousRowsPerMs: 200 });
    expect(r.rowsPerMs).toBeCloseTo(0.3 * 10 + 0.7 * 200);
    expect(r.chunkRows).toBe(50_000);
    const tiny = nextChunkRows({ ...base, rows: 10, durationMs: 1000, previousChunkRows: 200, previousRowsPerMs: null });
    expect(tiny.chunkRows).toBe(100);
  });

  it('keeps rate and size when a chunk is too small to measure', () => {
    expect(nextChunkRows({ ...base, rows: 0, durationMs: 0, previousChunkRows: 700, previousRowsPerMs: null })).toEqual({ chunkRows: 700, rowsPerMs: null });
  });
});

describe('retryDelayMs', () => {
  it('doubles the ceiling per attempt up to the cap, with full jitter', () => {
    expect(retryDelayMs(1, 500, 30_000, () => 0.999999)).toBe(499);
    expect(retryDelayMs(4, 500, 30_000, () => 0.5)).toBe(2000);
    expect(retryDelayMs(20, 500, 30_000, () => 0.5)).toBe(15_000);
    expect(retryDelayMs(3, 500, 30_000, () => 0)).toBe(0);
  });
});

describe('judgeHealth', () => {
  const calm: HealthReading = { replicationLagSeconds: 0, lockWaiters: 0, oldestTransactionSeconds: 1, connectionsUsedRatio: 0.1 };
  const opts = SPEC_DEFAULTS.throttle;

  it('runs when every reading is under its threshold', () => {
    expect(judgeHealth(calm, opts, null)).toBeNull();
  });

  it('names the first reading over its threshold', () => {
    expect(judgeHealth({ ...calm, lockWaiters: 6 }, opts, null)).toBe('lock-waiters');
    expect(judgeHealth({ ...calm, replicationLagSeconds: 11 }, opts, null)).toBe('replication-lag');
  });

  it('releases only below threshold × recoverRatio (hysteresis)', () => {
    const between = { ...calm, lockWaiters: 5 }; // at threshold 5: not over, but above 5 × 0.8
    expect(judgeHealth(between, opts, null)).toBeNull();
    expect(judgeHealth(between, opts, 'lock-waiters')).toBe('lock-waiters');
    expect(judgeHealth({ ...calm, lockWaiters: 3 }, opts, 'lock-waiters')).toBeNull();
  });

  it('ignores health when throttling is disabled', () => {
    const off = { ...opts, enabled: false };
    expect(judgeHealth({ ...calm, lockWaiters: 100 }, off, null)).toBeNull();
  });

  it('judges a rate-capped backfill without hysteresis (the cap is paced, not a health reading)', () => {
    expect(judgeHealth({ ...calm, lockWaiters: 5 }, opts, 'rate-cap')).toBeNull();
    expect(judgeHealth({ ...calm, lockWaiters: 6 }, opts, 'rate-cap')).toBe('lock-waiters');
  });
});

describe('rateCapSeconds', () => {
  it('reserves rows / cap seconds', () => {
    expect(rateCapSeconds(4000, 2000)).toBe(2);
    expect(rateCapSeconds(0, 2000)).toBe(0);
  });

  it('rejects a cap that is not positive', () => {
    expect(() => rateCapSeconds(10, 0)).toThrow(RangeError);
  });
});
