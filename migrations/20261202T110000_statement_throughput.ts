/**
 * Other clients' statement throughput beside the latency guard's pace (ADR 014), per datasource:
 * their statements per second from `pg_stat_statements` with the backfill held back, and over the
 * last 5 s. Shown, not judged: a rate that falls is as often traffic that went away as traffic the
 * copy slowed, so the controller keeps judging latencies.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE datasource_paces
      ADD COLUMN IF NOT EXISTS throughput_baseline_per_second float8,
      ADD COLUMN IF NOT EXISTS throughput_observed_per_second float8`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE datasource_paces DROP COLUMN IF EXISTS throughput_baseline_per_second, DROP COLUMN IF EXISTS throughput_observed_per_second`.execute(db);
}
