import { TidewayError } from '@tideway/core';
import type { Database, TimerRow } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../../clock.js';
import { quoteIdent } from '../backfill/sql.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { MigrationContext } from '../migrations/migration-context.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';
import type { TimerOutcome, TimerService } from '../timers/timer-service.js';
import type { WebhookNotifier } from '../webhooks/webhook-notifier.js';

const DAY_MS = 86_400_000;
/** Reminders before the deadline, in days. */
export const REMINDER_DAYS = [7, 1] as const;
const ACTOR = 'tideway:cleanup';

/** A cleanup deadline as listed by `GET /v1/cleanups`. */
export interface CleanupView {
  readonly migrationId: string;
  readonly name: string;
  readonly phase: string;
  readonly status: string;
  readonly deadline: string;
  readonly overdue: boolean;
  readonly overdueSince: string | null;
  readonly autoExecute: boolean;
  readonly executedAt: string | null;
  readonly archivedTable: string | null;
  readonly remindersSent: { kind: string; at: string }[];
}

interface Deps {
  readonly db: Kysely<Database>;
  readonly timers: TimerService;
  readonly migrations: MigrationService;
  readonly datasources: DatasourceRegistry;
  readonly webhooks: WebhookNotifier;
  readonly clock: Clock;
}

/**
 * Cleanup deadlines, scheduled from the moment cleanup starts so they cannot be forgotten: entering
 * cleanup sets `deadline = now + spec.cleanup.deadlineDays`, with reminders 7 days and 1 day before
 * and at the deadline (audit events and webhooks). At the deadline, `autoExecute` drops the sync
 * triggers, renames the old table to `<table>_tideway_archived_<yyyymmdd>`
 * (or drops it with `dropOld` and its confirmation) and finishes the migration (whose converge
 * archives the flags: `done`/`completed` wants them archived); without it the
 * migration is overdue and a reminder repeats daily until an operator acts.
 */
export class CleanupService {
  constructor(private readonly deps: Deps) {}

  /** Entry action of `cleanup`. */
  async enter(ctx: MigrationContext): Promise<void> {
    const now = this.deps.clock.now();
    const deadline = new Date(now.getTime() + ctx.migration.spec.cleanup.deadlineDays * DAY_MS);
    await ctx.db
      .insertInto('cleanups')
      .values({ migration_id: ctx.migration.id, deadline })
      .onConflict((oc) => oc.column('migration_id').doUpdateSet({ deadline, overdue_since: null }))
      .execute();
    await this.deps.timers.cancel(ctx.db, ctx.migration.id, ['cleanup_reminder', 'cleanup_deadline']);
    for (const days of REMINDER_DAYS) {
      const at = new Date(deadline.getTime() - days * DAY_MS);
      if (at > now) await this.deps.timers.schedule(ctx.db, ctx.migration.id, 'cleanup_reminder', at, { daysLeft: days });
    }
    await this.deps.timers.schedule(ctx.db, ctx.migration.id, 'cleanup_deadline', deadline, { repeat: 0 });
  }

  /** Rollback action of `cleanup` (back to cutover): the deadline and its timers go away. */
  async leave(ctx: MigrationContext): Promise<void> {
    await this.deps.timers.cancel(ctx.db, ctx.migration.id, ['cleanup_reminder', 'cleanup_deadline']);
    await ctx.db.deleteFrom('cleanups').where('migration_id', '=', ctx.migration.id).where('executed_at', 'is', null).execute();
  }

  async #migration(id: string): Promise<Migration | null> {
    const row = await this.deps.db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toMigration(row) : null;
  }

  /** Timer handler: a reminder before the deadline. */
  async onReminder(timer: TimerRow, now: Date): Promise<TimerOutcome> {
    const migration = await this.#migration(timer.migration_id);
    if (!migration || migration.phase !== 'cleanup') return 'fired';
    const cleanup = await this.deps.db.selectFrom('cleanups').selectAll().where('migration_id', '=', migration.id).executeTakeFirstOrThrow();
    const payload = { migrationId: migration.id, name: migration.name, deadline: new Date(cleanup.deadline).toISOString(), daysLeft: timer.payload['daysLeft'] };
    await this.#remember(migration.id, 'reminder', now);
    await this.deps.migrations.recordEvent(migration.id, 'cleanup.reminder', { actor: ACTOR, details: payload });
    await this.deps.webhooks.notify('migration.cleanup_reminder', payload);
    return 'fired';
  }

  /** Timer handler: the deadline (and, while overdue, its daily repeat). */
  async onDeadline(timer: TimerRow, now: Date): Promise<TimerOutcome> {
    const migration = await this.#migration(timer.migration_id);
    if (!migration || migration.phase !== 'cleanup' || migration.status === 'aborted') return 'fired';
    const cleanup = await this.deps.db.selectFrom('cleanups').selectAll().where('migration_id', '=', migration.id).executeTakeFirstOrThrow();
    const payload = { migrationId: migration.id, name: migration.name, deadline: new Date(cleanup.deadline).toISOString() };
    if (migration.spec.cleanup.autoExecute && migration.status === 'active') {
      await this.deps.migrations.act(migration.id, 'advance', { actor: ACTOR, reason: 'cleanup deadline reached with autoExecute' });
      await this.deps.webhooks.notify('migration.cleanup_executed', payload);
      return 'fired';
    }
    await this.deps.db.updateTable('cleanups').set({ overdue_since: sql`coalesce(overdue_since, ${now})` }).where('migration_id', '=', migration.id).execute();
    await this.#remember(migration.id, 'overdue', now);
    await this.deps.migrations.recordEvent(migration.id, 'cleanup.overdue', { actor: ACTOR, details: { ...payload, repeat: timer.payload['repeat'] } });
    await this.deps.webhooks.notify('migration.cleanup_overdue', payload);
    await this.deps.timers.schedule(this.deps.db, migration.id, 'cleanup_deadline', new Date(now.getTime() + DAY_MS), { repeat: Number(timer.payload['repeat'] ?? 0) + 1 });
    return 'fired';
  }

  async #remember(migrationId: string, kind: string, now: Date): Promise<void> {
    await this.deps.db
      .updateTable('cleanups')
      .set({ reminders: sql`reminders || ${JSON.stringify([{ kind, at: now.toISOString() }])}::jsonb` })
      .where('migration_id', '=', migrationId)
      .execute();
  }

  /**
   * Entry action of `done` (the operator's advance, or the deadline with autoExecute), run after the
   * converge of `done` removed the sync and archived the flags (the desired state of a completed
   * migration): rename (or, with `dropOld`, drop) the old table. Idempotent.
   * @throws DependencyUnavailableError when the datasource cannot be reached.
   */
  async execute(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const cleanup = await ctx.db.selectFrom('cleanups').selectAll().where('migration_id', '=', migration.id).executeTakeFirst();
    if (cleanup?.executed_at) return;
    const spec = migration.spec;
    // The sync triggers are gone and the flags archived: this runs after the converge of `done` (stage after-converge).
    const dropping = spec.cleanup.dropOld && spec.cleanup.dropConfirmation === spec.source.table;
    // The archive's comment starts with this line (the table's own comment, if any, follows), so a
    // retry after a crash between the rename (committed on the datasource) and the orchestrator's
    // commit finds the name given then, not one with the retry's date.
    const marker = `tideway:archived-by:${migration.id}`;
    const source = `${quoteIdent(spec.source.schema)}.${quoteIdent(spec.source.table)}`;
    // The archive's name, or null when the table was dropped (or is gone and no archive is known).
    const archived = await this.deps.datasources.withClient(spec.source.datasource, async (client): Promise<string | null> => {
      const exists = await client.query(`SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, [spec.source.schema, spec.source.table]);
      if (!exists.rowCount) {
        const earlier = await client.query<{ relname: string }>(
          `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND starts_with(obj_description(c.oid, 'pg_class'), $2)`,
          [spec.source.schema, marker],
        );
        // Renamed by an earlier attempt (found by its marker), or gone some other way: then no archive is known.
        return earlier.rows[0]?.relname ?? null;
      }
      const name = archiveTableName(spec.source.table, this.deps.clock.now().toISOString().slice(0, 10).replace(/-/g, ''));
      await client.query('BEGIN');
      try {
        await client.query('SET LOCAL lock_timeout = 5000');
        if (dropping) await client.query(`DROP TABLE ${source}`);
        else {
          const own = await client.query<{ comment: string | null }>(`SELECT obj_description($1::regclass, 'pg_class') AS comment`, [source]);
          const comment = own.rows[0]?.comment ? `${marker}\n${own.rows[0].comment}` : marker;
          await client.query(`ALTER TABLE ${source} RENAME TO ${quoteIdent(name)}`);
          await client.query(`COMMENT ON TABLE ${quoteIdent(spec.source.schema)}.${quoteIdent(name)} IS ${client.escapeLiteral(comment)}`);
        }
        await client.query('COMMIT');
        return dropping ? null : name;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
    await this.deps.timers.cancel(ctx.db, migration.id, ['cleanup_reminder', 'cleanup_deadline']);
    await ctx.db
      .insertInto('cleanups')
      .values({ migration_id: migration.id, deadline: this.deps.clock.now(), executed_at: this.deps.clock.now(), archived_table: archived })
      .onConflict((oc) => oc.column('migration_id').doUpdateSet({ executed_at: this.deps.clock.now(), archived_table: archived }))
      .execute();
  }

  /** Upcoming and overdue cleanup deadlines across migrations, soonest first. */
  async list(): Promise<CleanupView[]> {
    const rows = await this.deps.db
      .selectFrom('cleanups as c')
      .innerJoin('migrations as m', 'm.id', 'c.migration_id')
      .select(['c.migration_id', 'c.deadline', 'c.overdue_since', 'c.executed_at', 'c.archived_table', 'c.reminders', 'm.name', 'm.phase', 'm.status', 'm.spec'])
      .orderBy('c.deadline')
      .execute();
    const now = this.deps.clock.now().getTime();
    return rows.map((r) => ({
      migrationId: r.migration_id,
      name: r.name,
      phase: r.phase,
      status: r.status,
      deadline: new Date(r.deadline).toISOString(),
      overdue: !r.executed_at && new Date(r.deadline).getTime() <= now,
      overdueSince: r.overdue_since ? r.overdue_since.toISOString() : null,
      autoExecute: Boolean((r.spec as { cleanup?: { autoExecute?: boolean } }).cleanup?.autoExecute),
      executedAt: r.executed_at ? r.executed_at.toISOString() : null,
      archivedTable: r.archived_table,
      remindersSent: r.reminders,
    }));
  }

  /** Guard for callers: a migration must be in cleanup to have a deadline. */
  static assertInCleanup(migration: Migration): void {
    if (migration.phase !== 'cleanup') throw new TidewayError('INVALID_TRANSITION', 'the migration is not in cleanup', { phase: migration.phase, status: migration.status, action: 'cleanup', allowed: [] });
  }
}

/**
 * `<table>_tideway_archived_<yyyymmdd>`, the table name cut so the whole fits PostgreSQL's 63-byte
 * identifiers (a longer name would be truncated by PostgreSQL, date first, and differ from the one
 * recorded). Cuts at a character boundary.
 */
export function archiveTableName(table: string, stamp: string): string {
  const suffix = `_tideway_archived_${stamp}`;
  const chars = Array.from(table);
  while (Buffer.byteLength(chars.join('') + suffix) > 63) chars.pop();
  return chars.join('') + suffix;
}
