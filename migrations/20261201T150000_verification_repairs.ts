/**
 * A repair is its own record (issue 12): `verification_repairs` holds one row per
 * `POST …/verifications/:vid/repair` (who, when, keys attempted, re-copied, fixed, still different),
 * `verification_repair_keys` the outcome of each key it re-checked, and a finding of
 * `verification_diffs` names the repair that fixed it (`repaired_by`, replacing the `repaired` flag).
 * A repair no longer changes the verification: `verifications.status` stays what the check found.
 *
 * Verifications repaired before this migration had their status flipped to `passed`: they get it
 * back (`failed`: they found differences) and one repair record (actor `tideway:legacy`, at their
 * `repaired_at`) that owns the findings they marked repaired.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS verification_repairs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    verification_id uuid NOT NULL REFERENCES verifications (id),
    actor text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    keys_attempted integer NOT NULL DEFAULT 0,
    upserted integer NOT NULL DEFAULT 0,
    deleted integer NOT NULL DEFAULT 0,
    fixed integer NOT NULL DEFAULT 0,
    still_different integer NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS verification_repairs_verification_idx ON verification_repairs (verification_id, started_at)`.execute(db);
  await sql`CREATE TABLE IF NOT EXISTS verification_repair_keys (
    repair_id uuid NOT NULL REFERENCES verification_repairs (id),
    key jsonb NOT NULL,
    kind text NOT NULL CHECK (kind IN ('missing', 'extra', 'different')),
    outcome text NOT NULL CHECK (outcome IN ('fixed', 'still_different')),
    PRIMARY KEY (repair_id, key))`.execute(db);
  await sql`ALTER TABLE verification_diffs ADD COLUMN IF NOT EXISTS repaired_by uuid REFERENCES verification_repairs (id)`.execute(db);

  const hasFlag = await sql<{ n: number }>`SELECT count(*)::int AS n FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'verification_diffs' AND column_name = 'repaired'`.execute(db);
  if ((hasFlag.rows[0]?.n ?? 0) === 0) return;
  // Repairs before this migration: one legacy record each, owning the findings they fixed.
  await sql`WITH legacy AS (
      INSERT INTO verification_repairs (verification_id, actor, status, keys_attempted, fixed, started_at, finished_at)
      SELECT v.id, 'tideway:legacy', 'finished', count(d.key)::int, count(d.key) FILTER (WHERE d.repaired)::int, v.repaired_at, v.repaired_at
        FROM verifications v JOIN verification_diffs d ON d.verification_id = v.id
       WHERE v.repaired_at IS NOT NULL
       GROUP BY v.id, v.repaired_at
      RETURNING id, verification_id)
    UPDATE verification_diffs d SET repaired_by = legacy.id FROM legacy WHERE d.verification_id = legacy.verification_id AND d.repaired`.execute(db);
  await sql`UPDATE verification_repairs r SET still_different = r.keys_attempted - r.fixed WHERE r.actor = 'tideway:legacy'`.execute(db);
  // What the check found: any finding at all means it failed.
  await sql`UPDATE verifications v SET status = 'failed' WHERE v.status = 'passed' AND EXISTS (SELECT 1 FROM verification_diffs d WHERE d.verification_id = v.id)`.execute(db);
  await sql`ALTER TABLE verification_diffs DROP COLUMN repaired`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE verification_diffs ADD COLUMN IF NOT EXISTS repaired boolean NOT NULL DEFAULT false`.execute(db);
  await sql`UPDATE verification_diffs SET repaired = (repaired_by IS NOT NULL)`.execute(db);
  await sql`UPDATE verifications v SET status = 'passed'
     WHERE v.status = 'failed' AND NOT EXISTS (SELECT 1 FROM verification_diffs d WHERE d.verification_id = v.id AND NOT d.repaired)`.execute(db);
  await sql`ALTER TABLE verification_diffs DROP COLUMN IF EXISTS repaired_by`.execute(db);
  await sql`DROP TABLE IF EXISTS verification_repair_keys`.execute(db);
  await sql`DROP TABLE IF EXISTS verification_repairs`.execute(db);
}
