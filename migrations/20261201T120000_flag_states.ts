/**
 * Flags as desired state (docs/adr/008-flags-as-desired-state.md):
 * - `flag_states`: per migration, the desired flag states last converged on the flag server (what
 *   Tideway set, like Kubernetes' last-applied configuration). A transition whose desired flags equal
 *   it sends no request to the flag server; the periodic pass looks at the world to find drift.
 * - `ramps.waits_for` / `waiting_since` / `waiting_reason`: a hold that ended but whose step could
 *   not be taken (`flag-server`: the flag server was unreachable), since when and why.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('flag_states')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.primaryKey().references('migrations.id'))
    .addColumn('applied', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`ALTER TABLE ramps ADD COLUMN IF NOT EXISTS waits_for text,
    ADD COLUMN IF NOT EXISTS waiting_since timestamptz,
    ADD COLUMN IF NOT EXISTS waiting_reason text`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE ramps DROP COLUMN IF EXISTS waits_for, DROP COLUMN IF EXISTS waiting_since, DROP COLUMN IF EXISTS waiting_reason`.execute(db);
  await db.schema.dropTable('flag_states').ifExists().execute();
}
