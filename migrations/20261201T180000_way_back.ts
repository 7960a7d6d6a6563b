/**
 * The way back as a declared contract (shared/DESIGN.md §7, issue 12 §1): the plan of every old
 * column (produced by the reverse mapping given or derived, or not preserved), made when the spec is
 * bound at start, and the round-trip checks — reverse(mapping(old row)) = old row on a sample — that
 * gate the way into cutover and the write cutover.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS way_backs (
    migration_id uuid PRIMARY KEY REFERENCES migrations (id),
    columns jsonb NOT NULL,
    planned_at timestamptz NOT NULL DEFAULT now())`.execute(db);
  await sql`CREATE TABLE IF NOT EXISTS round_trip_checks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id uuid NOT NULL REFERENCES migrations (id),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows_checked bigint NOT NULL DEFAULT 0,
    mismatches bigint NOT NULL DEFAULT 0,
    columns jsonb NOT NULL DEFAULT '{}'::jsonb,
    sample_keys jsonb NOT NULL DEFAULT '[]'::jsonb,
    error text,
    passed boolean NOT NULL DEFAULT false)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS round_trip_checks_migration_idx ON round_trip_checks (migration_id, started_at DESC)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS round_trip_checks`.execute(db);
  await sql`DROP TABLE IF EXISTS way_backs`.execute(db);
}
