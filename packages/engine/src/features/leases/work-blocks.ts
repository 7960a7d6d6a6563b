import type { Database, WorkKind } from '@tideway/db';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { MigrationService } from '../migrations/migration-service.js';
import type { LeasedWorkKind } from './leased-work.js';

/** Why leased work cannot make progress. */
export type WorkBlockReason = 'datasource-unavailable' | 'queue-unavailable';

/** `progress.blocked` of a migration: its leased work cannot make progress, and since when. */
export interface WorkBlock {
  /** Which work: `backfill` (chunks) or `verification` (ranges). */
  readonly kind: WorkKind;
  /** `datasource-unavailable` (a chunk or range was interrupted by a datasource that does not answer) or `queue-unavailable` (its job could not be queued: Redis). */
  readonly reason: WorkBlockReason;
  /** What does not answer: `datasource "main"`, `redis`. */
  readonly dependency: string;
  /** The last error seen. */
  readonly message: string;
  /** ISO time the work became blocked. */
  readonly since: string;
}

/** The actor of the audit events written here. */
const ACTOR = 'tideway:leases';

/**
 * Says when a migration's leased work cannot make progress, and when it can again: one row per
 * (migration, kind of work) in `work_blocks`, shown as `progress.blocked`, with exactly one audit
 * event when the work becomes blocked (`work.blocked`) and one when it clears (`work.unblocked`) —
 * not one per retry or reconcile round.
 *
 * Blocked: an attempt was interrupted by a datasource that does not answer, or the unit's job could
 * not be queued. Cleared: a unit of that kind finished (work moves again), or no live unit of that
 * kind is left (the migration was paused, the verification ended). A down orchestrator database is
 * not recorded (it is where this would be written); the API answers 503 meanwhile.
 */
export class WorkBlocks {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly migrations: Pick<MigrationService, 'recordEvent'>,
  ) {}

  /**
   * Records that `kind` work of the migration is blocked. The first report writes the row and the
   * `work.blocked` event (in one transaction); later ones only refresh reason and message.
   * @returns true when this report blocked it (an event was written).
   */
  async block(migrationId: string, kind: WorkKind, block: { reason: WorkBlockReason; dependency: string; message: string }): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('work_blocks')
        .values({ migration_id: migrationId, kind, reason: block.reason, dependency: block.dependency, message: block.message.slice(0, 1000) })
        .onConflict((oc) => oc.columns(['migration_id', 'kind']).doUpdateSet({ reason: block.reason, dependency: block.dependency, message: block.message.slice(0, 1000) }))
        // xmax = 0 only for a row this statement inserted (an upserted row carries the updater's xid).
        .returning(sql<boolean>`xmax = 0`.as('inserted'))
        .executeTakeFirstOrThrow();
      if (!inserted.inserted) return false;
      await this.migrations.recordEvent(migrationId, 'work.blocked', { actor: ACTOR, reason: `${kind} cannot make progress: ${block.dependency} unavailable`, details: { kind, ...block } }, trx);
      return true;
    });
  }

  /**
   * Clears the block of `kind` work of the migration, writing `work.unblocked` with how long it
   * lasted. @param why - what cleared it (`a chunk finished`, `no work left`).
   * @returns true when there was a block.
   */
  async clear(migrationId: string, kind: WorkKind, why: string): Promise<boolean> {
    return (await this.#clearWhere(kind, sql`b.migration_id = ${migrationId}`, why)) > 0;
  }

  /**
   * Clears blocks of `kind` work whose migration has no live unit of that kind left (paused, the
   * verification finished). Run by the reconciler. @returns how many were cleared.
   */
  async sweep(kind: LeasedWorkKind): Promise<number> {
    return this.#clearWhere(
      kind.work,
      sql`NOT EXISTS (SELECT 1 FROM ${sql.table(kind.table)} u WHERE ${sql.raw(kind.migrationSql)} = b.migration_id AND u.status IN ('pending', 'running') AND ${sql.raw(kind.liveSql)})`,
      'no work left',
    );
  }

  /** Deletes the blocks of `kind` matching `where` (over `b`) and writes their events, in one transaction. */
  async #clearWhere(kind: WorkKind, where: RawBuilder<boolean>, why: string): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const rows = await sql<{ migration_id: string; reason: string; dependency: string; seconds: number }>`
        DELETE FROM work_blocks b WHERE b.kind = ${kind} AND ${where}
        RETURNING b.migration_id, b.reason, b.dependency, extract(epoch FROM now() - b.since)::float8 AS seconds`.execute(trx);
      for (const row of rows.rows) {
        await this.migrations.recordEvent(
          row.migration_id,
          'work.unblocked',
          { actor: ACTOR, reason: `${kind} moves again: ${why}`, details: { kind, reason: row.reason, dependency: row.dependency, blockedSeconds: Math.round(row.seconds * 10) / 10, why } },
          trx,
        );
      }
      return rows.rows.length;
    });
  }

  /** The migration's oldest block, or `null` when its leased work is not blocked. */
  async current(migrationId: string): Promise<WorkBlock | null> {
    const row = await this.db.selectFrom('work_blocks').selectAll().where('migration_id', '=', migrationId).orderBy('since').limit(1).executeTakeFirst();
    if (!row) return null;
    return { kind: row.kind, reason: row.reason as WorkBlockReason, dependency: row.dependency, message: row.message, since: row.since.toISOString() };
  }
}
