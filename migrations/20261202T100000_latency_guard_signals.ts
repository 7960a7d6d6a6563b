/**
 * The latency guard's optional signals (ADR 014), per datasource: the Prometheus query's newest
 * value, the ceiling it is held under (`throttle.latencyGuard.prometheus.max`) and why its newest
 * query failed; the mean execution time of other clients' statements from `pg_stat_statements`
 * with the backfill held back and over the last 5 s; the application's own latency, as the SDK
 * reports it with its dual-write reports (one row per report, kept 10 minutes), with its p99s. The
 * controller judges whichever signal is worse.
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
      ADD COLUMN IF NOT EXISTS statements_observed_ms float8,
      ADD COLUMN IF NOT EXISTS application_baseline_p99_ms float8,
      ADD COLUMN IF NOT EXISTS application_observed_p99_ms float8`.execute(db);
  await sql`
    CREATE TABLE IF NOT EXISTS app_latency_reports (
      id bigserial PRIMARY KEY,
      migration_id uuid NOT NULL REFERENCES migrations (id) ON DELETE CASCADE,
      datasource text NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now(),
      counts int[] NOT NULL,
      sum_ms float8 NOT NULL,
      calls int NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS app_latency_reports_datasource_received ON app_latency_reports (datasource, received_at)`.execute(db);
  await sql`ALTER TABLE datasource_paces DROP CONSTRAINT IF EXISTS datasource_paces_worse_signal_check`.execute(db);
  await sql`ALTER TABLE datasource_paces ADD CONSTRAINT datasource_paces_worse_signal_check CHECK (worse_signal IN ('read', 'commit', 'prometheus', 'statements', 'application'))`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE datasource_paces DROP CONSTRAINT IF EXISTS datasource_paces_worse_signal_check`.execute(db);
  await sql`DROP TABLE IF EXISTS app_latency_reports`.execute(db);
  await sql`UPDATE datasource_paces SET worse_signal = NULL WHERE worse_signal IN ('prometheus', 'statements', 'application')`.execute(db);
  await sql`ALTER TABLE datasource_paces ADD CONSTRAINT datasource_paces_worse_signal_check CHECK (worse_signal IN ('read', 'commit'))`.execute(db);
  await sql`
    ALTER TABLE datasource_paces
      DROP COLUMN IF EXISTS prometheus_value, DROP COLUMN IF EXISTS prometheus_max, DROP COLUMN IF EXISTS prometheus_error,
      DROP COLUMN IF EXISTS statements_baseline_ms, DROP COLUMN IF EXISTS statements_observed_ms,
      DROP COLUMN IF EXISTS application_baseline_p99_ms, DROP COLUMN IF EXISTS application_observed_p99_ms`.execute(db);
}
