/**
 * Old-side write failures: after write cutover the SDK writes new first and old best-effort (kept
 * for rollback); a failed old write is a ledger entry of kind `old_write_failure`, re-driven from
 * new to old through the reverse mapping.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE divergences DROP CONSTRAINT IF EXISTS divergences_kind_check,
    ADD CONSTRAINT divergences_kind_check CHECK (kind IN ('mismatch','new_error','dual_write_failure','old_write_failure'))`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM divergences WHERE kind = 'old_write_failure'`.execute(db);
  await sql`ALTER TABLE divergences DROP CONSTRAINT IF EXISTS divergences_kind_check,
    ADD CONSTRAINT divergences_kind_check CHECK (kind IN ('mismatch','new_error','dual_write_failure'))`.execute(db);
}
