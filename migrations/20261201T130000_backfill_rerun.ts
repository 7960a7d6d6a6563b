/**
 * Re-entering backfill starts clean (ADR 005, "re-runs"): before any chunk is planned, the target is
 * emptied of what a previous run (or anyone) left there, in keyset batches. `purged_through` is the
 * keyset position of the purge, `target_purged_at` its end, `rows_purged` what it removed.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs
    ADD COLUMN IF NOT EXISTS purged_through jsonb,
    ADD COLUMN IF NOT EXISTS target_purged_at timestamptz,
    ADD COLUMN IF NOT EXISTS rows_purged bigint NOT NULL DEFAULT 0`.execute(db);
  // Runs recorded before this migration never purged; they are past that point.
  await sql`UPDATE backfill_runs SET target_purged_at = started_at WHERE target_purged_at IS NULL`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs DROP COLUMN IF EXISTS purged_through, DROP COLUMN IF EXISTS target_purged_at, DROP COLUMN IF EXISTS rows_purged`.execute(db);
}
