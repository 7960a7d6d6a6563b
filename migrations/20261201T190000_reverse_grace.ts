/**
 * The way back keeps the reverse sync while instances may still write new (ADR 004, amended): a
 * rollback or abort that turns `write-new` off records until when the reverse sync stays —
 * `backfill.flagPropagationSeconds` later, the time a flag change takes to reach every instance.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE ramps ADD COLUMN IF NOT EXISTS reverse_until timestamptz`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE ramps DROP COLUMN IF EXISTS reverse_until`.execute(db);
}
