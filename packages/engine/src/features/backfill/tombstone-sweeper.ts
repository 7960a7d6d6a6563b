import { setTimeout as delay } from 'node:timers/promises';
import type { MigrationSpec } from '@tideway/core';
import type pg from 'pg';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { sweepBatchSql, tombstoneBatchSql, type KeyValue } from './sql.js';

/** Tombstones handled per sweep transaction. */
export const SWEEP_BATCH = 1000;
/** How long one sweep call waits for older transactions before it reports `waiting`, milliseconds. */
export const OLDER_TRANSACTIONS_WAIT_MS = 2000;
/** How long a sweep transaction may wait for a row lock held by a writer, milliseconds. */
export const SWEEP_LOCK_TIMEOUT_MS = 5000;
const POLL_MS = 25;

/** What a sweep call did. */
export type SweepOutcome =
  /** Every tombstone recorded before the sweep was handled; `rowsRemoved` stale target rows deleted. */
  | { readonly kind: 'swept'; readonly rowsRemoved: number; readonly tombstones: number }
  /** Transactions older than the fence are still open (their pids); call again later. */
  | { readonly kind: 'waiting'; readonly pids: readonly number[] }
  /** Another worker is sweeping this migration right now. */
  | { readonly kind: 'busy' };

/*
 * Transactions of the source database that started before `$1` (a clock_timestamp() of the same
 * server), and prepared transactions prepared before it. Inputs: $1 the fence (timestamptz text).
 */
const OLDER_TRANSACTIONS_SQL = `
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start < $1::timestamptz
UNION ALL
SELECT -1 FROM pg_prepared_xacts WHERE database = current_database() AND prepared < $1::timestamptz`;

/**
 * The end of a lock-free backfill (ADR 005): deletes the target rows a chunk copied from a snapshot
 * in which their source row still existed, although a writer deleted (or re-keyed) it meanwhile.
 * The sync trigger recorded every such key as a tombstone in the writer's own transaction.
 *
 * Order of a sweep, all on the source datasource:
 * 1. a session advisory lock, so one worker sweeps a migration at a time;
 * 2. twice: take a fence (`clock_timestamp()`) and wait until no transaction that began before it
 *    is open — the same wait `CREATE INDEX CONCURRENTLY` makes for older snapshots. After the first
 *    wait every chunk transaction has ended (including one of a stalled worker whose lease ran out);
 *    after the second, every writer that ran concurrently with a chunk has committed or rolled back,
 *    so its tombstone is visible;
 * 3. tombstones in keyset batches of {@link SWEEP_BATCH}, each in one transaction that locks the
 *    target rows first and deletes, in a later statement, those no source row maps to
 *    ({@link sweepBatchSql}), then forgets the batch's tombstones.
 *
 * The datasource's role must see other sessions' `xact_start` in `pg_stat_activity` (same role,
 * superuser or `pg_read_all_stats`), as for the health probe.
 */
export class TombstoneSweeper {
  constructor(
    private readonly datasources: DatasourceRegistry,
    private readonly catalog: CatalogInspector,
  ) {}

  /**
   * @param maxWaitMs - how long to wait for older transactions in this call. @defaultValue {@link OLDER_TRANSACTIONS_WAIT_MS}
   * @throws the database error (e.g. a lock timeout); nothing half-done stays behind (each batch is atomic).
   */
  async sweep(spec: MigrationSpec, migrationId: string, maxWaitMs = OLDER_TRANSACTIONS_WAIT_MS): Promise<SweepOutcome> {
    return this.datasources.withClient(spec.source.datasource, async (client) => {
      const lockKey = `tideway:sweep:${migrationId}`;
      const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [lockKey]);
      if (!got.rows[0]?.ok) return { kind: 'busy' };
      try {
        for (let pass = 0; pass < 2; pass++) {
          const open = await waitForOlderTransactions(client, maxWaitMs);
          if (open.length > 0) return { kind: 'waiting', pids: open };
        }
        return await sweepTombstones(client, spec, migrationId, await this.catalog.columnTypes(spec.target, spec.target.key));
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [lockKey]).catch(() => undefined);
      }
    });
  }
}

/** Takes a fence and waits until no transaction older than it is open; returns the pids still open at `maxWaitMs`. */
async function waitForOlderTransactions(client: pg.ClientBase, maxWaitMs: number): Promise<number[]> {
  const fence = (await client.query<{ at: string }>('SELECT clock_timestamp()::text AS at')).rows[0]?.at;
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const open = await client.query<{ pid: number }>(OLDER_TRANSACTIONS_SQL, [fence]);
    if (open.rows.length === 0) return [];
    if (Date.now() >= deadline) return open.rows.map((r) => r.pid);
    await delay(POLL_MS);
  }
}

async function sweepTombstones(client: pg.ClientBase, spec: MigrationSpec, migrationId: string, types: readonly string[]): Promise<SweepOutcome> {
  let after: KeyValue | null = null;
  let rowsRemoved = 0;
  let tombstones = 0;
  for (;;) {
    const batch = tombstoneBatchSql(spec, migrationId, types, after, SWEEP_BATCH);
    const rows = (await client.query<Record<string, string>>(batch.sql, batch.params)).rows;
    if (rows.length === 0) break;
    const keys: KeyValue[] = rows.map((r) => spec.target.key.map((_, i) => r[`k${i}`] as string));
    const sweep = sweepBatchSql(spec, migrationId, types, keys);
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = ${SWEEP_LOCK_TIMEOUT_MS}`);
      await client.query(sweep.lock, sweep.params);
      rowsRemoved += (await client.query(sweep.remove, sweep.params)).rowCount ?? 0;
      await client.query(sweep.forget, sweep.params);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    tombstones += keys.length;
    after = keys[keys.length - 1] ?? null;
    if (rows.length < SWEEP_BATCH) break;
  }
  return { kind: 'swept', rowsRemoved, tombstones };
}
