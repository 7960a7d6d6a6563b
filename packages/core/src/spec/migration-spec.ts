import type { AbortAction, SyncMode } from './spec-schema.js';

/** A table reference with every default filled in: `schema` defaults to `public`, `key` is a list. */
export interface TableRef {
  readonly datasource: string;
  readonly schema: string;
  readonly table: string;
  readonly key: readonly string[];
}

/** Backfill tuning. Live-tunable through PATCH; effective on the next chunk. */
export interface BackfillOptions {
  /** Rows in the first chunk. @defaultValue 1000 */
  readonly initialChunkRows: number;
  /** Lower bound of the adaptive chunk size. @defaultValue 100 */
  readonly minChunkRows: number;
  /** Upper bound of the adaptive chunk size. @defaultValue 50000 */
  readonly maxChunkRows: number;
  /** Server-side execution time each chunk aims at, in milliseconds. @defaultValue 500 */
  readonly targetChunkMs: number;
  /** Chunks of this migration in flight at once (also bounded by the datasource budget). @defaultValue 2 */
  readonly concurrency: number;
  /** Cap on copied rows per second; `null` for none. @defaultValue null */
  readonly maxRowsPerSecond: number | null;
  /** Attempts per chunk before it is listed as failed. @defaultValue 5 */
  readonly maxAttempts: number;
  /**
   * Rows the backfill may skip: a chunk that fails on its data (SQLSTATE class 22 or 23: a cast, a
   * CHECK, a NOT NULL) is bisected down to the rows that cause it, the rest is copied, and those
   * rows are listed (`GET /v1/migrations/:id/skipped-rows`) for the backfill gate to wait on. Past
   * this many the migration fails instead: an error on every row is the mapping's, not the data's.
   * @defaultValue 100
   */
  readonly maxSkippedRows: number;
  /** A chunk running longer than this is cancelled and counts as a timeout, in milliseconds. @defaultValue 30000 */
  readonly chunkTimeoutMs: number;
  /**
   * Application sync: dual_write must have lasted this long, seconds, and an SDK must have reported
   * dual writes since it began, before the backfill may start (gate `dual-write-propagated`), so that
   * every SDK instance has seen the dual-write flag — a chunk copied before an instance dual-writes
   * would miss that instance's later writes of its keys. At least the applications' flag refresh
   * interval (UnleashFlagReader: `refreshIntervalMs`, 1 s by default; unleash-client's own default
   * is 15 s) plus the flag server's cache, with margin; 0 turns the gate off (a table nobody
   * writes). Trigger sync does not wait in dual_write (the triggers are installed with the phase).
   * In both modes it is also how long the reverse sync stays after a rollback or abort turned
   * `write-new` off (`ramps.reverse_until`, ADR 004). @defaultValue 10
   */
  readonly flagPropagationSeconds: number;
}

/** Database-health thresholds checked before each chunk; crossing one backs off with hysteresis. */
export interface ThrottleOptions {
  /** @defaultValue true */
  readonly enabled: boolean;
  /** Replica replay lag (pg_stat_replication), seconds. @defaultValue 10 */
  readonly maxReplicationLagSeconds: number;
  /** Sessions waiting on a lock. @defaultValue 5 */
  readonly maxLockWaiters: number;
  /** Age of the oldest running transaction, seconds. @defaultValue 300 */
  readonly maxTransactionAgeSeconds: number;
  /** Connections in use / max_connections. @defaultValue 0.8 */
  readonly maxConnectionsUsedRatio: number;
  /** Hysteresis: after a breach, resume only when every reading is below threshold × this. @defaultValue 0.8 */
  readonly recoverRatio: number;
  /** The latency guard: paces the backfill by production's latency (ADR 014). */
  readonly latencyGuard: LatencyGuardOptions;
}

/**
 * The latency guard (ADR 014): every chunk on the datasource runs at the pace that keeps the
 * production-latency signal's p99 within `baseline × (1 + latencyBudget)`, the baseline measured
 * with the backfill held back. Migrations sharing a datasource share one pace (the smallest budget
 * and the largest floor of theirs). Live-tunable through PATCH; effective within a controller tick.
 */
export interface LatencyGuardOptions {
  /** @defaultValue true (off only where `throttle.enabled` is off too, or by setting this to false) */
  readonly enabled: boolean;
  /** Allowed rise of the signal's p99 over its baseline, a fraction (0.3 = +30 %). @defaultValue 0.3 */
  readonly latencyBudget: number;
  /** The floor, rows/s: however slow production gets, the copy keeps this pace (never starved). @defaultValue 200 */
  readonly minRowsPerSecond: number;
  /**
   * The canary probe: one read-only `SELECT` representative of production (admin only; checked with
   * the PostgreSQL parser at create and against the live catalog at start), or `null` for an index
   * lookup of a random existing key of the source table. @defaultValue null
   */
  readonly probeSql: string | null;
  /**
   * A production-latency signal from Prometheus (admin only), for teams whose SLO lives there:
   * the guard keeps the query's value under `max` beside the probe's signals, or `null` for none.
   * @defaultValue null
   */
  readonly prometheus: PrometheusSignalOptions | null;
}

/**
 * `throttle.latencyGuard.prometheus`: an instant query (`GET <url>/api/v1/query`) evaluated about
 * once a second. It must return one number (a scalar or a one-series vector) — e.g. the
 * application's p99 in seconds, `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))`;
 * `max` is its ceiling in the query's own unit (the SLO). Checked against the server at start and PATCH.
 */
export interface PrometheusSignalOptions {
  /** The Prometheus server's base URL, `http://` or `https://` (e.g. `http://prometheus:9090`). */
  readonly url: string;
  /** A PromQL expression giving one number. */
  readonly query: string;
  /** The value the query must stay under, in the query's unit (> 0). */
  readonly max: number;
}

/** Shadow-read sampling and what the divergence ledger may store. */
export interface ShadowReadOptions {
  /** Share of reads compared against the new store, percent (sticky per key). @defaultValue 10 */
  readonly samplePercent: number;
  /** How long divergence must stay under the threshold before the shadow_read gate holds, seconds. @defaultValue 600 */
  readonly minWindowSeconds: number;
  /** Field paths whose values are masked in the ledger's samples. @defaultValue [] */
  readonly redact: readonly string[];
}

/** When Tideway stops a migration by itself, and what it does then. */
export interface AbortCriteria {
  /**
   * The shadow_read gate needs the Wilson score upper bound (95 %) under it (proof the rate is low);
   * an automatic abort needs the lower bound over it (proof the rate is high). @defaultValue 0.001
   */
  readonly maxDivergenceRate: number;
  /** Samples needed before divergence is judged at all. @defaultValue 1000 */
  readonly minSamples: number;
  /** @defaultValue 0.01 */
  readonly maxNewErrorRate: number;
  /** p99 latency of new over old, from shadow reads. @defaultValue 2 */
  readonly maxP99LatencyRatio: number;
  /** @defaultValue 0 */
  readonly maxFailedChunks: number;
  /** @defaultValue 0.01 */
  readonly maxDualWriteFailureRate: number;
  /** @defaultValue 'pause' */
  readonly action: AbortAction;
}

/** The read cutover ramp. */
export interface RampOptions {
  /** Percentages of reads served by the new store, strictly increasing, ending at 100. @defaultValue [1, 5, 25, 50, 100] */
  readonly steps: readonly number[];
  /** Hold at each step before the next, seconds. @defaultValue 300 */
  readonly holdSeconds: number;
  /** Wait for an operator's approval at each step. @defaultValue false */
  readonly requireApproval: boolean;
}

/** What happens after cutover. */
export interface CleanupOptions {
  /** Days from entering cleanup to the cleanup deadline. @defaultValue 30 */
  readonly deadlineDays: number;
  /** Archive flags, drop the sync and rename the old table at the deadline. @defaultValue false */
  readonly autoExecute: boolean;
  /** Drop the old table instead of renaming it; needs `dropConfirmation`. @defaultValue false */
  readonly dropOld: boolean;
  /** Must equal the source table name for `dropOld` to be accepted. @defaultValue null */
  readonly dropConfirmation: string | null;
}

/** A spec with every default resolved: what Tideway stores and acts on. */
export interface MigrationSpec {
  readonly name: string;
  readonly description: string | null;
  readonly source: TableRef;
  readonly target: TableRef;
  readonly mapping: Readonly<Record<string, string>>;
  readonly syncMode: SyncMode;
  /**
   * Source column → expression over the target row: the way back after write cutover (reverse sync
   * in trigger mode, re-drive of old-side write failures in application mode). Columns it does not
   * name are derived where the mapping copies a source column (bare, or cast); `null` derives all.
   */
  readonly reverseMapping: Readonly<Record<string, string>> | null;
  /**
   * Whether the migration keeps a way back after write cutover. `true`: the reverse mapping must
   * produce every source column the mapping reads and every NOT NULL one without a default, and a
   * round-trip check gates the write cutover. `false`: no reverse sync; rollback and abort past
   * write cutover are refused. @defaultValue true
   */
  readonly rollbackAfterWriteCutover: boolean;
  readonly backfill: BackfillOptions;
  readonly throttle: ThrottleOptions;
  readonly shadowRead: ShadowReadOptions;
  readonly abortCriteria: AbortCriteria;
  readonly ramp: RampOptions;
  readonly cleanup: CleanupOptions;
}

/** The default of every optional section; documented field by field on the interfaces above. */
export const SPEC_DEFAULTS = {
  backfill: {
    initialChunkRows: 1000,
    minChunkRows: 100,
    maxChunkRows: 50_000,
    targetChunkMs: 500,
    concurrency: 2,
    maxRowsPerSecond: null,
    maxAttempts: 5,
    maxSkippedRows: 100,
    chunkTimeoutMs: 30_000,
    flagPropagationSeconds: 10,
  },
  throttle: {
    enabled: true,
    maxReplicationLagSeconds: 10,
    maxLockWaiters: 5,
    maxTransactionAgeSeconds: 300,
    maxConnectionsUsedRatio: 0.8,
    recoverRatio: 0.8,
    latencyGuard: { enabled: true, latencyBudget: 0.3, minRowsPerSecond: 200, probeSql: null, prometheus: null },
  },
  shadowRead: { samplePercent: 10, minWindowSeconds: 600, redact: [] },
  abortCriteria: {
    maxDivergenceRate: 0.001,
    minSamples: 1000,
    maxNewErrorRate: 0.01,
    maxP99LatencyRatio: 2,
    maxFailedChunks: 0,
    maxDualWriteFailureRate: 0.01,
    action: 'pause',
  },
  ramp: { steps: [1, 5, 25, 50, 100], holdSeconds: 300, requireApproval: false },
  cleanup: { deadlineDays: 30, autoExecute: false, dropOld: false, dropConfirmation: null },
} as const satisfies Pick<MigrationSpec, 'backfill' | 'throttle' | 'shadowRead' | 'abortCriteria' | 'ramp' | 'cleanup'>;
