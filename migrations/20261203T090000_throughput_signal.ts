/**
 * Other clients' throughput is judged by the latency guard (ADR 014, "Throughput as the
 * backstop"): `throughput` becomes a value of the signal the controller judged.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE datasource_paces DROP CONSTRAINT IF EXISTS datasource_paces_worse_signal_check`.execute(db);
  await sql`ALTER TABLE datasource_paces ADD CONSTRAINT datasource_paces_worse_signal_check CHECK (worse_signal IN ('read', 'commit', 'prometheus', 'statements', 'throughput', 'application'))`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE datasource_paces DROP CONSTRAINT IF EXISTS datasource_paces_worse_signal_check`.execute(db);
  await sql`UPDATE datasource_paces SET worse_signal = NULL WHERE worse_signal = 'throughput'`.execute(db);
  await sql`ALTER TABLE datasource_paces ADD CONSTRAINT datasource_paces_worse_signal_check CHECK (worse_signal IN ('read', 'commit', 'prometheus', 'statements', 'application'))`.execute(db);
}
