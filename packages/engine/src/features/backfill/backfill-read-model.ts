import type { ChunkStatus, Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Page } from '../migrations/migration-read-model.js';
import { InvalidCursorError } from '../migrations/migration-read-model.js';
import { isAcceptedSkipSql, purgeWaitsUntilSql } from './backfill-repository.js';

/** `progress` of a migration in or after backfill (issue 3's shape). */
export interface BackfillProgress {
  readonly rowsCopied: number;
  readonly rowsEstimated: number;
  readonly chunksDone: number;
  /** Planned chunks plus the estimated number still to plan. */
  readonly chunksTotal: number;
  readonly chunksFailed: number;
  readonly chunksPending: number;
  readonly chunksRunning: number;
  /** Rows copied per second over the last 60 s (wall clock, throttled time included). */
  readonly rowsPerSecond: number;
  /** Remaining rows / the rate: the latency guard's pace while it holds the copy back, else rowsPerSecond; `null` while nothing is moving. */
  readonly etaSeconds: number | null;
  readonly chunkRows: number;
  readonly planningDone: boolean;
  /**
   * Why the backfill holds back now, since when; for `latency` also the guard's numbers (the
   * signal's p99 and its baseline, ms; the pace, rows/s; whether it is measuring its baseline).
   */
  readonly throttled: {
    readonly reason: string;
    readonly since: string;
    readonly observedP99Ms?: number | null;
    readonly baselineP99Ms?: number | null;
    readonly paceRowsPerSecond?: number | null;
    readonly measuringBaseline?: boolean;
    /** Which signal's numbers these are (`read` or `commit` probe, `statements` (means, ms), `throughput` (other clients' statements/s), or `prometheus`: then the value and its ceiling). */
    readonly signal?: 'read' | 'commit' | 'statements' | 'throughput' | 'application' | 'prometheus';
    readonly prometheusValue?: number | null;
    readonly prometheusMax?: number;
    readonly statementsObservedMeanMs?: number | null;
    readonly statementsBaselineMeanMs?: number | null;
    readonly statementsPerSecond?: number | null;
    readonly baselineStatementsPerSecond?: number | null;
  } | null;
  /** The datasource's latency guard (ADR 014) while this run is guarded and not done; `null` otherwise. */
  readonly latencyGuard: LatencyGuardView | null;
  readonly startedAt: string;
  readonly completedAt: string | null;
  /**
   * The purge of what an earlier run left in the target, which precedes the first chunk.
   * `waitsUntil`: while application instances may still write the target after a rollback from
   * write cutover (the reverse sync's grace, ISO time), the purge has not begun; else `null`.
   */
  readonly targetPurge: { readonly done: boolean; readonly rowsRemoved: number; readonly waitsUntil: string | null };
  /** New-side write failures (the SDK's or the sync trigger's) not re-driven yet. */
  readonly writeFailuresPending: number;
  /** One-row chunks left out because of their row's data (see `GET /v1/migrations/:id/skipped-rows`). */
  readonly chunksSkipped: number;
  /** The rows left out on their data: not resolved yet (the gate waits), re-driven after a fix, accepted by an admin. */
  readonly skippedRows: { readonly unresolved: number; readonly redriven: number; readonly accepted: number };
}

/** A source row the backfill left out because of its data, as `GET /v1/migrations/:id/skipped-rows` lists it. */
export interface SkippedRowView {
  /** The source key, one text value per key column (`spec.source.key` order). */
  readonly key: string[];
  readonly error: string;
  /** The SQLSTATE (class 22 data exception or 23 integrity constraint violation). */
  readonly sqlstate: string;
  /** The constraint the row broke, when the error names one. */
  readonly constraint: string | null;
  readonly detectedAt: string;
  readonly resolution: 'redriven' | 'accepted' | null;
  readonly resolvedAt: string | null;
  readonly resolvedBy: string | null;
  /** Why an admin accepted it. */
  readonly reason: string | null;
  readonly chunkId: number;
}

/** The latency guard of a datasource as progress shows it. */
export interface LatencyGuardView {
  /** `baseline` while the backfill is held back to measure the baseline, else `guarding`. */
  readonly mode: 'baseline' | 'guarding';
  /** Whether the guard is holding the copy back (a breach set it; running free for a while clears it). */
  readonly holding: boolean;
  /** The pace every chunk on the datasource obeys, rows/s; `null` before the first baseline. */
  readonly paceRowsPerSecond: number | null;
  /** The probe's p50/p99 with the backfill held back, and over the last 2 s, ms. */
  readonly baselineP50Ms: number | null;
  readonly baselineP99Ms: number | null;
  readonly observedP50Ms: number | null;
  readonly observedP99Ms: number | null;
  /** The budget the guard keeps the read probe's p99 within: baseline × (1 + budget), ms. */
  readonly targetP99Ms: number | null;
  /** The commit probe's p99 with the backfill held back and over the last 2 s, ms (`null` where commits are not probed). */
  readonly commitBaselineP99Ms: number | null;
  readonly commitObservedP99Ms: number | null;
  /** The signal that rose more over its baseline at the last tick: the one the controller judged. */
  readonly signal: 'read' | 'commit' | 'statements' | 'throughput' | 'application' | 'prometheus' | null;
  /** The application's own old-store p99 from its SDK reports, with the backfill held back and over the last 5 s, ms; `null` without reports. */
  readonly application: { readonly baselineP99Ms: number | null; readonly observedP99Ms: number | null } | null;
  /**
   * Mean execution time of other clients' statements (`pg_stat_statements`, where the extension is
   * created and loaded) with the backfill held back and over the last 5 s, ms; `null` without it.
   */
  readonly statements: { readonly baselineMeanMs: number | null; readonly observedMeanMs: number | null } | null;
  /**
   * Other clients' statements per second (`pg_stat_statements`) with the backfill held back and
   * over the last 5 s; `null` without the extension. Judged as a latency (signal `throughput`,
   * ADR 014 "Throughput as the backstop"): a closed-loop client feels a slower database as a lower
   * rate (Little's law); a rate that fell because traffic went away is learned by a relearn.
   */
  readonly throughput: { readonly baselinePerSecond: number | null; readonly observedPerSecond: number | null } | null;
  /**
   * The Prometheus signal (`throttle.latencyGuard.prometheus`): its newest value (the query's unit;
   * `null` when no fresh one), the ceiling it is held under, and why its newest query failed;
   * `null` when no guarded migration on the datasource names one.
   */
  readonly prometheus: { readonly value: number | null; readonly max: number; readonly error: string | null } | null;
  /** The worker running the guard, `null` when no live worker does (chunks then run at the floor). */
  readonly holder: string | null;
}

/** A chunk as listed by `GET /v1/migrations/:id/chunks`. */
export interface ChunkView {
  readonly id: number;
  readonly lowerKey: string[] | null;
  readonly upperKey: string[] | null;
  readonly status: ChunkStatus;
  readonly attempts: number;
  readonly timeouts: number;
  readonly rowsCopied: number | null;
  readonly durationMs: number | null;
  readonly worker: string | null;
  readonly leaseExpiresAt: string | null;
  readonly lastError: string | null;
  readonly finishedAt: string | null;
}

const WINDOW_SECONDS = 60;

/** Seconds to copy `remaining` rows at `rate` rows/s; `null` at no rate. */
function eta(remaining: number, rate: number): number | null {
  return rate > 0 ? Math.ceil(remaining / rate) : null;
}

/** Reads backfill progress and chunks. */
export class BackfillReadModel {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * The progress figures, or `null` when the migration never entered backfill.
   * @param latencyBudget - the migration's `throttle.latencyGuard.latencyBudget` when the guard is on
   *   for it, `null` when it is off (then `latencyGuard` is `null`). @defaultValue null
   */
  async progress(migrationId: string, latencyBudget: number | null = null): Promise<BackfillProgress | null> {
    const run = await this.db.selectFrom('backfill_runs').selectAll().where('migration_id', '=', migrationId).executeTakeFirst();
    if (!run) return null;
    const pace =
      latencyBudget !== null && !run.completed_at
        ? await this.db
            .selectFrom('datasource_paces')
            .selectAll()
            .select(sql<boolean>`coalesce(holder IS NOT NULL AND lease_until >= now(), false)`.as('live'))
            .where('datasource', '=', run.datasource)
            .executeTakeFirst()
        : undefined;
    const guard: LatencyGuardView | null = pace
      ? {
          mode: pace.mode,
          holding: pace.live && pace.holding,
          paceRowsPerSecond: pace.pace_rows_per_second === null ? null : Math.round(pace.pace_rows_per_second),
          baselineP50Ms: pace.baseline_p50_ms,
          baselineP99Ms: pace.baseline_p99_ms,
          observedP50Ms: pace.observed_p50_ms,
          observedP99Ms: pace.observed_p99_ms,
          targetP99Ms: pace.baseline_p99_ms === null || latencyBudget === null ? null : pace.baseline_p99_ms * (1 + latencyBudget),
          commitBaselineP99Ms: pace.commit_baseline_p99_ms,
          commitObservedP99Ms: pace.commit_observed_p99_ms,
          signal: pace.worse_signal,
          statements: pace.statements_baseline_ms === null && pace.statements_observed_ms === null ? null : { baselineMeanMs: pace.statements_baseline_ms, observedMeanMs: pace.statements_observed_ms },
          throughput:
            pace.throughput_baseline_per_second === null && pace.throughput_observed_per_second === null
              ? null
              : { baselinePerSecond: roundOrNull(pace.throughput_baseline_per_second), observedPerSecond: roundOrNull(pace.throughput_observed_per_second) },
          application:
            pace.application_baseline_p99_ms === null && pace.application_observed_p99_ms === null ? null : { baselineP99Ms: pace.application_baseline_p99_ms, observedP99Ms: pace.application_observed_p99_ms },
          prometheus: pace.prometheus_max === null ? null : { value: pace.prometheus_value, max: pace.prometheus_max, error: pace.prometheus_error },
          holder: pace.live ? pace.holder : null,
        }
      : null;
    const agg = await this.db
      .selectFrom('backfill_chunks')
      .select([
        sql<number>`count(*) FILTER (WHERE status = 'done')::int`.as('done'),
        sql<number>`count(*) FILTER (WHERE status = 'failed')::int`.as('failed'),
        sql<number>`count(*) FILTER (WHERE status = 'pending')::int`.as('pending'),
        sql<number>`count(*) FILTER (WHERE status = 'running')::int`.as('running'),
        sql<number>`count(*) FILTER (WHERE status = 'skipped')::int`.as('skipped'),
        sql<number>`(SELECT count(*)::int FROM backfill_skipped_rows s WHERE s.migration_id = ${migrationId} AND s.resolution IS NULL)`.as('skipped_unresolved'),
        sql<number>`(SELECT count(*)::int FROM backfill_skipped_rows s WHERE s.migration_id = ${migrationId} AND s.resolution = 'redriven')`.as('skipped_redriven'),
        sql<number>`(SELECT count(*)::int FROM backfill_skipped_rows s WHERE s.migration_id = ${migrationId} AND s.resolution = 'accepted')`.as('skipped_accepted'),
        sql<number>`coalesce(sum(rows_copied) FILTER (WHERE status = 'done'), 0)::bigint`.as('rows'),
        sql<number>`coalesce(sum(rows_copied) FILTER (WHERE status = 'done' AND finished_at > now() - make_interval(secs => ${WINDOW_SECONDS})), 0)::bigint`.as('recent'),
        sql<number>`extract(epoch FROM now() - ${run.started_at})::float8`.as('elapsed'),
        sql<number>`(SELECT count(*)::int FROM divergences d WHERE d.migration_id = ${migrationId} AND d.kind = 'dual_write_failure' AND d.redriven_at IS NULL AND NOT ${isAcceptedSkipSql('d')})`.as('write_failures'),
        purgeWaitsUntilSql(migrationId).as('purge_waits_until'),
      ])
      .where('migration_id', '=', migrationId)
      .executeTakeFirstOrThrow();
    const rowsEstimated = Math.max(run.rows_estimated, agg.rows);
    const remaining = Math.max(0, rowsEstimated - agg.rows);
    const window = Math.max(1, Math.min(WINDOW_SECONDS, agg.elapsed));
    const rowsPerSecond = run.completed_at ? 0 : agg.recent / window;
    const planned = agg.done + agg.failed + agg.pending + agg.running + agg.skipped;
    const unplanned = run.planning_done ? 0 : Math.ceil(Math.max(0, remaining - (agg.pending + agg.running) * run.chunk_rows) / run.chunk_rows);
    return {
      rowsCopied: agg.rows,
      rowsEstimated,
      chunksDone: agg.done,
      chunksSkipped: agg.skipped,
      skippedRows: { unresolved: agg.skipped_unresolved, redriven: agg.skipped_redriven, accepted: agg.skipped_accepted },
      chunksTotal: planned + unplanned,
      chunksFailed: agg.failed,
      chunksPending: agg.pending,
      chunksRunning: agg.running,
      rowsPerSecond: Math.round(rowsPerSecond),
      etaSeconds: run.completed_at ? 0 : eta(remaining, guard?.holding && guard.paceRowsPerSecond ? guard.paceRowsPerSecond : rowsPerSecond),
      chunkRows: run.chunk_rows,
      planningDone: run.planning_done,
      throttled:
        run.throttled_reason && run.throttled_since
          ? {
              reason: run.throttled_reason,
              since: run.throttled_since.toISOString(),
              ...(run.throttled_reason === 'latency' && guard ? latencyThrottle(guard) : {}),
            }
          : null,
      latencyGuard: guard,
      startedAt: run.started_at.toISOString(),
      completedAt: run.completed_at ? run.completed_at.toISOString() : null,
      targetPurge: {
        done: run.target_purged_at !== null,
        rowsRemoved: Number(run.rows_purged),
        waitsUntil: run.target_purged_at === null && agg.purge_waits_until ? new Date(agg.purge_waits_until).toISOString() : null,
      },
      writeFailuresPending: agg.write_failures,
    };
  }

  /** Progress of every migration with a backfill run that is not finished (for metrics). */
  async activeProgress(): Promise<{ migration: string; progress: BackfillProgress }[]> {
    const rows = await this.db
      .selectFrom('backfill_runs as r')
      .innerJoin('migrations as m', 'm.id', 'r.migration_id')
      .select(['m.id', 'm.name'])
      .where('m.status', 'not in', ['aborted', 'completed'])
      .execute();
    const out: { migration: string; progress: BackfillProgress }[] = [];
    for (const row of rows) {
      const progress = await this.progress(row.id);
      if (progress) out.push({ migration: row.name, progress });
    }
    return out;
  }

  /** Chunks in id order, optionally of one status. @throws InvalidCursorError for a cursor not issued here. */
  async chunks(migrationId: string, query: { status?: ChunkStatus; limit?: number; cursor?: string }): Promise<Page<ChunkView>> {
    const limit = query.limit ?? 100;
    let q = this.db.selectFrom('backfill_chunks').selectAll().where('migration_id', '=', migrationId).orderBy('id').limit(limit + 1);
    if (query.status) q = q.where('status', '=', query.status);
    if (query.cursor !== undefined) {
      const m = /^c:(\d{1,15})$/.exec(Buffer.from(query.cursor, 'base64url').toString());
      if (!m?.[1]) throw new InvalidCursorError(`cursor "${query.cursor}" is not valid`);
      q = q.where('id', '>', Number(m[1]));
    }
    const rows = await q.execute();
    const items = rows.slice(0, limit).map((r) => ({
      id: r.id,
      lowerKey: r.lower_key,
      upperKey: r.upper_key,
      status: r.status,
      attempts: r.attempts,
      timeouts: r.timeouts,
      rowsCopied: r.rows_copied,
      durationMs: r.duration_ms,
      worker: r.worker,
      leaseExpiresAt: r.lease_expires_at ? r.lease_expires_at.toISOString() : null,
      lastError: r.last_error,
      finishedAt: r.finished_at ? r.finished_at.toISOString() : null,
    }));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? Buffer.from(`c:${last.id}`).toString('base64url') : null };
  }
  /**
   * The rows a backfill left out because of their data, in the order they were found (keyset
   * pagination on the chunk that found each).
   * @param query.unresolved - only those not re-driven or accepted yet.
   * @throws InvalidCursorError for a cursor this did not hand out.
   */
  async skippedRows(migrationId: string, query: { unresolved?: boolean; limit?: number; cursor?: string }): Promise<Page<SkippedRowView>> {
    const limit = query.limit ?? 100;
    let q = this.db.selectFrom('backfill_skipped_rows').selectAll().where('migration_id', '=', migrationId).orderBy('chunk_id').limit(limit + 1);
    if (query.unresolved) q = q.where('resolution', 'is', null);
    if (query.cursor !== undefined) {
      const m = /^s:(\d{1,15})$/.exec(Buffer.from(query.cursor, 'base64url').toString());
      if (!m?.[1]) throw new InvalidCursorError(`cursor "${query.cursor}" is not valid`);
      q = q.where('chunk_id', '>', Number(m[1]));
    }
    const rows = await q.execute();
    const items = rows.slice(0, limit).map((r) => ({
      key: r.key_values,
      error: r.error,
      sqlstate: r.sqlstate,
      constraint: r.constraint_name,
      detectedAt: r.detected_at.toISOString(),
      resolution: r.resolution,
      resolvedAt: r.resolved_at ? r.resolved_at.toISOString() : null,
      resolvedBy: r.resolved_by,
      reason: r.reason,
      chunkId: Number(r.chunk_id),
    }));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? Buffer.from(`s:${last.chunkId}`).toString('base64url') : null };
  }
}

function roundOrNull(n: number | null): number | null {
  return n === null ? null : Math.round(n);
}

/**
 * The guard's numbers in `progress.throttled` while it holds the copy back: those of the signal it
 * judged (`signal`), or the read probe's when that signal has none to show, with the pace and
 * whether a baseline is being measured.
 */
function latencyThrottle(guard: LatencyGuardView): Omit<NonNullable<BackfillProgress['throttled']>, 'reason' | 'since'> {
  const pace = { paceRowsPerSecond: guard.paceRowsPerSecond, measuringBaseline: guard.mode === 'baseline' };
  if (guard.signal === 'prometheus' && guard.prometheus) return { signal: 'prometheus', prometheusValue: guard.prometheus.value, prometheusMax: guard.prometheus.max, ...pace };
  if (guard.signal === 'application' && guard.application) return { signal: 'application', observedP99Ms: guard.application.observedP99Ms, baselineP99Ms: guard.application.baselineP99Ms, ...pace };
  if (guard.signal === 'statements' && guard.statements) {
    return { signal: 'statements', observedP99Ms: null, baselineP99Ms: null, statementsObservedMeanMs: guard.statements.observedMeanMs, statementsBaselineMeanMs: guard.statements.baselineMeanMs, ...pace };
  }
  if (guard.signal === 'throughput' && guard.throughput) {
    return { signal: 'throughput', observedP99Ms: null, baselineP99Ms: null, statementsPerSecond: guard.throughput.observedPerSecond, baselineStatementsPerSecond: guard.throughput.baselinePerSecond, ...pace };
  }
  if (guard.signal === 'commit') return { signal: 'commit', observedP99Ms: guard.commitObservedP99Ms, baselineP99Ms: guard.commitBaselineP99Ms, ...pace };
  return { signal: 'read', observedP99Ms: guard.observedP99Ms, baselineP99Ms: guard.baselineP99Ms, ...pace };
}
