/**
 * Desired state, converged (shared/DESIGN.md §2):
 * - `installation`: one row, the id of this orchestrator database. It marks everything Tideway creates
 *   outside its own database (datasource objects, flags), so two installations sharing a datasource
 *   or a flag server never touch each other's objects. `TIDEWAY_INSTALLATION` may override it.
 * - `migrations.converged_version` / `converged_at`: the version whose desired state was last
 *   converged on datasources and the flag server; the reconciler converges migrations whose version
 *   moved on first.
 * - `converge_intents`: written (committed on its own) before a transition opens its transaction and
 *   deleted by that transaction's commit, so a transition that crashed or failed after changing
 *   something outside the orchestrator database is found and converged back on the next pass.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS installation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id text NOT NULL CHECK (id ~ '^[a-z0-9]{8}$'),
    created_at timestamptz NOT NULL DEFAULT now())`.execute(db);
  await sql`INSERT INTO installation (id) VALUES (substr(md5(gen_random_uuid()::text), 1, 8)) ON CONFLICT DO NOTHING`.execute(db);
  await sql`ALTER TABLE migrations ADD COLUMN IF NOT EXISTS converged_version integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS converged_at timestamptz`.execute(db);
  // One row per attempt; no foreign key (a key check would wait for a transition's row lock).
  await sql`CREATE TABLE IF NOT EXISTS converge_intents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id uuid NOT NULL,
    since timestamptz NOT NULL DEFAULT now())`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS converge_intents_migration_idx ON converge_intents (migration_id)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS converge_intents`.execute(db);
  await sql`ALTER TABLE migrations DROP COLUMN IF EXISTS converged_version, DROP COLUMN IF EXISTS converged_at`.execute(db);
  await sql`DROP TABLE IF EXISTS installation`.execute(db);
}
