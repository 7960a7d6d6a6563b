/**
 * Evidence windows (shared/DESIGN.md §4): every transition and every ramp step opens a window;
 * observations (shadow-read results, dual writes) are counted per window, and gates and abort
 * criteria judge the current window only, so evidence gathered before an action never judges the
 * phase after it. `migrations.evidence_window` is the current window's id (0: the one opened at
 * creation, which has no row). A due ramp step that waits for its window's evidence says so in
 * `ramps.waits_for` (added with the flag-server wait, 20261201T120000).
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS evidence_windows (
    migration_id uuid NOT NULL REFERENCES migrations (id),
    id integer NOT NULL CHECK (id > 0),
    opened_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL,
    phase text NOT NULL,
    ramp_step integer,
    PRIMARY KEY (migration_id, id))`.execute(db);
  await sql`ALTER TABLE migrations ADD COLUMN IF NOT EXISTS evidence_window integer NOT NULL DEFAULT 0`.execute(db);
  await sql`ALTER TABLE observation_buckets ADD COLUMN IF NOT EXISTS window_id integer NOT NULL DEFAULT 0`.execute(db);
  await sql`ALTER TABLE observation_buckets DROP CONSTRAINT IF EXISTS observation_buckets_pkey`.execute(db);
  await sql`ALTER TABLE observation_buckets ADD CONSTRAINT observation_buckets_pkey PRIMARY KEY (migration_id, window_id, minute)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE observation_buckets DROP CONSTRAINT IF EXISTS observation_buckets_pkey`.execute(db);
  await sql`DELETE FROM observation_buckets WHERE window_id <> 0`.execute(db);
  await sql`ALTER TABLE observation_buckets DROP COLUMN IF EXISTS window_id, ADD CONSTRAINT observation_buckets_pkey PRIMARY KEY (migration_id, minute)`.execute(db);
  await sql`ALTER TABLE migrations DROP COLUMN IF EXISTS evidence_window`.execute(db);
  await sql`DROP TABLE IF EXISTS evidence_windows`.execute(db);
}
