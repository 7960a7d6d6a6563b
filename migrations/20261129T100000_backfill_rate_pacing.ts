/**
 * The rows/s cap paces chunks instead of sampling a rate after the fact: `rate_tat` is the
 * theoretical arrival time of the Generic Cell Rate Algorithm (ITU-T I.371), the earliest moment
 * the next chunk of the run may start. Each chunk that starts reserves `rows / maxRowsPerSecond`
 * seconds from then on.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs ADD COLUMN IF NOT EXISTS rate_tat timestamptz`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE backfill_runs DROP COLUMN IF EXISTS rate_tat`.execute(db);
}
