/**
 * The latency guard's optional signals (ADR 014), per datasource: the Prometheus query's newest
 * value, the ceiling it is held under (`throttle.latencyGuard.prometheus.max`) and why its newest
 * query failed; the mean execution time of other clients' statements from `pg_stat_statements`
 * with the backfill held back and over the last 5 s. The controller may judge either the worse signal.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE datasource_paces
      ADD COLUMN IF NOT EXISTS prometheus_value float8,
      ADD COLUMN IF NOT EXISTS prometheus_max float8,
      ADD COLUMN IF NOT EXISTS prometheus_error text,
      ADD COLUMN IF NOT EXISTS statements_baseline_ms float8,
      ADD COLUMN IF NOT EXISTS statements_observed_ms float8`.execute(db);
  await sql`ALTER TABLE datasource_paces DROP CONSTRAINT IF EXISTS datasource_paces_worse_signal_check`.execute(db);
  await sql`ALTER TABLE datasource_paces ADD CONSTRAINT datasource_paces_worse_signal_check CHECK (worse_signal IN ('read', 'commit', 'prometheus', 'statements'))`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE datasource_paces DROP CONSTRAINT IF EXISTS datasource_paces_worse_signal_check`.execute(db);
  await sql`UPDATE datasource_paces SET worse_signal = NULL WHERE worse_signal IN ('prometheus', 'statements')`.execute(db);
  await sql`ALTER TABLE datasource_paces ADD CONSTRAINT datasource_paces_worse_signal_check CHECK (worse_signal IN ('read', 'commit'))`.execute(db);
  await sql`
    ALTER TABLE datasource_paces
      DROP COLUMN IF EXISTS prometheus_value, DROP COLUMN IF EXISTS prometheus_max, DROP COLUMN IF EXISTS prometheus_error,
      DROP COLUMN IF EXISTS statements_baseline_ms, DROP COLUMN IF EXISTS statements_observed_ms`.execute(db);
}
