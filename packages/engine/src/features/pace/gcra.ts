import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';

/**
 * Where a GCRA schedule lives: a `rate_tat` column (the theoretical arrival time, null = now) on
 * one row — a backfill run's (the rows/s cap) or a datasource's (the latency guard's pace).
 */
export type GcraRow = { readonly table: 'backfill_runs'; readonly key: 'migration_id'; readonly value: string } | { readonly table: 'datasource_paces'; readonly key: 'datasource'; readonly value: string };

/**
 * Reserves `seconds` of a pace with the Generic Cell Rate Algorithm (ITU-T I.371; see
 * `rateCapSeconds` in @tideway/core): when the row's theoretical arrival time has passed, moves it to
 * now + `seconds` and grants; otherwise grants nothing. One statement under the row's lock, so
 * concurrent workers cannot both take the same slot.
 *
 * @returns `granted`; `waitMs`, milliseconds until the next slot when not granted; `pacing`,
 *   whether the previous slot ended less than a second ago (the pace, not the work, sets the rate).
 */
export async function reserveSlot(db: Kysely<Database>, row: GcraRow, seconds: number): Promise<{ granted: boolean; waitMs: number; pacing: boolean }> {
  const table = sql.table(row.table);
  const key = sql.ref(row.key);
  const r = await sql<{ granted: boolean; wait_ms: number; pacing: boolean }>`
    WITH cur AS (SELECT rate_tat FROM ${table} WHERE ${key} = ${row.value} FOR UPDATE),
    upd AS (
      UPDATE ${table} SET rate_tat = now() + make_interval(secs => ${seconds}::float8)
      WHERE ${key} = ${row.value} AND EXISTS (SELECT 1 FROM cur WHERE cur.rate_tat IS NULL OR cur.rate_tat <= now())
      RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM upd) AS granted,
           coalesce(greatest(0, extract(epoch FROM (SELECT rate_tat FROM cur) - now()) * 1000), 0)::float8 AS wait_ms,
           coalesce((SELECT rate_tat FROM cur) > now() - interval '1 second', false) AS pacing`.execute(db);
  const out = r.rows[0];
  return { granted: out?.granted ?? false, waitMs: out?.wait_ms ?? 0, pacing: out?.pacing ?? false };
}

/** Corrects a reservation by `seconds` (negative when the work came out smaller than reserved for). */
export async function shiftSlot(db: Kysely<Database>, row: GcraRow, seconds: number): Promise<void> {
  if (seconds === 0) return;
  await sql`UPDATE ${sql.table(row.table)} SET rate_tat = rate_tat + make_interval(secs => ${seconds}::float8) WHERE ${sql.ref(row.key)} = ${row.value} AND rate_tat IS NOT NULL`.execute(db);
}
