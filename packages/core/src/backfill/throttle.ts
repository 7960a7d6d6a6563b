import type { ThrottleOptions } from '../spec/migration-spec.js';

/** A reading of a datasource's health, taken before each chunk. */
export interface HealthReading {
  /** Largest replica replay lag in pg_stat_replication, seconds (0 without replicas). */
  readonly replicationLagSeconds: number;
  /** Sessions waiting on a lock. */
  readonly lockWaiters: number;
  /** Age of the oldest running transaction of other clients, seconds. */
  readonly oldestTransactionSeconds: number;
  /** Connections in use / max_connections. */
  readonly connectionsUsedRatio: number;
}

/**
 * Why a backfill holds back: one of the readings above, the rows/s cap (which is not judged here
 * but paced before each chunk, see {@link rateCapSeconds}), or the latency guard (holding the copy
 * to the pace production's latency allows, or measuring its baseline; ADR 014).
 */
export type ThrottleReason = 'replication-lag' | 'lock-waiters' | 'long-transaction' | 'connections' | 'rate-cap' | 'latency';

/**
 * Decides whether a chunk may run, with hysteresis: while not throttled, a reading above its
 * threshold throttles; once throttled, every reading must fall below threshold × `recoverRatio`
 * before chunks run again, so the backfill does not flap around a threshold.
 *
 * @param currentlyThrottled - the reason the backfill is held back now, or `null`.
 * @returns the reason to hold back, or `null` to run (always `null` when throttling is disabled).
 */
export function judgeHealth(reading: HealthReading, options: ThrottleOptions, currentlyThrottled: ThrottleReason | null): ThrottleReason | null {
  if (!options.enabled) return null;
  const factor = currentlyThrottled === null || currentlyThrottled === 'rate-cap' || currentlyThrottled === 'latency' ? 1 : options.recoverRatio;
  const checks: [ThrottleReason, number, number][] = [
    ['replication-lag', reading.replicationLagSeconds, options.maxReplicationLagSeconds],
    ['lock-waiters', reading.lockWaiters, options.maxLockWaiters],
    ['long-transaction', reading.oldestTransactionSeconds, options.maxTransactionAgeSeconds],
    ['connections', reading.connectionsUsedRatio, options.maxConnectionsUsedRatio],
  ];
  for (const [reason, value, threshold] of checks) {
    if (value > threshold * factor) return reason;
  }
  return null;
}

/**
 * The time a chunk of `rows` rows reserves under the rows/s cap, seconds. The cap is enforced as
 * pacing with the Generic Cell Rate Algorithm (ITU-T I.371; Brandur Leach, "Rate limiting, cells,
 * and GCRA", 2015): a chunk may start only once the run's theoretical arrival time (TAT) has passed,
 * and starting moves the TAT to `now + rateCapSeconds(rows, cap)`. Unlike comparing a rate sampled
 * over the last second with the cap, this cannot let two chunks through in one window, so the
 * achieved rate stays at or under the cap.
 *
 * @param rows - rows the chunk is expected to copy (≥ 0).
 * @param maxRowsPerSecond - the cap, rows per second (> 0).
 * @example
 * rateCapSeconds(4000, 2000); // 2
 */
export function rateCapSeconds(rows: number, maxRowsPerSecond: number): number {
  if (!(maxRowsPerSecond > 0)) throw new RangeError(`maxRowsPerSecond must be > 0, got ${maxRowsPerSecond}`);
  return Math.max(0, rows) / maxRowsPerSecond;
}
