/**
 * No row skipped silently (issue 18): a chunk that fails on its data is bisected down to the rows
 * that cause it; such a single-row chunk ends `skipped`, and its row is listed in
 * `backfill_skipped_rows` with the error until it is re-driven or accepted (the backfill gate waits).
 * `backfill_runs.data_error_splits` counts the splits, which are bounded (`dataErrorSplitBudget`).
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_chunks DROP CONSTRAINT IF EXISTS backfill_chunks_status_check`.execute(db);
  await sql`ALTER TABLE backfill_chunks ADD CONSTRAINT backfill_chunks_status_check CHECK (status IN ('pending','running','done','failed','split','skipped'))`.execute(db);
  await db.schema
    .createTable('backfill_skipped_rows')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.notNull().references('migrations.id'))
    // The source key, one text value per key column (spec.source.key order), as chunks hold bounds.
    .addColumn('key_values', 'jsonb', (c) => c.notNull())
    .addColumn('chunk_id', 'bigint', (c) => c.notNull())
    .addColumn('error', 'text', (c) => c.notNull())
    .addColumn('sqlstate', 'text', (c) => c.notNull())
    .addColumn('constraint_name', 'text')
    .addColumn('detected_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('resolution', 'text', (c) => c.check(sql`resolution IN ('redriven','accepted')`))
    .addColumn('resolved_at', 'timestamptz')
    .addColumn('resolved_by', 'text')
    .addColumn('reason', 'text')
    .addPrimaryKeyConstraint('backfill_skipped_rows_pkey', ['migration_id', 'key_values'])
    .execute();
  await sql`ALTER TABLE backfill_runs ADD COLUMN IF NOT EXISTS data_error_splits integer NOT NULL DEFAULT 0`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs DROP COLUMN IF EXISTS data_error_splits`.execute(db);
  await db.schema.dropTable('backfill_skipped_rows').ifExists().execute();
  await sql`UPDATE backfill_chunks SET status = 'failed' WHERE status = 'skipped'`.execute(db);
  await sql`ALTER TABLE backfill_chunks DROP CONSTRAINT IF EXISTS backfill_chunks_status_check`.execute(db);
  await sql`ALTER TABLE backfill_chunks ADD CONSTRAINT backfill_chunks_status_check CHECK (status IN ('pending','running','done','failed','split'))`.execute(db);
}
