import type { AbortCriteria } from '../spec/migration-spec.js';

/** z for a two-sided 95 % interval. */
export const Z_95 = 1.959963984540054;

/**
 * Lower bound of the Wilson score interval (see {@link wilsonUpperBound}): the rate the evidence
 * proves at least, at 95 %. 0 mismatches give 0.
 */
export function wilsonLowerBound(failures: number, samples: number, z = Z_95): number {
  if (samples <= 0 || failures <= 0) return 0;
  const p = failures / samples;
  const z2 = z * z;
  const centre = p + z2 / (2 * samples);
  const spread = z * Math.sqrt((p * (1 - p)) / samples + z2 / (4 * samples * samples));
  return Math.max(0, (centre - spread) / (1 + z2 / samples));
}

/**
 * Upper bound of the Wilson score interval for a binomial proportion (E. B. Wilson, "Probable
 * Inference, the Law of Succession, and Statistical Inference", JASA 1927). Unlike the plain rate it
 * stays honest for few samples and for rates near 0: 0 mismatches in 100 samples gives ≈ 0.037,
 * not 0.
 *
 * @param failures - mismatches (0 ≤ failures ≤ samples).
 * @param samples - comparisons made; 0 gives 1 (nothing is known).
 * @returns the upper bound in [0, 1].
 */
export function wilsonUpperBound(failures: number, samples: number, z = Z_95): number {
  if (samples <= 0) return 1;
  const p = failures / samples;
  const z2 = z * z;
  const centre = p + z2 / (2 * samples);
  const spread = z * Math.sqrt((p * (1 - p)) / samples + z2 / (4 * samples * samples));
  return Math.min(1, (centre + spread) / (1 + z2 / samples));
}

/**
 * Upper bounds (milliseconds) of the latency histogram buckets; the last bucket is open-ended.
 * Log-spaced from 0.25 ms to 10 s: enough resolution for a p99 ratio of two stores.
 */
export const LATENCY_BUCKETS_MS = [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000] as const;

/** Index of the histogram bucket for a latency (the last index is the open-ended bucket). */
export function latencyBucket(ms: number): number {
  const i = LATENCY_BUCKETS_MS.findIndex((bound) => ms <= bound);
  return i < 0 ? LATENCY_BUCKETS_MS.length : i;
}

/**
 * A quantile from bucket counts (the upper bound of the bucket holding it, like Prometheus'
 * histogram_quantile without interpolation). `null` for an empty histogram.
 */
export function histogramQuantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) return i < LATENCY_BUCKETS_MS.length ? (LATENCY_BUCKETS_MS[i] as number) : Infinity;
  }
  return Infinity;
}

/**
 * A quantile from bucket counts with linear interpolation inside the bucket holding it (Prometheus'
 * `histogram_quantile`): finer than {@link histogramQuantile} where a ratio of two quantiles is
 * judged against a budget of tens of percent. The open-ended last bucket answers its lower bound.
 * `null` for an empty histogram.
 */
export function interpolatedQuantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && seen + c >= rank) {
      const lower = i === 0 ? 0 : (LATENCY_BUCKETS_MS[i - 1] as number);
      if (i >= LATENCY_BUCKETS_MS.length) return lower;
      const upper = LATENCY_BUCKETS_MS[i] as number;
      return lower + (upper - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] as number;
}

/** The evidence abort criteria are judged on, over one window. */
export interface DivergenceEvidence {
  readonly samples: number;
  readonly mismatches: number;
  readonly newErrors: number;
  readonly oldP99Ms: number | null;
  readonly newP99Ms: number | null;
  readonly dualWrites: number;
  readonly dualWriteFailures: number;
  readonly failedChunks: number;
}

/** One criterion crossed, with the numbers that crossed it. */
export interface Breach {
  readonly criterion: 'maxDivergenceRate' | 'maxNewErrorRate' | 'maxP99LatencyRatio' | 'maxFailedChunks' | 'maxDualWriteFailureRate';
  readonly observed: number;
  readonly threshold: number;
  readonly samples: number;
  readonly message: string;
}

/**
 * How divergence is judged: `gate` must prove the rate is low enough (the Wilson upper bound is
 * under the threshold — too few samples fail), `abort` must prove it is too high (the Wilson lower
 * bound is over it — a clean but short stream never stops a migration).
 */
export type Judgement = 'gate' | 'abort';

/**
 * Judges evidence against `spec.abortCriteria`. Rates are judged only once `minSamples` are in;
 * divergence on the Wilson bound that fits the judgement; failed chunks count at once.
 *
 * @param judgement - `abort` for automatic actions (the default), `gate` for advancing.
 * @returns every breach; empty when all criteria hold.
 */
export function evaluateAbortCriteria(e: DivergenceEvidence, c: AbortCriteria, judgement: Judgement = 'abort'): Breach[] {
  const breaches: Breach[] = [];
  if (e.samples >= c.minSamples && e.samples > 0) {
    const bound = judgement === 'gate' ? wilsonUpperBound(e.mismatches, e.samples) : wilsonLowerBound(e.mismatches, e.samples);
    if (bound > c.maxDivergenceRate) {
      const name = judgement === 'gate' ? 'upper' : 'lower';
      breaches.push({ criterion: 'maxDivergenceRate', observed: bound, threshold: c.maxDivergenceRate, samples: e.samples, message: `divergence ${name} bound ${bound.toFixed(5)} > ${c.maxDivergenceRate} (${e.mismatches}/${e.samples})` });
    }
    const errorRate = e.newErrors / e.samples;
    if (errorRate > c.maxNewErrorRate) {
      breaches.push({ criterion: 'maxNewErrorRate', observed: errorRate, threshold: c.maxNewErrorRate, samples: e.samples, message: `new-side error rate ${errorRate.toFixed(5)} > ${c.maxNewErrorRate} (${e.newErrors}/${e.samples})` });
    }
    if (e.oldP99Ms !== null && e.newP99Ms !== null && e.oldP99Ms > 0) {
      const ratio = e.newP99Ms / e.oldP99Ms;
      if (ratio > c.maxP99LatencyRatio) {
        breaches.push({ criterion: 'maxP99LatencyRatio', observed: ratio, threshold: c.maxP99LatencyRatio, samples: e.samples, message: `p99 new/old ${e.newP99Ms}/${e.oldP99Ms} ms = ${ratio.toFixed(2)} > ${c.maxP99LatencyRatio}` });
      }
    }
  }
  if (e.dualWrites >= c.minSamples && e.dualWrites > 0) {
    const rate = e.dualWriteFailures / e.dualWrites;
    if (rate > c.maxDualWriteFailureRate) {
      breaches.push({ criterion: 'maxDualWriteFailureRate', observed: rate, threshold: c.maxDualWriteFailureRate, samples: e.dualWrites, message: `dual-write failure rate ${rate.toFixed(5)} > ${c.maxDualWriteFailureRate} (${e.dualWriteFailures}/${e.dualWrites})` });
    }
  }
  if (e.failedChunks > c.maxFailedChunks) {
    breaches.push({ criterion: 'maxFailedChunks', observed: e.failedChunks, threshold: c.maxFailedChunks, samples: e.failedChunks, message: `${e.failedChunks} failed chunk(s) > ${c.maxFailedChunks}` });
  }
  return breaches;
}

/**
 * Masks the values at `paths` (`email`, `card.number`, `items[*].secret`) in a copy of `value`
 * with the string `"[REDACTED]"`. Paths that do not exist are ignored.
 */
export function redact(value: unknown, paths: readonly string[]): unknown {
  if (paths.length === 0 || value === null || typeof value !== 'object') return value;
  const copy = structuredClone(value) as unknown;
  for (const path of paths) {
    const parts = path.split(/\.|(?=\[)/).filter(Boolean).map((p) => (p.startsWith('[') ? p.slice(1, -1) : p));
    maskAt(copy, parts);
  }
  return copy;
}

function maskAt(node: unknown, parts: string[]): void {
  if (node === null || typeof node !== 'object' || parts.length === 0) return;
  const [head, ...rest] = parts as [string, ...string[]];
  const keys = head === '*' ? Object.keys(node) : [head];
  for (const k of keys) {
    if (!(k in node)) continue;
    if (rest.length === 0) (node as Record<string, unknown>)[k] = '[REDACTED]';
    else maskAt((node as Record<string, unknown>)[k], rest);
  }
}
