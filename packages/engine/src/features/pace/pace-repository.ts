import type { Database, DatasourcePaceRow } from '@tideway/db';
import { reserveSlot, shiftSlot } from './gcra.js';
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
  readonly worseSignal?: 'read' | 'commit' | null;
  readonly probeSamples?: number;
  readonly holding?: boolean;
  readonly controller?: unknown;
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
      .set({ holder: null, lease_until: null, mode: 'baseline', mode_since: sql`now()`, holding: false, controller: null, pace_rows_per_second: null, updated_at: sql`now()` })
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

  /** Reserves `seconds` of the datasource's pace for a chunk (GCRA, {@link reserveSlot}). */
  async reserve(db: Kysely<Database>, datasource: string, seconds: number): Promise<{ granted: boolean; waitMs: number }> {
    return reserveSlot(db, { table: 'datasource_paces', key: 'datasource', value: datasource }, seconds);
  }

  /** Corrects a reservation by the chunk's actual rows (`seconds` may be negative). */
  async adjust(db: Kysely<Database>, datasource: string, seconds: number): Promise<void> {
    await shiftSlot(db, { table: 'datasource_paces', key: 'datasource', value: datasource }, seconds);
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
