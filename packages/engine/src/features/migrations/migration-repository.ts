import { isUuid, NameTakenError, type MigrationSpec, type MigrationState } from '@tideway/core';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import { toMigration, type Migration } from './migration.js';

/** An audit event to append; `seq` is assigned by the repository. */
export interface NewMigrationEvent {
  readonly migrationId: string;
  readonly actor: string;
  readonly action: string;
  readonly from: MigrationState | null;
  readonly to: MigrationState | null;
  readonly reason: string | null;
  readonly details: Record<string, unknown>;
}

/**
 * Writes migrations and their audit events. Every method takes the executor of the caller's
 * transaction: the transaction begins at the use-case boundary (the service), never here.
 */
export interface MigrationRepository {
  /** @throws NameTakenError when the name is in use. */
  insert(trx: Kysely<Database>, name: string, spec: MigrationSpec): Promise<Migration>;
  /** Reads and row-locks (`FOR UPDATE`) a migration until the transaction ends. */
  lock(trx: Kysely<Database>, id: string): Promise<Migration | undefined>;
  /** Sets phase and status, bumps `version`; resets `phase_entered_at` when the phase changes. */
  updateState(trx: Kysely<Database>, current: Migration, to: MigrationState): Promise<Migration>;
  /** Replaces the spec and bumps `version`. */
  updateSpec(trx: Kysely<Database>, current: Migration, spec: MigrationSpec): Promise<Migration>;
  /** Appends an event with the next `seq` of the migration (the caller holds the row lock). */
  appendEvent(trx: Kysely<Database>, event: NewMigrationEvent): Promise<number>;
}


/** {@link MigrationRepository} on the orchestrator database through Kysely. */
export class KyselyMigrationRepository implements MigrationRepository {
  async insert(trx: Kysely<Database>, name: string, spec: MigrationSpec): Promise<Migration> {
    try {
      const row = await trx
        .insertInto('migrations')
        .values({ name, spec: JSON.stringify(spec), phase: 'draft', status: 'active' })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toMigration(row);
    } catch (error) {
      if ((error as { code?: string }).code === '23505') throw new NameTakenError(name);
      throw error;
    }
  }

  async lock(trx: Kysely<Database>, id: string): Promise<Migration | undefined> {
    if (!isUuid(id)) return undefined;
    const row = await trx.selectFrom('migrations').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    return row ? toMigration(row) : undefined;
  }

  async updateState(trx: Kysely<Database>, current: Migration, to: MigrationState): Promise<Migration> {
    const row = await trx
      .updateTable('migrations')
      .set({
        phase: to.phase,
        status: to.status,
        version: sql`version + 1`,
        updated_at: sql`now()`,
        ...(to.phase !== current.phase ? { phase_entered_at: sql`now()` } : {}),
      })
      .where('id', '=', current.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toMigration(row);
  }

  async updateSpec(trx: Kysely<Database>, current: Migration, spec: MigrationSpec): Promise<Migration> {
    const row = await trx
      .updateTable('migrations')
      .set({ spec: JSON.stringify(spec), version: sql`version + 1`, updated_at: sql`now()` })
      .where('id', '=', current.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toMigration(row);
  }

  async appendEvent(trx: Kysely<Database>, event: NewMigrationEvent): Promise<number> {
    const next = await trx
      .selectFrom('migration_events')
      .select(sql<number>`coalesce(max(seq), 0) + 1`.as('seq'))
      .where('migration_id', '=', event.migrationId)
      .executeTakeFirstOrThrow();
    await trx
      .insertInto('migration_events')
      .values({
        migration_id: event.migrationId,
        seq: next.seq,
        actor: event.actor,
        action: event.action,
        from_phase: event.from?.phase ?? null,
        from_status: event.from?.status ?? null,
        to_phase: event.to?.phase ?? null,
        to_status: event.to?.status ?? null,
        reason: event.reason,
        details: JSON.stringify(event.details),
      })
      .execute();
    return next.seq;
  }
}
