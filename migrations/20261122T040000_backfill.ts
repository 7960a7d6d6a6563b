/**
 * Backfill state of record: one run per migration (keyset cursor, adaptive chunk size, throttle
 * state) and one row per chunk (key range, status, attempts, lease). Redis only holds the jobs
 * that point at these rows; the reconciler re-creates them from here.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('backfill_runs')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.primaryKey().references('migrations.id'))
    .addColumn('datasource', 'text', (c) => c.notNull())
    // Key columns in the order of the unique index that serves them, and their SQL types.
    .addColumn('key_columns', 'jsonb', (c) => c.notNull())
    .addColumn('key_types', 'jsonb', (c) => c.notNull())
    // Upper bound (inclusive) of the last planned chunk, as text values; null before the first.
    .addColumn('planned_through', 'jsonb')
    .addColumn('planning_done', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('chunk_rows', 'integer', (c) => c.notNull())
    // Smoothed copy rate in rows per millisecond of server-side execution.
    .addColumn('ewma_rows_per_ms', 'double precision')
    .addColumn('rows_estimated', 'bigint', (c) => c.notNull())
    .addColumn('throttled_reason', 'text')
    .addColumn('throttled_since', 'timestamptz')
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('completed_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('backfill_chunks')
    .ifNotExists()
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('migration_id', 'uuid', (c) => c.notNull().references('migrations.id'))
    // Exclusive lower and inclusive upper bound as JSON arrays of text values; null = unbounded.
    .addColumn('lower_key', 'jsonb')
    .addColumn('upper_key', 'jsonb')
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status IN ('pending','running','done','failed','split')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('timeouts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('rows_copied', 'integer')
    .addColumn('duration_ms', 'integer')
    .addColumn('worker', 'text')
    .addColumn('lease_token', 'uuid')
    .addColumn('lease_expires_at', 'timestamptz')
    .addColumn('not_before', 'timestamptz')
    .addColumn('enqueued_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('backfill_chunks_migration_status_idx').ifNotExists().on('backfill_chunks').columns(['migration_id', 'status']).execute();
  await db.schema.createIndex('backfill_chunks_finished_idx').ifNotExists().on('backfill_chunks').columns(['migration_id', 'finished_at']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('backfill_chunks').ifExists().execute();
  await db.schema.dropTable('backfill_runs').ifExists().execute();
}
