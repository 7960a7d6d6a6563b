/**
 * Lock-free chunks (ADR 005): with trigger sync a run copies without source row locks and, once
 * every chunk is done, sweeps the target rows of keys the sync trigger recorded as deleted.
 * `lock_free` is decided when the run starts (trigger sync with its tombstone table in place).
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs ADD COLUMN IF NOT EXISTS lock_free boolean NOT NULL DEFAULT false`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs DROP COLUMN IF EXISTS lock_free`.execute(db);
}
