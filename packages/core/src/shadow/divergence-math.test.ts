import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SPEC_DEFAULTS } from '../spec/migration-spec.js';
import { evaluateAbortCriteria, histogramQuantile, interpolatedQuantile, LATENCY_BUCKETS_MS, latencyBucket, redact, wilsonLowerBound, wilsonUpperBound } from './divergence-math.js';

describe('wilsonUpperBound', () => {
  it('matches known values', () => {
    expect(wilsonUpperBound(0, 100)).toBeCloseTo(0.0370, 4);
    expect(wilsonUpperBound(1, 1000)).toBeCloseTo(0.00565, 4);
    expect(wilsonUpperBound(50, 100)).toBeCloseTo(0.59617, 4); // (0.519208 + 0.099864) / 1.038415
    expect(wilsonUpperBound(0, 0)).toBe(1);
  });

  it('brackets the observed rate from both sides', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, p) => {
        const k = Math.floor(p * n);
        expect(wilsonLowerBound(k, n)).toBeLessThanOrEqual(k / n + 1e-12);
        expect(wilsonLowerBound(k, n)).toBeLessThanOrEqual(wilsonUpperBound(k, n));
      }),
    );
    expect(wilsonLowerBound(0, 1000)).toBe(0);
    expect(wilsonLowerBound(50, 100)).toBeCloseTo(0.40383, 4); // (0.519208 − 0.099864) / 1.038415
  });

  it('is at least the observed rate and shrinks toward it with more samples', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, p) => {
        const k = Math.floor(p * n);
        const u = wilsonUpperBound(k, n);
        expect(u).toBeGreaterThanOrEqual(k / n - 1e-12);
        expect(u).toBeLessThanOrEqual(1);
        expect(wilsonUpperBound(k * 10, n * 10)).toBeLessThanOrEqual(u + 1e-12);
      }),
    );
  });
});

describe('latency histogram', () => {
  it('buckets and reads quantiles back', () => {
    expect(latencyBucket(0.1)).toBe(0);
    expect(latencyBucket(4)).toBe(5);
    expect(latencyBucket(60_000)).toBe(23);
    const counts = Array(24).fill(0) as number[];
    for (let i = 0; i < 99; i++) counts[latencyBucket(2)]! += 1;
    counts[latencyBucket(40)]! += 1;
    expect(histogramQuantile(counts, 0.5)).toBe(2);
    expect(histogramQuantile(counts, 0.99)).toBe(2);
    expect(histogramQuantile(counts, 1)).toBe(50);
    expect(histogramQuantile(Array(24).fill(0), 0.99)).toBeNull();
  });
});

describe('evaluateAbortCriteria', () => {
  const base = { samples: 0, mismatches: 0, newErrors: 0, oldP99Ms: null, newP99Ms: null, dualWrites: 0, dualWriteFailures: 0, failedChunks: 0 };
  const c = SPEC_DEFAULTS.abortCriteria;

  it('judges nothing before minSamples', () => {
    expect(evaluateAbortCriteria({ ...base, samples: 999, mismatches: 999 }, c)).toEqual([]);
  });

  it('gates on the Wilson upper bound: too few clean samples do not prove 0.1 %', () => {
    // 0 in 1000: upper bound 0.0038 > 0.001.
    expect(evaluateAbortCriteria({ ...base, samples: 1000 }, c, 'gate').map((b) => b.criterion)).toEqual(['maxDivergenceRate']);
    // 0 in 10000: upper bound 0.00038 < 0.001.
    expect(evaluateAbortCriteria({ ...base, samples: 10_000 }, c, 'gate')).toEqual([]);
  });

  it('aborts on the Wilson lower bound: only proven divergence stops a migration', () => {
    expect(evaluateAbortCriteria({ ...base, samples: 1000 }, c)).toEqual([]);
    // 1 in 1000 is the threshold itself, not proof of more; 8 in 1000 is (lower bound ≈ 0.0041).
    expect(evaluateAbortCriteria({ ...base, samples: 1000, mismatches: 1 }, c)).toEqual([]);
    expect(evaluateAbortCriteria({ ...base, samples: 1000, mismatches: 8 }, c).map((b) => b.criterion)).toEqual(['maxDivergenceRate']);
  });

  it('names every criterion crossed with its numbers', () => {
    const breaches = evaluateAbortCriteria(
      { ...base, samples: 10_000, mismatches: 50, newErrors: 200, oldP99Ms: 10, newP99Ms: 30, dualWrites: 5000, dualWriteFailures: 100, failedChunks: 1 },
      c,
    );
    expect(breaches.map((b) => b.criterion)).toEqual(['maxDivergenceRate', 'maxNewErrorRate', 'maxP99LatencyRatio', 'maxDualWriteFailureRate', 'maxFailedChunks']);
    expect(breaches[2]).toMatchObject({ observed: 3, threshold: 2 });
    expect(breaches[3]).toMatchObject({ observed: 0.02, threshold: 0.01, samples: 5000 });
  });
});

describe('redact', () => {
  it('masks listed paths, including array wildcards, and leaves the input alone', () => {
    const input = { email: 'a@b.c', card: { number: '4111', brand: 'visa' }, items: [{ secret: 1, sku: 'x' }, { secret: 2 }] };
    expect(redact(input, ['email', 'card.number', 'items[*].secret', 'missing.path'])).toEqual({
      email: '[REDACTED]',
      card: { number: '[REDACTED]', brand: 'visa' },
      items: [{ secret: '[REDACTED]', sku: 'x' }, { secret: '[REDACTED]' }],
    });
    expect(input.email).toBe('a@b.c');
  });
});

describe('interpolatedQuantile', () => {
  const counts = (entries: Record<number, number>) => Array.from({ length: LATENCY_BUCKETS_MS.length + 1 }, (_, i) => entries[i] ?? 0);

  it('interpolates inside the bucket that holds the rank, as histogram_quantile does', () => {
    // 100 calls in (1, 2] ms: the p50 is halfway, the p99 near the top.
    const h = counts({ [latencyBucket(1.5)]: 100 });
    expect(interpolatedQuantile(h, 0.5)).toBeCloseTo(1.5, 6);
    expect(interpolatedQuantile(h, 0.99)).toBeCloseTo(1.99, 6);
    expect(histogramQuantile(h, 0.5)).toBe(2);
  });

  it('moves with the tail across buckets, answers the open bucket by its lower bound, and null when empty', () => {
    const h = counts({ [latencyBucket(0.8)]: 98, [latencyBucket(12)]: 2 });
    const p99 = interpolatedQuantile(h, 0.99) as number;
    expect(p99).toBeGreaterThan(10);
    expect(p99).toBeLessThanOrEqual(15);
    expect(interpolatedQuantile(counts({ [LATENCY_BUCKETS_MS.length]: 5 }), 0.99)).toBe(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]);
    expect(interpolatedQuantile(counts({}), 0.99)).toBeNull();
  });
});
