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
  /** Rows copied on this migration over the last second, for the rows/s cap. */
  readonly recentRowsPerSecond: number;
}

/** Why a backfill holds back; one of the readings above, or the rate cap. */
export type ThrottleReason = 'replication-lag' | 'lock-waiters' | 'long-transaction' | 'connections' | 'rate-cap';

/**
 * Decides whether a chunk may run, with hysteresis: while not throttled, a reading above its
 * threshold throttles; once throttled, every reading must fall below threshold × `recoverRatio`
 * before chunks run again, so the backfill does not flap around a threshold.
 *
 * @param currentlyThrottled - the reason the backfill is held back now, or `null`.
 * @returns the reason to hold back, or `null` to run.
 */
export function judgeHealth(
  reading: HealthReading,
  options: ThrottleOptions,
  maxRowsPerSecond: number | null,
  currentlyThrottled: ThrottleReason | null,
): ThrottleReason | null {
  if (!options.enabled && maxRowsPerSecond === null) return null;
  const factor = currentlyThrottled === null ? 1 : options.recoverRatio;
  const checks: [ThrottleReason, number, number][] = options.enabled
    ? [
        ['replication-lag', reading.replicationLagSeconds, options.maxReplicationLagSeconds],
        ['lock-waiters', reading.lockWaiters, options.maxLockWaiters],
        ['long-transaction', reading.oldestTransactionSeconds, options.maxTransactionAgeSeconds],
        ['connections', reading.connectionsUsedRatio, options.maxConnectionsUsedRatio],
      ]
    : [];
  if (maxRowsPerSecond !== null) checks.push(['rate-cap', reading.recentRowsPerSecond, maxRowsPerSecond]);
  for (const [reason, value, threshold] of checks) {
    if (value > threshold * factor) return reason;
  }
  return null;
}
