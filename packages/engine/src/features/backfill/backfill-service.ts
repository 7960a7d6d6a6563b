import { dataErrorSplitBudget, isRowDataError, judgeHealth, mayClearByItself, nextChunkRows, rateCapSeconds, retryDelayMs, type MigrationSpec, type ThrottleReason, TidewayError } from '@tideway/core';
import { reverseMappingOf } from '../way-back/way-back.js';
import { copiedColumn, loadSqlParser } from '../mapping/mapping-validator.js';
import type { BackfillChunkRow, BackfillRunRow, Database } from '@tideway/db';
import type { BackfillChunkJob } from '@tideway/queue';
import { sql, type Kysely } from 'kysely';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { toMigration } from '../migrations/migration.js';
import { purgeWaitsUntilSql, type BackfillRepository, type ClaimedChunk, type SkipFailure } from './backfill-repository.js';
import type { ChunkCopier } from './chunk-copier.js';
import type { HealthProbe } from './health-probe.js';
import { LeaseLostError } from '../leases/lease-lost-error.js';
import type { LeasedWork } from '../leases/leased-work.js';
import { asDependencyError, dependencyOf, errorMessage, isTransientError, transientRetryDelayMs } from '../leases/transient-error.js';
import {
  quoteIdent,
  qualified,
  rangePredicate,
  redriveDeleteByKeySql,
  redriveGoneKeysSql,
  redriveDeleteSql,
  redriveSelectSql,
  redriveUpsertSql,
  reverseSpec,
  toSpecKeyOrder,
  upsertClause,
  type KeyShape,
  type KeyValue,
} from './sql.js';
import type { TombstoneSweeper } from './tombstone-sweeper.js';
import type { TargetPurger } from './target-purger.js';
import type { Admission, PaceRepository } from '../pace/pace-repository.js';
import { TIDEWAY_SQL_MARK } from '../pace/statement-latency.js';

/** Chunks planned and queued beyond `backfill.concurrency`. */
export const PLAN_AHEAD = 1;
/** A chunk that timed out this many times is split in half. */
export const SPLIT_AFTER_TIMEOUTS = 3;
/** How long a throttled chunk waits before it looks again, milliseconds. */
export const THROTTLE_RECHECK_MS = 1000;
const PG_QUERY_CANCELED = '57014';

/** How long a chunk may take at the latency guard's pace, seconds: a guarded copy runs in small steps, not in bursts. */
export const GUARDED_CHUNK_SECONDS = 0.25;
/** How long a chunk waits while the latency guard measures its baseline before it looks again, milliseconds. */
export const BASELINE_RECHECK_MS = 250;
/** Longest wait of a chunk for its slot of the guard's pace before it looks again (a pace that rose applies within it), ms. */
export const GUARD_RECHECK_MAX_MS = 1000;

/** Whether the latency guard paces the migration's chunks. */
function guarded(spec: MigrationSpec): boolean {
  return spec.throttle.enabled && spec.throttle.latencyGuard.enabled;
}

/**
 * Rows the next chunk is planned (and paced) for: the adaptive size within `maxChunkRows`, at least
 * 1; under the latency guard at most {@link GUARDED_CHUNK_SECONDS} of its pace (and not under
 * `minChunkRows`).
 */
function plannedChunkRows(run: BackfillRunRow, spec: MigrationSpec, paceRowsPerSecond: number | null = null): number {
  const adaptive = Math.max(1, Math.min(run.chunk_rows, spec.backfill.maxChunkRows));
  if (paceRowsPerSecond === null || !guarded(spec)) return adaptive;
  return Math.max(1, Math.min(adaptive, Math.max(spec.backfill.minChunkRows, Math.floor(paceRowsPerSecond * GUARDED_CHUNK_SECONDS))));
}

/** A row data error as `backfill_skipped_rows` keeps it: message, SQLSTATE, constraint. */
function skipFailureOf(error: unknown): SkipFailure {
  const e = error as { code?: string; constraint?: string };
  return { error: errorMessage(error), sqlstate: e.code ?? '', constraint: e.constraint ?? null };
}

/** What happened to a chunk job. */
export type ChunkOutcome =
  | { readonly kind: 'copied'; readonly chunkId: number; readonly rows: number; readonly durationMs: number }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'throttled'; readonly reason: ThrottleReason; readonly retryInMs: number }
  | { readonly kind: 'retrying'; readonly error: string; readonly retryInMs: number }
  | { readonly kind: 'split'; readonly error: string }
  | { readonly kind: 'row-skipped'; readonly key: KeyValue; readonly error: string }
  | { readonly kind: 'failed'; readonly error: string };

/** Dependencies of {@link BackfillService}. */
export interface BackfillServiceDeps {
  readonly db: Kysely<Database>;
  readonly repository: BackfillRepository;
  readonly datasources: DatasourceRegistry;
  readonly catalog: CatalogInspector;
  readonly copier: ChunkCopier;
  readonly health: HealthProbe;
  /** The latency guard's pace per datasource (ADR 014); every chunk of a guarded migration reserves its rows from it. */
  readonly pace: PaceRepository;
  readonly sweeper: TombstoneSweeper;
  /** Empties the target before a run's first chunk (re-runs start clean). */
  readonly purger: TargetPurger;
  /**
   * Re-drives the keys whose sync failed since `since` (the run's start), once every chunk
   * transaction has ended (after the sweep's fence): a re-drive done earlier may have been undone
   * by a chunk copying an older snapshot of the key. Throws to keep the run open. @defaultValue none
   */
  readonly redriveSyncFailuresSince?: (migration: Migration, since: Date) => Promise<void>;
  /**
   * Checked before every chunk: whether DDL changed a column the migration uses since its
   * expressions were bound (the DDL guard, which pauses the migration with the change named).
   * @returns the changes, empty when none. @defaultValue no check
   */
  readonly ddlCheck?: (migration: Migration) => Promise<readonly string[]>;
  readonly migrations: MigrationService;
  /** The chunks' leased-work lifecycle (`CHUNK_WORK`): enqueue, lease, heartbeat, re-drive; its queue is `null` where none is configured. */
  readonly chunks: LeasedWork;
  /** Chunks in flight at once per datasource, shared by every migration on it. */
  readonly datasourceConcurrency: number;
  /** Name recorded on claimed chunks (host:pid). */
  readonly workerName: string;
}

/**
 * The backfill: keyset chunks planned lazily (so a PATCHed size applies to the next chunk),
 * leased in PostgreSQL, copied idempotently, checkpointed behind a lease fence, retried with
 * exponential backoff and jitter, split after repeated timeouts, throttled by datasource health.
 * Redis only carries the jobs that wake workers up; {@link reconcile} re-creates them from
 * PostgreSQL after any loss (worker SIGKILL, FLUSHALL, restart).
 */
export class BackfillService {
  constructor(private readonly deps: BackfillServiceDeps) {}

  /**
   * Entry action of `backfill`: records the run — key columns in the order of the unique index that
   * serves them (so keyset scans use it), their types, the first chunk size, the row estimate, and
   * whether chunks run lock-free (trigger sync whose trigger records tombstones, ADR 005).
   * Idempotent. Runs inside the transition's transaction.
   */
  async startRun(trx: Kysely<Database>, migration: Migration): Promise<void> {
    const spec = migration.spec;
    const table = await this.deps.catalog.describe(spec.source);
    if (!table) throw new TidewayError('INVALID_SPEC', `source table ${spec.source.schema}.${spec.source.table} is gone`, { field: 'source.table' });
    const wanted = [...spec.source.key].sort().join(',');
    const indexOrder = table.uniqueKeys.find((cols) => [...cols].sort().join(',') === wanted) ?? spec.source.key;
    const key: KeyShape = { columns: [...indexOrder], types: indexOrder.map((c) => table.columns.get(c)?.type ?? 'text') };
    let rowsEstimated = Math.max(0, Math.round(table.estimatedRows));
    if (table.estimatedRows < 0) {
      rowsEstimated = await this.deps.datasources.withClient(spec.source.datasource, async (c) =>
        Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${qualified(spec.source)}`)).rows[0]?.n ?? 0),
      );
    }
    // Trigger sync on one datasource records tombstones (its objects are converged from dual_write
    // on, with the tombstone table, before this transition commits), so chunks run lock-free.
    const lockFree = spec.syncMode === 'trigger' && spec.source.datasource === spec.target.datasource;
    await this.deps.repository.createRun(trx, {
      migrationId: migration.id,
      datasource: spec.source.datasource,
      key,
      chunkRows: spec.backfill.initialChunkRows,
      rowsEstimated,
      lockFree,
    });
  }

  /**
   * Empties the target of what an earlier run (or anyone) left there, before the run's first chunk
   * is planned ({@link TargetPurger}); for at most `budgetMs`, then the next call goes on. Does
   * nothing once purged, unless the migration is in backfill and active, or while application
   * instances may still write the target after a rollback from write cutover (until
   * `ramps.reverse_until`, `backfill.flagPropagationSeconds` after it). Callers pump after it
   * (the reconciler's round, the transition listener).
   * @throws the database error (the reconciler calls again).
   */
  async purgeTarget(migrationId: string, budgetMs?: number): Promise<void> {
    const { db, repository } = this.deps;
    const run = await repository.getRun(db, migrationId);
    if (!run || run.target_purged_at) return;
    const row = await db.selectFrom('migrations').selectAll().where('id', '=', migrationId).executeTakeFirst();
    if (!row || row.phase !== 'backfill' || row.status !== 'active') return;
    // After a rollback from write cutover, application instances may write the target until the
    // write-new flag reaches them (the reverse sync's grace, `ramps.reverse_until`): a row purged
    // under such a write would make it touch nothing, and the write would be lost on both sides.
    if ((await db.selectNoFrom(purgeWaitsUntilSql(migrationId).as('until')).executeTakeFirst())?.until) return;
    const spec = toMigration(row).spec;
    // Background work on the datasource like a chunk: it holds back while the datasource is unhealthy.
    if (spec.throttle.enabled) {
      const unhealthy = judgeHealth(await this.deps.health.read(run.datasource), spec.throttle, run.throttled_reason as ThrottleReason | null);
      if (unhealthy) {
        if (run.throttled_reason !== unhealthy) await repository.setThrottled(db, migrationId, unhealthy);
        return;
      }
      if (run.throttled_reason) await repository.setThrottled(db, migrationId, null);
    }
    const outcome = await this.deps.purger.purge(spec, migrationId, run.purged_through, budgetMs);
    if (outcome.kind === 'busy') return;
    await db
      .updateTable('backfill_runs')
      .set({
        purged_through: outcome.through ? JSON.stringify(outcome.through) : null,
        rows_purged: sql`rows_purged + ${outcome.rows}`,
        ...(outcome.done ? { target_purged_at: sql`now()` } : {}),
      })
      .where('migration_id', '=', migrationId)
      .where('target_purged_at', 'is', null)
      .execute();
  }

  /** Rollback action of `backfill`: forgets the run; entering backfill again starts afresh. */
  async discardRun(trx: Kysely<Database>, migrationId: string): Promise<void> {
    await this.deps.repository.discardRun(trx, migrationId);
  }

  /**
   * Re-copies the given source keys now (the gap ledger of application sync: keys whose new-side
   * write failed). Rows still in the source are upserted; target rows whose source row is gone are
   * deleted when the key is copied across. Keys are given in `spec.source.key` order.
   *
   * @param keys - at most 1000 keys, each one text value per key column.
   * @throws TidewayError `INVALID_TRANSITION` outside dual_write…cleanup; `INVALID_SPEC` for a key
   *   with the wrong number of values; DependencyUnavailableError when the datasource cannot be reached.
   */
  async redrive(migration: Migration, keys: readonly KeyValue[]): Promise<{ upserted: number; deleted: number }> {
    this.assertRedrivable(migration, 'redrive');
    return this.#copyKeys(migration.spec, keys);
  }

  /**
   * Copies the rows the backfill skipped on their data again (after the data or the target was
   * fixed), one at a time: each that copies now is resolved `redriven` (audited, one event); each
   * that fails again on its data keeps its listing, with the new error.
   *
   * @param keys - which skipped rows (default: every unresolved one); at most 1000 per call.
   * @returns the keys re-driven and those still failing, with their errors.
   * @throws TidewayError `INVALID_TRANSITION` outside dual_write…cleanup or on a finished migration;
   *   the database's error when one is not about the row's data (nothing more is tried then).
   */
  async redriveSkippedRows(migration: Migration, actor: string, keys?: readonly KeyValue[]): Promise<{ redriven: KeyValue[]; stillFailing: { key: KeyValue; error: string }[] }> {
    this.assertRedrivable(migration, 'redrive-skipped-rows');
    const { db, repository } = this.deps;
    if (keys) this.#assertKeyWidth(migration.spec, keys);
    const listed = await repository.unresolvedSkipped(db, migration.id, 1000, keys);
    let redriven: KeyValue[] = [];
    const stillFailing: { key: KeyValue; error: string }[] = [];
    try {
      // All at once first (the usual case: the cause was fixed for every one of them) …
      if (listed.length > 0) await this.#copyKeys(migration.spec, listed);
      redriven = listed;
    } catch (batchError) {
      if (!isRowDataError((batchError as { code?: string }).code)) throw batchError;
      // … and one by one when some still fail, to tell which.
      for (const key of listed) {
        try {
          await this.#copyKeys(migration.spec, [key]);
          redriven.push(key);
        } catch (error) {
          if (!isRowDataError((error as { code?: string }).code)) throw error;
          const failure = skipFailureOf(error);
          await repository.updateSkippedError(db, migration.id, key, failure);
          stillFailing.push({ key, error: failure.error });
        }
      }
    }
    if (redriven.length > 0) {
      await db.transaction().execute(async (trx) => {
        const resolved = await repository.resolveSkipped(trx, migration.id, { kind: 'redriven', actor, reason: null }, redriven);
        await this.deps.migrations.recordEvent(migration.id, 'backfill.skipped_rows_redriven', { actor, details: { rows: resolved.length, keys: resolved.slice(0, 100), stillFailing: stillFailing.length } }, trx);
      });
    }
    return { redriven, stillFailing };
  }

  /**
   * An admin accepts rows the backfill skipped on their data: they stay out of the target on
   * purpose, and the backfill gate stops waiting for them. Audited with the reason and the keys.
   *
   * @param options.keys - which (default: every unresolved one).
   * @returns the keys accepted now (already resolved ones are left as they are).
   * @throws TidewayError `INVALID_TRANSITION` on an aborted or completed migration.
   */
  async acceptSkippedRows(migration: Migration, options: { actor: string; reason: string; keys?: readonly KeyValue[] }): Promise<KeyValue[]> {
    this.#assertRedrivable(migration, ['prepare', 'dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup'], 'accept-skipped-rows');
    if (options.keys) this.#assertKeyWidth(migration.spec, options.keys);
    return this.deps.db.transaction().execute(async (trx) => {
      const accepted = await this.deps.repository.resolveSkipped(trx, migration.id, { kind: 'accepted', actor: options.actor, reason: options.reason }, options.keys);
      if (accepted.length > 0) {
        await this.deps.migrations.recordEvent(migration.id, 'backfill.skipped_rows_accepted', { actor: options.actor, reason: options.reason, details: { rows: accepted.length, keys: accepted.slice(0, 100) } }, trx);
      }
      return accepted;
    });
  }

  /**
   * Checks, before anything is recorded, that {@link redrive} would take the migration.
   * @param action - named in the error (`redrive`, `repair`).
   * @throws TidewayError `INVALID_TRANSITION` outside dual_write…cleanup or on a finished migration.
   */
  assertRedrivable(migration: Migration, action: string): void {
    this.#assertRedrivable(migration, ['dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup'], action);
  }

  /**
   * The reverse of {@link redrive}, for keys whose old-side write failed after write cutover (old is
   * then the best-effort side, kept so that rollback loses nothing): re-copies them from the target
   * to the source through the reverse mapping (`reverseMappingOf(spec)`). A source row whose target
   * row is gone is deleted. Keys are source key values in `spec.source.key` order, as the SDK sends.
   *
   * @throws TidewayError `INVALID_TRANSITION` outside cutover and cleanup; `INVALID_SPEC` when there
   *   is no reverse mapping or the target key is not the source key copied across (`id: "id"`, or a cast),
   *   or for a key with the wrong number of values; DependencyUnavailableError when a datasource cannot
   *   be reached.
   */
  async redriveReverse(migration: Migration, keys: readonly KeyValue[]): Promise<{ upserted: number; deleted: number }> {
    this.#assertRedrivable(migration, ['cutover', 'cleanup'], 'redrive-reverse');
    await loadSqlParser();
    const spec = migration.spec;
    const reverse = reverseMappingOf(spec);
    if (!reverse) throw new TidewayError('INVALID_SPEC', 'old-side re-drive needs a reverse mapping (spec.reverseMapping)', { field: 'reverseMapping' });
    const sourceColumnOf = BackfillService.reverseKeyOrder(spec);
    if (!sourceColumnOf) throw new TidewayError('INVALID_SPEC', 'old-side re-drive needs the keys copied across, both ways (id: "id", or a cast of it)', { field: 'mapping' });
    this.#assertKeyWidth(spec, keys);
    const reversed = reverseSpec(spec, reverse);
    return this.#copyKeys(reversed, keys.map((k) => sourceColumnOf.map((i) => k[i] as string)));
  }

  /** Whether {@link redriveReverse} can work for this spec at all (reverse mapping, keys copied both ways). */
  static canRedriveReverse(spec: MigrationSpec): boolean {
    return BackfillService.reverseKeyOrder(spec) !== null;
  }

  /** For target key column i, the index of the source key column it copies (bare or cast); `null` when the keys are not copied both ways. */
  private static reverseKeyOrder(spec: MigrationSpec): number[] | null {
    const reverse = reverseMappingOf(spec);
    if (!reverse || spec.target.key.length !== spec.source.key.length) return null;
    const order = spec.target.key.map((t) => spec.source.key.indexOf(copiedColumn(spec.mapping[t] ?? '') ?? ''));
    const reverseStraight = spec.source.key.every((c) => spec.target.key.includes(copiedColumn(reverse[c] ?? '') ?? ''));
    return order.some((i) => i < 0) || !reverseStraight ? null : order;
  }

  #assertRedrivable(migration: Migration, phases: readonly string[], action: string): void {
    if (phases.includes(migration.phase) && !['aborted', 'completed'].includes(migration.status)) return;
    throw new TidewayError('INVALID_TRANSITION', `${action} needs a migration in ${phases.join(', ')}, not ${migration.phase}/${migration.status}`, {
      phase: migration.phase,
      status: migration.status,
      action,
      allowed: [],
    });
  }

  #assertKeyWidth(spec: MigrationSpec, keys: readonly KeyValue[]): void {
    const width = spec.source.key.length;
    const bad = keys.findIndex((k) => k.length !== width);
    if (bad >= 0) throw new TidewayError('INVALID_SPEC', `key ${bad} has ${keys[bad]?.length} values; the source key has ${width}`, { field: `keys[${bad}]` });
  }

  /** Upserts the mapped source rows of `keys` into the target and deletes target rows whose source row is gone. */
  async #copyKeys(spec: MigrationSpec, keys: readonly KeyValue[]): Promise<{ upserted: number; deleted: number }> {
    await loadSqlParser();
    this.#assertKeyWidth(spec, keys);
    if (keys.length === 0) return { upserted: 0, deleted: 0 };
    const table = await this.deps.catalog.describe(spec.source);
    if (!table) throw new TidewayError('INVALID_SPEC', `source table ${spec.source.schema}.${spec.source.table} is gone`, { field: 'source.table' });
    const key: KeyShape = { columns: [...spec.source.key], types: spec.source.key.map((c) => table.columns.get(c)?.type ?? 'text') };
    if (spec.source.datasource === spec.target.datasource) {
      const upsert = redriveUpsertSql(spec, key, keys);
      const remove = redriveDeleteSql(spec, key, keys);
      return this.deps.datasources.withClient(spec.source.datasource, async (client) => {
        await client.query('BEGIN');
        try {
          const u = await client.query(upsert.sql, upsert.params);
          const d = remove ? await client.query(remove.sql, remove.params) : { rowCount: 0 };
          await client.query('COMMIT');
          return { upserted: u.rowCount ?? 0, deleted: d.rowCount ?? 0 };
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      });
    }
    // Across datasources: read the mapped rows (locked until the target commits), upsert them
    // from JSON in the target, and delete target rows of keys that are gone from the source.
    const select = redriveSelectSql(spec, key, keys);
    return this.deps.datasources.withClient(spec.source.datasource, (source) =>
      this.deps.datasources.withClient(spec.target.datasource, async (target) => {
        await source.query('BEGIN');
        await target.query('BEGIN');
        try {
          const rows = (await source.query<{ row: Record<string, unknown> }>(select.sql, select.params)).rows.map((r) => r.row);
          const cols = Object.keys(spec.mapping).sort().map(quoteIdent).join(', ');
          const u = rows.length
            ? await target.query(`INSERT INTO ${qualified(spec.target)} (${cols}) SELECT ${cols} FROM jsonb_populate_recordset(NULL::${qualified(spec.target)}, $1::jsonb) ${upsertClause(spec)}`, [JSON.stringify(rows)])
            : { rowCount: 0 };
          const goneSql = redriveGoneKeysSql(spec, key, keys);
          const gone = (await source.query<{ i: number }>(goneSql.sql, goneSql.params)).rows.map((r) => keys[r.i] as KeyValue);
          const remove = gone.length ? redriveDeleteByKeySql(spec, key, gone) : null;
          const d = remove ? await target.query(remove.sql, remove.params) : { rowCount: 0 };
          await target.query('COMMIT');
          await source.query('COMMIT');
          return { upserted: u.rowCount ?? 0, deleted: d.rowCount ?? 0 };
        } catch (error) {
          await target.query('ROLLBACK').catch(() => undefined);
          await source.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      }),
    );
  }

  /** After an operator resumes a failed backfill: failed chunks start over, then work is pumped. */
  async retryFailedChunks(migrationId: string): Promise<number> {
    const n = await this.deps.repository.retryFailed(this.deps.db, migrationId);
    await this.pump(migrationId);
    return n;
  }

  /**
   * Plans chunks up to the migration's concurrency and the datasource's budget, and sends a job for
   * every pending chunk no job points at (each under a new enqueue generation, ADR 007). Safe to
   * call from anywhere at any time (serialised on the run row).
   *
   * @returns the number of jobs sent.
   * @throws DependencyUnavailableError naming `redis` when a job could not be queued (the chunks
   *   stay pending and unqueued; the migration is marked blocked on the queue until work moves).
   */
  async pump(migrationId: string): Promise<number> {
    const { db, repository, chunks } = this.deps;
    const taken = await db.transaction().execute(async (trx) => {
      const run = await repository.lockRun(trx, migrationId);
      const row = await trx.selectFrom('migrations').selectAll().where('id', '=', migrationId).executeTakeFirst();
      if (!run || !row) return [];
      const migration = toMigration(row);
      if (migration.phase !== 'backfill' || migration.status !== 'active') return [];
      // No chunk before the target is purged (the caller of purgeTarget pumps after it).
      if (!run.target_purged_at) return [];
      await sql`SELECT pg_advisory_xact_lock(hashtext(${`tideway:datasource:${run.datasource}`}))`.execute(trx);
      const inFlight = await repository.inFlight(trx, migrationId, run.datasource);
      // One chunk planned ahead of the concurrency, so a worker that finishes finds the next job
      // queued instead of waiting for the planning query (queued chunks do not load the database).
      let slots = Math.min(migration.spec.backfill.concurrency + PLAN_AHEAD - inFlight.migration, this.deps.datasourceConcurrency - inFlight.datasource);
      let through: KeyValue | null = run.planned_through;
      let done = run.planning_done;
      const key: KeyShape = { columns: run.key_columns, types: run.key_types };
      const guard = guarded(migration.spec) ? await this.deps.pace.get(trx, run.datasource) : null;
      const size = plannedChunkRows(run, migration.spec, guard?.pace_rows_per_second ?? null);
      while (slots > 0 && !done) {
        const upper = await this.#nextBoundary(migration.spec, key, through, size);
        await repository.insertChunk(trx, migrationId, through, upper, size);
        if (upper === null) done = true;
        else through = upper;
        slots--;
      }
      if (through !== run.planned_through || done !== run.planning_done) await repository.advancePlanning(trx, migrationId, through, done);
      const units = await chunks.take(trx, sql<boolean>`u.migration_id = ${migrationId}`);
      // Under a rows/s cap each job is scheduled for its own slot, so it does not wake up early
      // only to be turned away by the pacing check (which stays the authority). The schedule
      // counts the units just taken among the queued ones: they come after those queued before.
      const cap = migration.spec.backfill.maxRowsPerSecond;
      const pacing = cap !== null && units.length > 0 ? await repository.pacingSchedule(trx, migrationId) : null;
      const slotMs = cap !== null ? rateCapSeconds(size, cap) * 1000 : 0;
      const ahead = pacing ? Math.max(0, pacing.queuedAhead - units.length) : 0;
      return units.map((unit, i) => ({ unit, rateDelayMs: pacing ? pacing.waitMs + (ahead + i) * slotMs : 0 }));
    });
    const now = Date.now();
    return chunks.send(
      taken.map((t) => t.unit),
      (unit, i) => Math.max(unit.notBefore ? unit.notBefore.getTime() - now : 0, taken[i]?.rateDelayMs ?? 0),
    );
  }

  /** The inclusive upper key `size` rows past `after`, or `null` when fewer rows remain (last chunk). */
  async #nextBoundary(spec: MigrationSpec, key: KeyShape, after: KeyValue | null, size: number): Promise<KeyValue | null> {
    const range = rangePredicate(key, after, null);
    const cols = key.columns.map(quoteIdent);
    const text = `${TIDEWAY_SQL_MARK}SELECT ${cols.map((c, i) => `${c}::text AS k${i}`).join(', ')} FROM ${qualified(spec.source)} WHERE ${range.sql} ORDER BY ${cols.join(', ')} OFFSET ${size - 1} LIMIT 1`;
    return this.deps.datasources.withClient(spec.source.datasource, async (client) => {
      const r = await client.query<Record<string, string>>(text, range.params);
      const row = r.rows[0];
      return row ? key.columns.map((_, i) => row[`k${i}`] as string) : null;
    });
  }

  /**
   * Runs one chunk job: checks the job is the chunk's current enqueue and the migration active in
   * backfill, checks datasource health, takes the lease, copies under a heartbeat (the copier checks
   * the lease right before COMMIT), checkpoints, adapts the next chunk size and pumps more work.
   *
   * @throws a transient error (the orchestrator database or the datasource not answering) met
   *   before the chunk was leased, or while handing a failed attempt back; the worker retries the
   *   job with backoff, and a chunk left leased is released when its lease runs out (ADR 007).
   */
  async runChunk(job: BackfillChunkJob): Promise<ChunkOutcome> {
    const { db, repository, chunks } = this.deps;
    const [chunk, run, row] = await Promise.all([
      repository.getChunk(db, job.chunkId),
      repository.getRun(db, job.migrationId),
      db.selectFrom('migrations').selectAll().where('id', '=', job.migrationId).executeTakeFirst(),
    ]);
    if (!chunk || !run || !row) return { kind: 'skipped', reason: 'chunk or run no longer exists' };
    if (chunk.status !== 'pending') return { kind: 'skipped', reason: `chunk is ${chunk.status}` };
    if (chunk.enqueues !== job.enqueue) return { kind: 'skipped', reason: 'stale job for an earlier enqueue' };
    const migration = toMigration(row);
    if (migration.phase !== 'backfill' || migration.status !== 'active') {
      // Leave the chunk pending and unqueued: resume (through pump) enqueues it again.
      await chunks.markUnqueued(chunk.id, chunk.enqueues);
      return { kind: 'skipped', reason: `migration is ${migration.phase}/${migration.status}` };
    }
    const spec = migration.spec;
    // A chunk the guard would not admit yet goes back on one read, before the catalog and health
    // checks below spend the datasource's time on it (admission itself still decides, after them).
    if (guarded(spec)) {
      const slot = await this.deps.pace.peek(db, run.datasource);
      if (!slot.due) return this.#heldByGuard(migration.id, run, slot.holding, slot.measuring ? BASELINE_RECHECK_MS : slot.waitMs);
    }
    // A table that is no longer the one the mapping was bound to is not copied from (or into).
    if (this.deps.ddlCheck && (await this.deps.ddlCheck(migration)).length > 0) {
      await chunks.markUnqueued(chunk.id, chunk.enqueues);
      return { kind: 'skipped', reason: 'DDL changed a column the migration uses: the migration is paused' };
    }

    // Health is read only when throttling is on (one query per chunk saved otherwise).
    const unhealthy = spec.throttle.enabled
      ? judgeHealth(await this.#readHealth(migration.id, run.datasource), spec.throttle, run.throttled_reason as ThrottleReason | null)
      : null;
    if (unhealthy) {
      await repository.setThrottled(db, migration.id, unhealthy);
      return { kind: 'throttled', reason: unhealthy, retryInMs: THROTTLE_RECHECK_MS };
    }
    // The latency guard's pace (ADR 014), shared by every migration on the datasource.
    let chunkRows = plannedChunkRows(run, spec);
    let guardPace: number | null = null;
    if (guarded(spec)) {
      const admitted = await this.#admitByGuard(run, spec, chunk.planned_rows);
      if (!admitted.granted) return this.#heldByGuard(migration.id, run, admitted.holding, admitted.waitMs);
      guardPace = admitted.paceRowsPerSecond;
      chunkRows = admitted.rows;
      if (run.throttled_reason === 'latency' && !admitted.holding) await repository.setThrottled(db, migration.id, null);
    }
    // The rows/s cap paces chunks (GCRA): a chunk starts only in its own slot of the cap's budget.
    const cap = spec.backfill.maxRowsPerSecond;
    const expectedRows = chunkRows;
    let pacing = false;
    if (cap !== null) {
      const slot = await repository.reserveRate(db, migration.id, rateCapSeconds(expectedRows, cap));
      if (!slot.granted) {
        if (run.throttled_reason !== 'rate-cap') await repository.setThrottled(db, migration.id, 'rate-cap');
        return { kind: 'throttled', reason: 'rate-cap', retryInMs: Math.max(1, Math.ceil(slot.waitMs)) };
      }
      pacing = slot.pacing;
    }
    // `throttled` stays 'rate-cap' while the cap sets the pace, and 'latency' while the guard holds back, so progress does not flap.
    if (run.throttled_reason && !(pacing && run.throttled_reason === 'rate-cap') && run.throttled_reason !== 'latency') await repository.setThrottled(db, migration.id, null);

    const taken = await chunks.claim<BackfillChunkRow>(chunk.id, job.enqueue, this.deps.workerName);
    if (!taken) return { kind: 'skipped', reason: 'chunk not claimable (leased elsewhere or backing off)' };
    const claimed: ClaimedChunk = { ...taken.lease, lower: taken.row.lower_key, upper: taken.row.upper_key, timeouts: taken.row.timeouts };
    const key: KeyShape = { columns: run.key_columns, types: run.key_types };
    let result: { rows: number; durationMs: number };
    try {
      result = await chunks.run(claimed, (signal) =>
        this.deps.copier.copy(spec, key, claimed.lower, claimed.upper, {
          timeoutMs: spec.backfill.chunkTimeoutMs,
          locking: run.lock_free ? 'none' : 'share',
          signal,
          // The orchestrator answers this one: a connection error here names it, not the datasource.
          stillLeased: () => chunks.holds(claimed).catch((error: unknown) => Promise.reject(asDependencyError('postgres', error))),
        }),
      );
    } catch (error) {
      if (error instanceof LeaseLostError) return { kind: 'skipped', reason: `chunk ${claimed.id}: ${error.message}` };
      return this.#handleFailure(migration, key, claimed, error);
    }
    const done = await repository.complete(db, claimed, result.rows, result.durationMs, chunks.blockedSql(claimed));
    if (done.blocked) await chunks.blocks.clear(migration.id, 'backfill', `chunk ${claimed.id} finished`).catch(() => undefined);
    if (cap !== null) await repository.adjustRate(db, migration.id, rateCapSeconds(result.rows, cap) - rateCapSeconds(expectedRows, cap));
    if (guardPace !== null) await this.deps.pace.adjust(db, run.datasource, rateCapSeconds(result.rows, guardPace) - rateCapSeconds(expectedRows, guardPace)).catch(() => undefined);
    if (done.kept) {
      const sizing = nextChunkRows({
        rows: result.rows,
        durationMs: result.durationMs,
        previousChunkRows: run.chunk_rows,
        previousRowsPerMs: run.ewma_rows_per_ms,
        targetChunkMs: spec.backfill.targetChunkMs,
        minChunkRows: spec.backfill.minChunkRows,
        maxChunkRows: spec.backfill.maxChunkRows,
      });
      await repository.updateSizing(db, migration.id, sizing.chunkRows, sizing.rowsPerMs);
    }
    // Off the job's critical path: the worker takes the chunk planned ahead while this plans the
    // next one. A failure in either is repaired by the reconciler's next round.
    void this.pump(migration.id).catch(() => undefined);
    await this.finishRun(migration.id, run).catch(() => undefined);
    return { kind: 'copied', chunkId: chunk.id, rows: result.rows, durationMs: result.durationMs };
  }

  /**
   * A chunk the latency guard does not admit yet: the run shows `throttled: latency` while a live
   * guard holds the copy back, and the job comes back in `waitMs` (at least 1 ms, at most
   * {@link GUARD_RECHECK_MAX_MS}, so a pace that rose applies within it).
   */
  async #heldByGuard(migrationId: string, run: BackfillRunRow, holding: boolean, waitMs: number): Promise<ChunkOutcome> {
    if (holding && run.throttled_reason !== 'latency') await this.deps.repository.setThrottled(this.deps.db, migrationId, 'latency');
    return { kind: 'throttled', reason: 'latency', retryInMs: Math.max(1, Math.min(GUARD_RECHECK_MAX_MS, Math.ceil(waitMs))) };
  }

  /**
   * Admission by the latency guard ({@link PaceRepository.admit}, one statement): while it measures
   * its baseline no chunk starts; otherwise the chunk reserves the rows it was planned for at the
   * guard's pace, or at the floor when no live guard has set one (a guard that died or has not
   * started yet never leaves the copy unpaced, nor starved).
   */
  async #admitByGuard(run: BackfillRunRow, spec: MigrationSpec, plannedRows: number | null): Promise<Admission & { rows: number }> {
    // The rows this chunk was planned for (its keyset OFFSET), or the run's adaptive size (a split half).
    const rows = plannedRows ?? plannedChunkRows(run, spec);
    const admission = await this.deps.pace.admit(this.deps.db, run.datasource, rows, spec.throttle.latencyGuard.minRowsPerSecond);
    return { ...admission, waitMs: admission.measuring ? BASELINE_RECHECK_MS : admission.waitMs, rows };
  }

  /** The datasource's health reading; a datasource that does not answer marks the backfill blocked before the error goes on. */
  async #readHealth(migrationId: string, datasource: string) {
    try {
      return await this.deps.health.read(datasource);
    } catch (error) {
      if (isTransientError(error)) await this.#blockOn(migrationId, error, `datasource "${datasource}"`);
      throw error;
    }
  }

  /** Marks the backfill blocked on what `error` names (`fallback` for a bare connection error); never for the orchestrator, which is where it would be written. */
  async #blockOn(migrationId: string, error: unknown, fallback: string): Promise<void> {
    const dependency = dependencyOf(error, fallback);
    if (dependency === 'postgres') return;
    await this.deps.chunks.blocks.block(migrationId, 'backfill', { reason: 'datasource-unavailable', dependency, message: errorMessage(error) }).catch(() => undefined);
  }

  /**
   * Completes the run once planning is done and no chunk is pending or running. A lock-free run
   * first sweeps the rows its chunks may have copied after the source row was deleted
   * ({@link TombstoneSweeper}); while transactions older than the sweep's fence are open it stays
   * incomplete, shows `throttled: long-transaction`, and the reconciler tries again.
   *
   * @param known - the run row when the caller has it (saves a query).
   * @throws the database error of the sweep (the reconciler retries).
   */
  async finishRun(migrationId: string, known?: BackfillRunRow): Promise<void> {
    const { db, repository } = this.deps;
    const run = known ?? (await repository.getRun(db, migrationId));
    if (!run || run.completed_at) return;
    // A lock-free run sweeps first; the completing update checks for itself that every chunk is finished.
    if (run.lock_free) {
      if (!(await repository.allChunksFinished(db, migrationId))) return;
      const row = await db.selectFrom('migrations').selectAll().where('id', '=', migrationId).executeTakeFirst();
      if (!row || row.phase !== 'backfill') return;
      const outcome = await this.deps.sweeper.sweep(toMigration(row).spec, migrationId);
      if (outcome.kind === 'busy') return;
      if (outcome.kind === 'waiting') {
        await repository.setThrottled(db, migrationId, 'long-transaction');
        return;
      }
      if (run.throttled_reason) await repository.setThrottled(db, migrationId, null);
      // Every chunk transaction has ended (the sweep's fence): now a re-drive of a key whose sync
      // failed during the run is final.
      await this.deps.redriveSyncFailuresSince?.(toMigration(row), run.started_at);
    }
    await repository.completeRunIfDone(db, migrationId);
  }

  /**
   * A failed attempt. A transient error (a datasource or the orchestrator not answering) is an
   * interruption: the chunk goes back to pending with a short backoff, the attempt does not count
   * toward `maxAttempts`, and the backfill is marked blocked until a chunk finishes. Any other error
   * is a counted attempt: split after repeated timeouts, retried with exponential backoff and
   * jitter, failed after `maxAttempts` (and the migration failed past `abortCriteria.maxFailedChunks`).
   */
  async #handleFailure(migration: Migration, key: KeyShape, chunk: ClaimedChunk, error: unknown): Promise<ChunkOutcome> {
    const { db, repository, chunks } = this.deps;
    const spec = migration.spec;
    const message = errorMessage(error);
    if (isTransientError(error)) {
      const delay = transientRetryDelayMs(chunk.interruptions + 1);
      await chunks.retryLater(chunk, { error: message, delayMs: delay, interrupted: true });
      await this.#blockOn(migration.id, error, `datasource "${spec.source.datasource}"`);
      await this.pump(migration.id).catch(() => undefined);
      return { kind: 'retrying', error: message, retryInMs: delay };
    }
    const sqlstate = (error as { code?: string }).code;
    const counted = chunk.attempts - chunk.interruptions;
    // What may clear by itself (mayClearByItself) is retried once before the chunk is bisected.
    if (isRowDataError(sqlstate) && (!mayClearByItself(sqlstate) || counted >= 2)) {
      // A failure to isolate (the source not answering) leaves the attempt to the ordinary retry.
      const isolated = await this.#isolateRowDataError(migration, key, chunk, error).catch(() => null);
      if (isolated) return isolated;
    }
    const timedOut = sqlstate === PG_QUERY_CANCELED;
    if (timedOut && chunk.timeouts + 1 >= SPLIT_AFTER_TIMEOUTS) {
      const middle = await this.#middle(spec, key, chunk).catch(() => null);
      if (middle) return this.#split(migration, chunk, middle, message, null);
    }
    if (counted >= spec.backfill.maxAttempts) {
      await repository.fail(db, chunk, message, timedOut);
      const failed = await repository.countFailed(db, migration.id);
      if (failed > spec.abortCriteria.maxFailedChunks) {
        await this.#failMigration(migration.id, `${failed} chunk(s) failed, more than abortCriteria.maxFailedChunks (${spec.abortCriteria.maxFailedChunks})`, {
          failedChunks: failed,
          maxFailedChunks: spec.abortCriteria.maxFailedChunks,
          lastError: message,
        });
      }
      return { kind: 'failed', error: message };
    }
    const delay = retryDelayMs(counted);
    await chunks.retryLater(chunk, { error: message, delayMs: delay, interrupted: false, ...(timedOut ? { extraSet: sql`timeouts = timeouts + 1` } : {}) });
    await this.pump(migration.id).catch(() => undefined);
    return { kind: 'retrying', error: message, retryInMs: delay };
  }

  /**
   * A chunk that failed on the data of some of its rows (SQLSTATE class 22 or 23, issue 18: no row
   * skipped silently). Such an error repeats on every attempt, so the chunk is bisected at once
   * (delta debugging's halving, Zeller 2002): each half is copied on its own, and the halves that
   * fail are split again, down to chunks of one row. A one-row chunk that fails is `skipped`: its
   * key and error are listed (`backfill_skipped_rows`) and the backfill goes on without it; the
   * backfill gate waits until every listed row is re-driven or accepted. A run with more than
   * `backfill.maxSkippedRows` unresolved, or more splits than {@link dataErrorSplitBudget} allows,
   * fails the migration: an error on every row is the mapping's, not the data's. The cost: about
   * 2·log2(chunk rows) extra copies per bad row.
   *
   * @returns the outcome, or `null` when the range holds no row any more (the ordinary retry then
   *   copies what is there).
   * @throws the source's error when its rows cannot be counted or read.
   */
  async #isolateRowDataError(migration: Migration, key: KeyShape, chunk: ClaimedChunk, error: unknown): Promise<ChunkOutcome | null> {
    const { db, repository } = this.deps;
    const spec = migration.spec;
    const failure = skipFailureOf(error);
    // One read of up to two keys decides: a count and a key read apart could list a row inserted
    // in between instead of the one that failed.
    const keys = await this.#keysIn(spec, key, chunk, 2);
    if (keys.length === 0) return null;
    if (keys.length >= 2) {
      const middle = await this.#middle(spec, key, chunk);
      return middle ? this.#split(migration, chunk, middle, failure.error, failure) : null;
    }
    // Listed in spec.source.key order, the order re-drive and the API take.
    const row = toSpecKeyOrder(spec.source.key, key.columns, keys[0] as KeyValue);
    if (!(await db.transaction().execute((trx) => repository.skip(trx, chunk, row, failure)))) {
      return { kind: 'skipped', reason: `chunk ${chunk.id}: the lease was lost before the row was listed` };
    }
    const unresolved = await repository.countSkippedUnresolved(db, migration.id);
    if (unresolved > spec.backfill.maxSkippedRows) {
      await this.#failMigration(migration.id, `${unresolved} row(s) skipped on their data, more than backfill.maxSkippedRows (${spec.backfill.maxSkippedRows}): the last one failed with "${failure.error}"`, {
        skippedRows: unresolved,
        maxSkippedRows: spec.backfill.maxSkippedRows,
        lastError: failure.error,
        sqlstate: failure.sqlstate,
        constraint: failure.constraint,
      });
    }
    void this.pump(migration.id).catch(() => undefined);
    await this.finishRun(migration.id).catch(() => undefined);
    return { kind: 'row-skipped', key: row, error: failure.error };
  }

  /**
   * Splits a chunk at `middle` (fenced by its lease) and pumps the halves. A split on a data error
   * (`dataError`, else `null`) counts toward the run's {@link dataErrorSplitBudget}, past which the
   * migration fails.
   */
  async #split(migration: Migration, chunk: ClaimedChunk, middle: KeyValue, message: string, dataError: SkipFailure | null): Promise<ChunkOutcome> {
    const { db, repository } = this.deps;
    const spec = migration.spec;
    const splits = await db.transaction().execute(async (trx) => {
      if (!(await repository.split(trx, chunk, middle, message))) return null;
      return dataError ? repository.countDataErrorSplit(trx, migration.id) : 0;
    });
    if (splits === null) return { kind: 'skipped', reason: `chunk ${chunk.id}: the lease was lost before the split` };
    const budget = dataErrorSplitBudget(spec.backfill.maxSkippedRows, spec.backfill.maxChunkRows);
    if (dataError && splits > budget) {
      await this.#failMigration(
        migration.id,
        `${splits} chunk splits on data errors, more than ${budget} (backfill.maxSkippedRows ${spec.backfill.maxSkippedRows}): rows all over the table fail with "${message}" — the mapping or the target, not a few rows`,
        { dataErrorSplits: splits, splitBudget: budget, maxSkippedRows: spec.backfill.maxSkippedRows, lastError: message, sqlstate: dataError.sqlstate },
      );
      return { kind: 'failed', error: message };
    }
    await this.pump(migration.id).catch(() => undefined);
    return { kind: 'split', error: message };
  }

  /** Fails the migration on the backfill's behalf (audited as `tideway:backfill`); a refusal (already failed, moved on) is ignored. */
  async #failMigration(migrationId: string, reason: string, details: Record<string, unknown>): Promise<void> {
    await this.deps.migrations.act(migrationId, 'fail', { actor: 'tideway:backfill', reason, details }).catch(() => undefined);
  }

  /** Source keys of a chunk's range in key order (index order), as text values: `limit` of them from `offset`. */
  async #keysIn(spec: MigrationSpec, key: KeyShape, chunk: ClaimedChunk, limit: number, offset = 0): Promise<KeyValue[]> {
    const range = rangePredicate(key, chunk.lower, chunk.upper);
    const cols = key.columns.map(quoteIdent);
    return this.deps.datasources.withClient(spec.source.datasource, async (client) => {
      const r = await client.query<Record<string, string>>(
        `${TIDEWAY_SQL_MARK}SELECT ${cols.map((c, i) => `${c}::text AS k${i}`).join(', ')} FROM ${qualified(spec.source)} WHERE ${range.sql} ORDER BY ${cols.join(', ')} OFFSET ${Math.floor(offset)} LIMIT ${Math.floor(limit)}`,
        range.params,
      );
      return r.rows.map((row) => key.columns.map((_, i) => row[`k${i}`] as string));
    });
  }

  /** A key near the middle of a chunk's range, or `null` when the range cannot be split. */
  async #middle(spec: MigrationSpec, key: KeyShape, chunk: ClaimedChunk): Promise<KeyValue | null> {
    const range = rangePredicate(key, chunk.lower, chunk.upper);
    const count = await this.deps.datasources.withClient(spec.source.datasource, (client) =>
      client.query<{ n: string }>(`${TIDEWAY_SQL_MARK}SELECT count(*) AS n FROM ${qualified(spec.source)} WHERE ${range.sql}`, range.params),
    );
    const n = Number(count.rows[0]?.n ?? 0);
    if (n < 2) return null;
    return (await this.#keysIn(spec, key, chunk, 1, Math.floor(n / 2) - 1))[0] ?? null;
  }

  /**
   * Re-creates lost work from PostgreSQL: leases that ran out go back to pending; queued chunks whose
   * job is not live in Redis any more are marked unqueued; then every active backfill is pumped
   * (sending those under a new enqueue generation) and finished when it can be; blocks of migrations
   * with no live chunk left are cleared. Cheap enough to run every few seconds in every worker.
   * One migration's failure does not stop the others.
   *
   * @throws the first error met (Redis or a datasource down), after doing everything else it could.
   */
  async reconcile(): Promise<{ releasedLeases: number; lostJobs: number; enqueued: number }> {
    const { db, repository, chunks } = this.deps;
    const errors: unknown[] = [];
    const released = await chunks.releaseExpired();
    const lost = await chunks.findLost().catch((error: unknown) => {
      errors.push(error);
      return [];
    });
    let enqueued = 0;
    for (const migrationId of await repository.activeRuns(db)) {
      await this.purgeTarget(migrationId).catch((error: unknown) => {
        errors.push(error);
      });
      enqueued += await this.pump(migrationId).catch((error: unknown) => {
        errors.push(error);
        return 0;
      });
      await this.finishRun(migrationId).catch(() => undefined);
    }
    await chunks.blocks.sweep(chunks.kind).catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
    return { releasedLeases: released.length, lostJobs: lost.length, enqueued };
  }
}
