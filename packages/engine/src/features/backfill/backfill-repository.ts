import { reserveSlot, shiftSlot } from '../pace/gcra.js';
import type { BackfillChunkRow, BackfillRunRow, Database } from '@tideway/db';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Lease } from '../leases/leased-work.js';
import type { KeyShape, KeyValue } from './sql.js';

/** Why a row was skipped: the database's message, SQLSTATE and, for a constraint, its name. */
export interface SkipFailure {
  readonly error: string;
  readonly sqlstate: string;
  readonly constraint: string | null;
}

/** A chunk whose lease this worker holds (leased through `LeasedWork` with `CHUNK_WORK`). */
export interface ClaimedChunk extends Lease {
  readonly lower: KeyValue | null;
  readonly upper: KeyValue | null;
  readonly timeouts: number;
}

/** `key_values` is one of `keys` (skipped rows' keys, `spec.source.key` order). */
function keyValuesIn(keys: readonly KeyValue[]): RawBuilder<boolean> {
  return sql<boolean>`key_values = ANY(${sql.val(keys.map((k) => JSON.stringify(k)))}::jsonb[])`;
}

/**
 * Whether the `divergences` row under `alias` is a new-side write failure of a row an admin
 * accepted out of the target (issue 18): its sync is expected to keep failing, and it holds
 * neither the backfill gate nor the lock-free run's final re-drive. Keys are compared as JSON
 * arrays of text values in `spec.source.key` order, the form both tables hold; the CASE keeps the
 * cast to the write-failure rows, whose keys are always such arrays.
 */
export function isAcceptedSkipSql(alias: string): RawBuilder<boolean> {
  const ref = (column: string) => sql.ref(`${alias}.${column}`);
  return sql<boolean>`(CASE WHEN ${ref('kind')} = 'dual_write_failure' THEN EXISTS (SELECT 1 FROM backfill_skipped_rows s WHERE s.migration_id = ${ref('migration_id')} AND s.resolution = 'accepted' AND s.key_values = ${ref('key')}::jsonb) ELSE false END)`;
}

/**
 * Until when the purge of a re-run waits for application instances that may still write the
 * target: the reverse sync's grace after a rollback from write cutover (`ramps.reverse_until`,
 * database time); `NULL` once it has passed, or when there was none. A scalar subquery, for a
 * select list (the purge's check and the progress read the same expression).
 */
export function purgeWaitsUntilSql(migrationId: string): RawBuilder<Date | null> {
  return sql<Date | null>`(SELECT g.reverse_until FROM ramps g WHERE g.migration_id = ${migrationId} AND g.reverse_until > now())`;
}

/** Writes backfill runs and chunks. Methods take the executor of the caller's transaction. */
export class BackfillRepository {
  async createRun(
    trx: Kysely<Database>,
    run: { migrationId: string; datasource: string; key: KeyShape; chunkRows: number; rowsEstimated: number; lockFree: boolean },
  ): Promise<void> {
    await trx
      .insertInto('backfill_runs')
      .values({
        migration_id: run.migrationId,
        datasource: run.datasource,
        key_columns: JSON.stringify(run.key.columns),
        key_types: JSON.stringify(run.key.types),
        chunk_rows: run.chunkRows,
        rows_estimated: run.rowsEstimated,
        lock_free: run.lockFree,
      })
      .onConflict((oc) => oc.column('migration_id').doNothing())
      .execute();
  }

  /** Forgets a run and its chunks (the phase was rolled back; a new entry starts afresh). */
  async discardRun(trx: Kysely<Database>, migrationId: string): Promise<void> {
    // A new run copies every row again: what the old one skipped is judged again by it.
    await trx.deleteFrom('backfill_skipped_rows').where('migration_id', '=', migrationId).execute();
    await trx.deleteFrom('backfill_chunks').where('migration_id', '=', migrationId).execute();
    await trx.deleteFrom('backfill_runs').where('migration_id', '=', migrationId).execute();
  }

  async lockRun(trx: Kysely<Database>, migrationId: string): Promise<BackfillRunRow | undefined> {
    return trx.selectFrom('backfill_runs').selectAll().where('migration_id', '=', migrationId).forUpdate().executeTakeFirst();
  }

  async getRun(db: Kysely<Database>, migrationId: string): Promise<BackfillRunRow | undefined> {
    return db.selectFrom('backfill_runs').selectAll().where('migration_id', '=', migrationId).executeTakeFirst();
  }

  async getChunk(db: Kysely<Database>, id: number): Promise<BackfillChunkRow | undefined> {
    return db.selectFrom('backfill_chunks').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async insertChunk(trx: Kysely<Database>, migrationId: string, lower: KeyValue | null, upper: KeyValue | null, plannedRows: number | null = null): Promise<number> {
    const row = await trx
      .insertInto('backfill_chunks')
      .values({ migration_id: migrationId, lower_key: lower ? JSON.stringify(lower) : null, upper_key: upper ? JSON.stringify(upper) : null, status: 'pending', planned_rows: plannedRows })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async advancePlanning(trx: Kysely<Database>, migrationId: string, plannedThrough: KeyValue | null, done: boolean): Promise<void> {
    await trx
      .updateTable('backfill_runs')
      .set({ planned_through: plannedThrough ? JSON.stringify(plannedThrough) : null, planning_done: done })
      .where('migration_id', '=', migrationId)
      .execute();
  }

  /** Chunks in flight (pending or running) for one migration and for all migrations of a datasource. */
  async inFlight(trx: Kysely<Database>, migrationId: string, datasource: string): Promise<{ migration: number; datasource: number }> {
    const r = await trx
      .selectFrom('backfill_chunks as c')
      .innerJoin('backfill_runs as r', 'r.migration_id', 'c.migration_id')
      .innerJoin('migrations as m', 'm.id', 'c.migration_id')
      .select([
        sql<number>`count(*) FILTER (WHERE c.migration_id = ${migrationId})::int`.as('migration'),
        sql<number>`count(*)::int`.as('datasource'),
      ])
      .where('r.datasource', '=', datasource)
      .where('c.status', 'in', ['pending', 'running'])
      .where('m.phase', '=', 'backfill')
      .where('m.status', '=', 'active')
      .executeTakeFirstOrThrow();
    return { migration: r.migration, datasource: r.datasource };
  }

  /**
   * Checkpoint, fenced by the lease token. `kept` is false when the lease was lost (the copy was
   * idempotent anyway); `blocked` says whether the migration's backfill is marked blocked (the
   * caller clears it: work moves again).
   */
  async complete(db: Kysely<Database>, chunk: ClaimedChunk, rows: number, durationMs: number, blocked: RawBuilder<boolean>): Promise<{ kept: boolean; blocked: boolean }> {
    const r = await db
      .updateTable('backfill_chunks')
      .set({ status: 'done', rows_copied: rows, duration_ms: Math.round(durationMs), finished_at: sql`now()`, lease_token: null, lease_expires_at: null, last_error: null })
      .where('id', '=', chunk.id)
      .where('lease_token', '=', chunk.token)
      .returning(blocked.as('blocked'))
      .executeTakeFirst();
    return { kept: r !== undefined, blocked: r?.blocked === true };
  }

  /** True when planning is done and no chunk of the run is pending or running. */
  async allChunksFinished(db: Kysely<Database>, migrationId: string): Promise<boolean> {
    const r = await db
      .selectFrom('backfill_runs as r')
      .select(
        sql<boolean>`r.planning_done AND NOT EXISTS (SELECT 1 FROM backfill_chunks c WHERE c.migration_id = r.migration_id AND c.status IN ('pending', 'running'))`.as('finished'),
      )
      .where('r.migration_id', '=', migrationId)
      .executeTakeFirst();
    return r?.finished === true;
  }

  /** The last attempt failed: the chunk is listed as failed with its error. */
  async fail(db: Kysely<Database>, chunk: ClaimedChunk, error: string, timedOut: boolean): Promise<void> {
    await db
      .updateTable('backfill_chunks')
      .set({
        status: 'failed',
        lease_token: null,
        lease_expires_at: null,
        last_error: error,
        finished_at: sql`now()`,
        timeouts: timedOut ? sql`timeouts + 1` : sql`timeouts`,
      })
      .where('id', '=', chunk.id)
      .where('lease_token', '=', chunk.token)
      .execute();
  }

  /**
   * Replaces a chunk by two halves split at `middle` (inclusive upper of the first half), fenced by
   * the lease. @returns false (and nothing changed) when the lease was lost.
   */
  async split(trx: Kysely<Database>, chunk: ClaimedChunk, middle: KeyValue, error: string): Promise<boolean> {
    const r = await trx
      .updateTable('backfill_chunks')
      .set({ status: 'split', lease_token: null, lease_expires_at: null, last_error: error, finished_at: sql`now()` })
      .where('id', '=', chunk.id)
      .where('lease_token', '=', chunk.token)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return false;
    await this.insertChunk(trx, chunk.migrationId, chunk.lower, middle);
    await this.insertChunk(trx, chunk.migrationId, middle, chunk.upper);
    return true;
  }

  /**
   * A chunk of one row that failed on that row's data: the chunk ends `skipped` and the row is
   * listed in `backfill_skipped_rows` (again, unresolved, with the newest error, when it was listed
   * before). Fenced by the lease like {@link split}.
   * @returns whether the lease still held (nothing is written otherwise).
   */
  async skip(trx: Kysely<Database>, chunk: ClaimedChunk, key: KeyValue, failure: SkipFailure): Promise<boolean> {
    const r = await trx
      .updateTable('backfill_chunks')
      .set({ status: 'skipped', lease_token: null, lease_expires_at: null, last_error: failure.error, rows_copied: 0, finished_at: sql`now()` })
      .where('id', '=', chunk.id)
      .where('lease_token', '=', chunk.token)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return false;
    const values = { chunk_id: chunk.id, error: failure.error, sqlstate: failure.sqlstate, constraint_name: failure.constraint };
    await trx
      .insertInto('backfill_skipped_rows')
      .values({ migration_id: chunk.migrationId, key_values: JSON.stringify(key), ...values })
      .onConflict((oc) => oc.columns(['migration_id', 'key_values']).doUpdateSet({ ...values, detected_at: sql`now()`, resolution: null, resolved_at: null, resolved_by: null, reason: null }))
      .execute();
    return true;
  }

  /** Counts one more split on a data error in the migration's run; the new count. */
  async countDataErrorSplit(trx: Kysely<Database>, migrationId: string): Promise<number> {
    const r = await trx
      .updateTable('backfill_runs')
      .set({ data_error_splits: sql`data_error_splits + 1` })
      .where('migration_id', '=', migrationId)
      .returning('data_error_splits')
      .executeTakeFirst();
    return r?.data_error_splits ?? 0;
  }

  /** Skipped rows of a migration not resolved yet. */
  async countSkippedUnresolved(db: Kysely<Database>, migrationId: string): Promise<number> {
    const r = await db
      .selectFrom('backfill_skipped_rows')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('migration_id', '=', migrationId)
      .where('resolution', 'is', null)
      .executeTakeFirstOrThrow();
    return r.n;
  }

  /** Up to `limit` unresolved skipped rows' keys, oldest first; only `keys` when given. */
  async unresolvedSkipped(db: Kysely<Database>, migrationId: string, limit: number, keys?: readonly KeyValue[]): Promise<KeyValue[]> {
    let q = db.selectFrom('backfill_skipped_rows').select('key_values').where('migration_id', '=', migrationId).where('resolution', 'is', null).orderBy('chunk_id').limit(limit);
    if (keys) q = q.where(keyValuesIn(keys));
    return (await q.execute()).map((r) => r.key_values);
  }

  /**
   * Resolves unresolved skipped rows (all of the migration's, or only `keys`).
   * @returns the keys resolved now.
   */
  async resolveSkipped(
    trx: Kysely<Database>,
    migrationId: string,
    resolution: { kind: 'redriven' | 'accepted'; actor: string; reason: string | null },
    keys?: readonly KeyValue[],
  ): Promise<KeyValue[]> {
    let q = trx
      .updateTable('backfill_skipped_rows')
      .set({ resolution: resolution.kind, resolved_at: sql`now()`, resolved_by: resolution.actor, reason: resolution.reason })
      .where('migration_id', '=', migrationId)
      .where('resolution', 'is', null);
    if (keys) q = q.where(keyValuesIn(keys));
    return (await q.returning('key_values').execute()).map((r) => r.key_values);
  }

  /** A re-drive of a skipped row failed again: its newest error. */
  async updateSkippedError(db: Kysely<Database>, migrationId: string, key: KeyValue, failure: SkipFailure): Promise<void> {
    await db
      .updateTable('backfill_skipped_rows')
      .set({ error: failure.error, sqlstate: failure.sqlstate, constraint_name: failure.constraint, detected_at: sql`now()` })
      .where('migration_id', '=', migrationId)
      .where(sql<boolean>`key_values = ${JSON.stringify(key)}::jsonb`)
      .execute();
  }

  /** Gives failed chunks a fresh start (an operator resumed after fixing the cause). */
  async retryFailed(db: Kysely<Database>, migrationId: string): Promise<number> {
    return db.transaction().execute(async (trx) => {
      // A resume gives bisection a fresh budget too: the operator fixed what made every row fail.
      await trx.updateTable('backfill_runs').set({ data_error_splits: 0 }).where('migration_id', '=', migrationId).execute();
      const r = await trx
        .updateTable('backfill_chunks')
        .set({ status: 'pending', attempts: 0, timeouts: 0, interruptions: 0, not_before: null, enqueued_at: null, finished_at: null })
        .where('migration_id', '=', migrationId)
        .where('status', '=', 'failed')
        .executeTakeFirst();
      const n = Number(r.numUpdatedRows);
      // The run is not complete any more (and a lock-free run must sweep again after the retries).
      if (n > 0) await trx.updateTable('backfill_runs').set({ completed_at: null }).where('migration_id', '=', migrationId).execute();
      return n;
    });
  }

  async countFailed(db: Kysely<Database>, migrationId: string): Promise<number> {
    const r = await db
      .selectFrom('backfill_chunks')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('migration_id', '=', migrationId)
      .where('status', '=', 'failed')
      .executeTakeFirstOrThrow();
    return r.n;
  }

  async updateSizing(db: Kysely<Database>, migrationId: string, chunkRows: number, rowsPerMs: number | null): Promise<void> {
    await db.updateTable('backfill_runs').set({ chunk_rows: chunkRows, ewma_rows_per_ms: rowsPerMs }).where('migration_id', '=', migrationId).execute();
  }

  async setThrottled(db: Kysely<Database>, migrationId: string, reason: string | null): Promise<void> {
    await db
      .updateTable('backfill_runs')
      .set(reason ? { throttled_reason: reason, throttled_since: sql`coalesce(throttled_since, now())` } : { throttled_reason: null, throttled_since: null })
      .where('migration_id', '=', migrationId)
      .execute();
  }

  /** Rate cap pacing of the run (GCRA, {@link reserveSlot}): grants the chunk its slot of `seconds`, or says how long to wait. */
  async reserveRate(db: Kysely<Database>, migrationId: string, seconds: number): Promise<{ granted: boolean; waitMs: number; pacing: boolean }> {
    return reserveSlot(db, { table: 'backfill_runs', key: 'migration_id', value: migrationId }, seconds);
  }

  /**
   * Where the rows/s cap's schedule stands: milliseconds until the next free slot (0 when free
   * now) and how many pending chunks are already queued for earlier slots.
   */
  async pacingSchedule(trx: Kysely<Database>, migrationId: string): Promise<{ waitMs: number; queuedAhead: number }> {
    const r = await sql<{ wait_ms: number; queued_ahead: number }>`
      SELECT coalesce(greatest(0, extract(epoch FROM r.rate_tat - now()) * 1000), 0)::float8 AS wait_ms,
             (SELECT count(*) FROM backfill_chunks c WHERE c.migration_id = r.migration_id AND c.status = 'pending' AND c.enqueued_at IS NOT NULL)::int AS queued_ahead
        FROM backfill_runs r WHERE r.migration_id = ${migrationId}`.execute(trx);
    const row = r.rows[0];
    return { waitMs: row?.wait_ms ?? 0, queuedAhead: row?.queued_ahead ?? 0 };
  }

  /** Corrects a rate reservation by `seconds` (negative when the chunk copied fewer rows than reserved for). */
  async adjustRate(db: Kysely<Database>, migrationId: string, seconds: number): Promise<void> {
    await shiftSlot(db, { table: 'backfill_runs', key: 'migration_id', value: migrationId }, seconds);
  }

  /** Marks the run completed when planning is done and nothing is pending or running. */
  async completeRunIfDone(db: Kysely<Database>, migrationId: string): Promise<void> {
    await db
      .updateTable('backfill_runs')
      .set({ completed_at: sql`now()` })
      .where('migration_id', '=', migrationId)
      .where('planning_done', '=', true)
      .where('completed_at', 'is', null)
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('backfill_chunks').select(sql`1`.as('x')).where('migration_id', '=', migrationId).where('status', 'in', ['pending', 'running']))),
      )
      .execute();
  }

  /** Migrations in backfill and active that have a run. */
  async activeRuns(db: Kysely<Database>): Promise<string[]> {
    const rows = await db
      .selectFrom('backfill_runs as r')
      .innerJoin('migrations as m', 'm.id', 'r.migration_id')
      .select('r.migration_id')
      .where('m.phase', '=', 'backfill')
      .where('m.status', '=', 'active')
      .execute();
    return rows.map((r) => r.migration_id);
  }
}
