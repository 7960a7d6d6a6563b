/**
 * The DDL guard (issue 11 §5): the catalog signature of a migration's tables as its expressions were
 * bound (at start, and again at a resume that accepts a change), and the change last detected
 * against it. A change to a column the migration uses pauses the migration with the DDL named.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS ddl_guards (
    migration_id uuid PRIMARY KEY REFERENCES migrations (id),
    signature jsonb NOT NULL,
    bound_at timestamptz NOT NULL DEFAULT now(),
    detected jsonb,
    detected_at timestamptz)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS ddl_guards`.execute(db);
}
