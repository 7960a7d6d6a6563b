/**
 * The latency guard (ADR 014): one row per datasource with the pace every chunk on it obeys, the
 * guard's baselines and signals (read probe and commit probe), its controller state, and the lease of the worker that runs the
 * guard (one guard per datasource, whichever worker holds the lease).
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE IF NOT EXISTS datasource_paces (
      datasource text PRIMARY KEY,
      holder text,
      lease_until timestamptz,
      mode text NOT NULL DEFAULT 'baseline' CHECK (mode IN ('baseline', 'guarding')),
      mode_since timestamptz NOT NULL DEFAULT now(),
      next_baseline_at timestamptz,
      pace_rows_per_second float8,
      baseline_p50_ms float8,
      baseline_p99_ms float8,
      observed_p50_ms float8,
      observed_p99_ms float8,
      commit_baseline_p99_ms float8,
      commit_observed_p99_ms float8,
      worse_signal text CHECK (worse_signal IN ('read', 'commit')),
      probe_samples int NOT NULL DEFAULT 0,
      holding boolean NOT NULL DEFAULT false,
      controller jsonb,
      rate_tat timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  // The rows a chunk was planned for (its keyset OFFSET): what it reserves of a pace before it runs.
  await sql`ALTER TABLE backfill_chunks ADD COLUMN IF NOT EXISTS planned_rows int`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS datasource_paces`.execute(db);
  await sql`ALTER TABLE backfill_chunks DROP COLUMN IF EXISTS planned_rows`.execute(db);
}
