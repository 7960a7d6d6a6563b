/**
 * Cutover and cleanup state: the read ramp of each migration, durable timers (ramp holds, cleanup
 * reminders and deadlines — kept here, never only in Redis), and cleanup deadlines.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('ramps')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.primaryKey().references('migrations.id'))
    // Index into spec.ramp.steps of the step in force; -1 before the first.
    .addColumn('step', 'integer', (c) => c.notNull().defaultTo(-1))
    .addColumn('percent', 'double precision', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status IN ('holding','awaiting_approval','write_cutover','rolled_back')`),
    )
    .addColumn('hold_started_at', 'timestamptz')
    .addColumn('next_at', 'timestamptz')
    .addColumn('paused_at', 'timestamptz')
    .addColumn('write_cutover_at', 'timestamptz')
    .addColumn('reverse_sync', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('history', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('timers')
    .ifNotExists()
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('migration_id', 'uuid', (c) => c.notNull().references('migrations.id'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind IN ('ramp_hold','cleanup_reminder','cleanup_deadline')`))
    .addColumn('due_at', 'timestamptz', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('fired_at', 'timestamptz')
    .addColumn('cancelled_at', 'timestamptz')
    // A poller's claim while its handler runs; an expired claim (crashed worker) is taken again.
    .addColumn('lease_until', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`CREATE INDEX IF NOT EXISTS timers_due_idx ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL`.execute(db);

  await db.schema
    .createTable('cleanups')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.primaryKey().references('migrations.id'))
    .addColumn('deadline', 'timestamptz', (c) => c.notNull())
    .addColumn('reminders', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('overdue_since', 'timestamptz')
    .addColumn('executed_at', 'timestamptz')
    .addColumn('archived_table', 'text')
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('cleanups').ifExists().execute();
  await db.schema.dropTable('timers').ifExists().execute();
  await db.schema.dropTable('ramps').ifExists().execute();
}
