/**
 * Leased work (shared/DESIGN.md §3, ADR 007): backfill chunks and verification ranges share one
 * lifecycle, so they share its columns.
 * - `enqueues`: how many times the unit was handed to the queue; part of the job id
 *   (`chunk-<id>-a<attempt>-e<enqueues>`), so a job that failed or vanished is always replaced by a
 *   new one rather than by an id BullMQ ignores.
 * - `interruptions`: attempts ended by a transient error (a database restart, a dropped
 *   connection); they do not count toward `backfill.maxAttempts`.
 * - ranges get what chunks already had: `not_before` (backoff), `worker`, `last_error`, `started_at`.
 * - `work_blocks`: a migration whose leased work cannot make progress (a datasource or the queue is
 *   unreachable), one row per kind of work, shown as `progress.blocked`.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_chunks
    ADD COLUMN IF NOT EXISTS enqueues integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS interruptions integer NOT NULL DEFAULT 0`.execute(db);
  await sql`ALTER TABLE verification_ranges
    ADD COLUMN IF NOT EXISTS enqueues integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS interruptions integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS not_before timestamptz,
    ADD COLUMN IF NOT EXISTS worker text,
    ADD COLUMN IF NOT EXISTS last_error text,
    ADD COLUMN IF NOT EXISTS started_at timestamptz`.execute(db);
  await sql`CREATE TABLE IF NOT EXISTS work_blocks (
    migration_id uuid NOT NULL REFERENCES migrations (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('backfill', 'verification')),
    reason text NOT NULL,
    dependency text NOT NULL,
    message text NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_id, kind))`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS work_blocks`.execute(db);
  await sql`ALTER TABLE verification_ranges DROP COLUMN IF EXISTS enqueues, DROP COLUMN IF EXISTS interruptions, DROP COLUMN IF EXISTS not_before,
    DROP COLUMN IF EXISTS worker, DROP COLUMN IF EXISTS last_error, DROP COLUMN IF EXISTS started_at`.execute(db);
  await sql`ALTER TABLE backfill_chunks DROP COLUMN IF EXISTS enqueues, DROP COLUMN IF EXISTS interruptions`.execute(db);
}
