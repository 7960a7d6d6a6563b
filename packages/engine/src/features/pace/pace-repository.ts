import type { Database, DatasourcePaceRow } from '@tideway/db';
import { shiftSlot } from './gcra.js';
import { sql, type Kysely } from 'kysely';

/** The fields a guard writes on each tick. */
export interface PaceUpdate {
  readonly mode?: 'baseline' | 'guarding';
  /** Starts the mode anew (`mode_since = now()`). */
  readonly restartMode?: boolean;
  readonly nextBaselineInMs?: number | null;
  readonly paceRowsPerSecond?: number | null;
  readonly baselineP50Ms?: number | null;
  readonly baselineP99Ms?: number | null;
  readonly observedP50Ms?: number | null;
  readonly observedP99Ms?: number | null;
  readonly commitBaselineP99Ms?: number | null;
  readonly commitObservedP99Ms?: number | null;
  readonly worseSignal?: 'read' | 'commit' | 'prometheus' | 'statements' | 'throughput' | 'application' | null;
  readonly statementsBaselineMs?: number | null;
  readonly statementsObservedMs?: number | null;
  readonly throughputBaselinePerSecond?: number | null;
  readonly throughputObservedPerSecond?: number | null;
  readonly applicationBaselineP99Ms?: number | null;
  readonly applicationObservedP99Ms?: number | null;
  readonly prometheus?: { readonly value: number | null; readonly max: number | null; readonly error: string | null };
  readonly probeSamples?: number;
  readonly holding?: boolean;
  readonly controller?: unknown;
}

/** How long the application's latency reports are kept, seconds (the guard reads the last 30 s at most). */
const APP_LATENCY_KEEP_SECONDS = 600;

/**
 * Stores the application's old-store latency of one SDK report (inside the caller's transaction)
 * for the latency guard of the migration's source datasource, and drops that datasource's reports
 * older than 10 minutes.
 */
export async function recordAppLatency(db: Kysely<Database>, migrationId: string, datasource: string, latency: { readonly counts: readonly number[]; readonly sumMs: number }): Promise<void> {
  const calls = latency.counts.reduce((a, b) => a + b, 0);
  if (calls === 0) return;
  await db.insertInto('app_latency_reports').values({ migration_id: migrationId, datasource, counts: [...latency.counts], sum_ms: latency.sumMs, calls }).execute();
  await db.deleteFrom('app_latency_reports').where('datasource', '=', datasource).where('received_at', '<', sql<Date>`now() - make_interval(secs => ${APP_LATENCY_KEEP_SECONDS})`).execute();
}

/** Summed SDK latency reports: calls per `LATENCY_BUCKETS_MS` bucket (the last one open-ended), and their count. */
export interface AppLatencyHistogram {
  readonly counts: number[];
  calls: number;
}

/** What {@link PaceRepository.admit} decided for a chunk. */
export interface Admission {
  readonly granted: boolean;
  /** Milliseconds until the next slot (0 when granted). */
  readonly waitMs: number;
  /** The pace the chunk is (or would be) reserved at, rows/s. */
  readonly paceRowsPerSecond: number;
  /** A live guard holds the copy back (measuring its baseline, or pacing under a breach). */
  readonly holding: boolean;
  /** A live guard measures its baseline: no chunk starts. */
  readonly measuring: boolean;
}

/** `datasource_paces`: one latency guard per datasource, held by one worker at a time (ADR 014). */
export class PaceRepository {
  /**
   * Takes or renews the guard of `datasource` for `leaseMs`: granted when nobody holds it, its lease
   * ran out, or `holder` holds it already. A new holder starts with a baseline window (it has no
   * samples of its own yet).
   * @returns the row when `holder` holds the guard now, else `null`.
   */
  async acquire(db: Kysely<Database>, datasource: string, holder: string, leaseMs: number): Promise<DatasourcePaceRow | null> {
    await db.insertInto('datasource_paces').values({ datasource }).onConflict((oc) => oc.column('datasource').doNothing()).execute();
    const r = await sql<DatasourcePaceRow>`
      UPDATE datasource_paces p SET
        holder = ${holder},
        lease_until = now() + make_interval(secs => ${leaseMs / 1000}::float8),
        mode = CASE WHEN p.holder IS DISTINCT FROM ${holder} THEN 'baseline' ELSE p.mode END,
        mode_since = CASE WHEN p.holder IS DISTINCT FROM ${holder} THEN now() ELSE p.mode_since END,
        updated_at = now()
      WHERE p.datasource = ${datasource} AND (p.holder = ${holder} OR p.holder IS NULL OR p.lease_until < now())
      RETURNING p.*`.execute(db);
    return r.rows[0] ?? null;
  }

  /**
   * Gives the guard up (nothing to guard any more): the next holder starts with a baseline and a
   * fresh controller — a pace learned on an earlier workload says nothing about the next backfill.
   * (A holder that dies instead keeps the row as it was: its successor resumes from that pace.)
   */
  async release(db: Kysely<Database>, datasource: string, holder: string): Promise<void> {
    await db
      .updateTable('datasource_paces')
      .set({
        holder: null,
        lease_until: null,
        mode: 'baseline',
        mode_since: sql`now()`,
        holding: false,
        controller: null,
        pace_rows_per_second: null,
        prometheus_value: null,
        prometheus_max: null,
        prometheus_error: null,
        statements_baseline_ms: null,
        statements_observed_ms: null,
        throughput_baseline_per_second: null,
        throughput_observed_per_second: null,
        application_baseline_p99_ms: null,
        application_observed_p99_ms: null,
        updated_at: sql`now()`,
      })
      .where('datasource', '=', datasource)
      .where('holder', '=', holder)
      .execute();
  }

  /** Writes a tick's results, fenced: only while `holder` holds the guard. @returns whether it did. */
  async update(db: Kysely<Database>, datasource: string, holder: string, u: PaceUpdate): Promise<boolean> {
    const r = await db
      .updateTable('datasource_paces')
      .set({
        ...(u.mode !== undefined ? { mode: u.mode } : {}),
        ...(u.restartMode ? { mode_since: sql`now()` } : {}),
        ...(u.nextBaselineInMs !== undefined
          ? { next_baseline_at: u.nextBaselineInMs === null ? null : sql`now() + make_interval(secs => ${u.nextBaselineInMs / 1000}::float8)` }
          : {}),
        ...(u.paceRowsPerSecond !== undefined ? { pace_rows_per_second: u.paceRowsPerSecond } : {}),
        ...(u.baselineP50Ms !== undefined ? { baseline_p50_ms: u.baselineP50Ms } : {}),
        ...(u.baselineP99Ms !== undefined ? { baseline_p99_ms: u.baselineP99Ms } : {}),
        ...(u.observedP50Ms !== undefined ? { observed_p50_ms: u.observedP50Ms } : {}),
        ...(u.observedP99Ms !== undefined ? { observed_p99_ms: u.observedP99Ms } : {}),
        ...(u.commitBaselineP99Ms !== undefined ? { commit_baseline_p99_ms: u.commitBaselineP99Ms } : {}),
        ...(u.commitObservedP99Ms !== undefined ? { commit_observed_p99_ms: u.commitObservedP99Ms } : {}),
        ...(u.worseSignal !== undefined ? { worse_signal: u.worseSignal } : {}),
        ...(u.statementsBaselineMs !== undefined ? { statements_baseline_ms: u.statementsBaselineMs } : {}),
        ...(u.statementsObservedMs !== undefined ? { statements_observed_ms: u.statementsObservedMs } : {}),
        ...(u.throughputBaselinePerSecond !== undefined ? { throughput_baseline_per_second: u.throughputBaselinePerSecond } : {}),
        ...(u.throughputObservedPerSecond !== undefined ? { throughput_observed_per_second: u.throughputObservedPerSecond } : {}),
        ...(u.applicationBaselineP99Ms !== undefined ? { application_baseline_p99_ms: u.applicationBaselineP99Ms } : {}),
        ...(u.applicationObservedP99Ms !== undefined ? { application_observed_p99_ms: u.applicationObservedP99Ms } : {}),
        ...(u.prometheus !== undefined ? { prometheus_value: u.prometheus.value, prometheus_max: u.prometheus.max, prometheus_error: u.prometheus.error } : {}),
        ...(u.probeSamples !== undefined ? { probe_samples: u.probeSamples } : {}),
        ...(u.holding !== undefined ? { holding: u.holding } : {}),
        ...(u.controller !== undefined ? { controller: JSON.stringify(u.controller) } : {}),
        updated_at: sql`now()`,
      })
      .where('datasource', '=', datasource)
      .where('holder', '=', holder)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** The guard row of `datasource`, with whether its holder's lease is live and how long its mode has lasted (database time). */
  async get(db: Kysely<Database>, datasource: string): Promise<(DatasourcePaceRow & { live: boolean; mode_ms: number; baseline_due: boolean }) | null> {
    const r = await sql<DatasourcePaceRow & { live: boolean; mode_ms: number; baseline_due: boolean }>`
      SELECT p.*, coalesce(p.holder IS NOT NULL AND p.lease_until >= now(), false) AS live,
             (extract(epoch FROM now() - p.mode_since) * 1000)::float8 AS mode_ms,
             coalesce(p.next_baseline_at <= now(), false) AS baseline_due
        FROM datasource_paces p WHERE p.datasource = ${datasource}`.execute(db);
    return r.rows[0] ?? null;
  }

  /** Every guard row (for progress and metrics). */
  async list(db: Kysely<Database>): Promise<DatasourcePaceRow[]> {
    return db.selectFrom('datasource_paces').selectAll().orderBy('datasource').execute();
  }

  /**
   * Admission of a guarded chunk of `rows` rows, in one statement under the row's lock: while a live
   * guard measures its baseline nothing is granted; otherwise the rows are reserved at the live
   * guard's pace, or at `floorRowsPerSecond` when no live guard has set one (GCRA, as
   * {@link reserveSlot}). Creates the datasource's row the first time.
   * @returns `granted`; `waitMs` until the next slot (or until the baseline is re-checked:
   *   `measuring`); the pace (rows/s) the reservation was made at; whether the guard holds back.
   */
  async admit(db: Kysely<Database>, datasource: string, rows: number, floorRowsPerSecond: number): Promise<Admission> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await sql<{ granted: boolean; wait_ms: number; pace: number; holding: boolean; measuring: boolean }>`
        WITH cur AS (
          SELECT p.rate_tat, p.holding, p.mode, p.pace_rows_per_second,
                 coalesce(p.holder IS NOT NULL AND p.lease_until >= now(), false) AS live
            FROM datasource_paces p WHERE p.datasource = ${datasource} FOR UPDATE),
        d AS (
          SELECT cur.*, (live AND mode = 'baseline') AS measuring,
                 CASE WHEN live AND pace_rows_per_second > 0 THEN pace_rows_per_second ELSE ${floorRowsPerSecond}::float8 END AS pace
            FROM cur),
        upd AS (
          UPDATE datasource_paces p SET rate_tat = now() + make_interval(secs => ${rows}::float8 / d.pace)
            FROM d WHERE p.datasource = ${datasource} AND NOT d.measuring AND (d.rate_tat IS NULL OR d.rate_tat <= now())
            RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM upd) AS granted, d.pace, d.measuring, (d.live AND (d.holding OR d.measuring)) AS holding,
               coalesce(greatest(0, extract(epoch FROM d.rate_tat - now()) * 1000), 0)::float8 AS wait_ms
          FROM d`.execute(db);
      const out = r.rows[0];
      if (out) return { granted: out.granted, waitMs: out.wait_ms, paceRowsPerSecond: out.pace, holding: out.holding, measuring: out.measuring };
      await db.insertInto('datasource_paces').values({ datasource }).onConflict((oc) => oc.column('datasource').doNothing()).execute();
    }
    throw new Error(`datasource_paces row of "${datasource}" vanished while admitting a chunk`);
  }

  /**
   * Whether {@link admit} could grant a chunk on `datasource` now, read without reserving anything
   * (no lock): a chunk whose slot is not due yet is sent back on this one read instead of the
   * catalog and health checks it would run before admission (each costs the datasource round trips
   * the guard is holding back; measured at saturation: the guard's holder worker used 122 ms of CPU
   * per second at the floor's pace, a third of it in socket writes).
   * @returns `due` (no live baseline and the slot due, or no row yet), `waitMs` until the slot, and
   *   whether a live guard measures its baseline or holds the copy back.
   */
  async peek(db: Kysely<Database>, datasource: string): Promise<{ due: boolean; waitMs: number; measuring: boolean; holding: boolean }> {
    const r = await sql<{ wait_ms: number; measuring: boolean; holding: boolean }>`
      SELECT coalesce(greatest(0, extract(epoch FROM p.rate_tat - now()) * 1000), 0)::float8 AS wait_ms,
             coalesce(p.holder IS NOT NULL AND p.lease_until >= now() AND p.mode = 'baseline', false) AS measuring,
             coalesce(p.holder IS NOT NULL AND p.lease_until >= now() AND (p.holding OR p.mode = 'baseline'), false) AS holding
        FROM datasource_paces p WHERE p.datasource = ${datasource}`.execute(db);
    const row = r.rows[0];
    if (!row) return { due: true, waitMs: 0, measuring: false, holding: false };
    return { due: !row.measuring && row.wait_ms <= 0, waitMs: row.wait_ms, measuring: row.measuring, holding: row.holding };
  }

  /** Corrects a reservation by the chunk's actual rows (`seconds` may be negative). */
  async adjust(db: Kysely<Database>, datasource: string, seconds: number): Promise<void> {
    await shiftSlot(db, { table: 'datasource_paces', key: 'datasource', value: datasource }, seconds);
  }

  /**
   * The application's old-store latency histograms on `datasource` (SDK reports, every migration on
   * it summed), in one read: `long` of the reports received in the last `spanMs`, `short` of those
   * in the last `shortSpanMs` (≤ `spanMs`; 0 for none): counts per `LATENCY_BUCKETS_MS` bucket and their calls.
   */
  async appLatencyWithin(db: Kysely<Database>, datasource: string, spanMs: number, shortSpanMs = 0): Promise<{ long: AppLatencyHistogram; short: AppLatencyHistogram }> {
    const rows = await db
      .selectFrom('app_latency_reports')
      .select(['counts', 'calls', sql<number>`(extract(epoch FROM now() - received_at) * 1000)::float8`.as('age_ms')])
      .where('datasource', '=', datasource)
      .where('received_at', '>', sql<Date>`now() - make_interval(secs => ${spanMs / 1000}::float8)`)
      .execute();
    const long: AppLatencyHistogram = { counts: [], calls: 0 };
    const short: AppLatencyHistogram = { counts: [], calls: 0 };
    for (const r of rows) {
      for (const h of r.age_ms < shortSpanMs ? [long, short] : [long]) {
        r.counts.forEach((c, i) => (h.counts[i] = (h.counts[i] ?? 0) + c));
        h.calls += r.calls;
      }
    }
    return { long, short };
  }

  /** Rows the datasource's chunks copied per second over the last `windowMs` (chunks finished in it). */
  async achievedRowsPerSecond(db: Kysely<Database>, datasource: string, windowMs: number): Promise<number> {
    const r = await sql<{ rows: number }>`
      SELECT coalesce(sum(c.rows_copied), 0)::float8 AS rows
        FROM backfill_chunks c JOIN backfill_runs r ON r.migration_id = c.migration_id
       WHERE r.datasource = ${datasource} AND r.completed_at IS NULL AND c.status = 'done'
         AND c.finished_at > now() - make_interval(secs => ${windowMs / 1000}::float8)`.execute(db);
    return (r.rows[0]?.rows ?? 0) / (windowMs / 1000);
  }
}
