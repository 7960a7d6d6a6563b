import { pipeline } from 'node:stream/promises';
import { performance } from 'node:perf_hooks';
import type { MigrationSpec } from '@tideway/core';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { cancelOnAbort } from '../leases/cancel-on-abort.js';
import { LeaseLostError } from '../leases/lease-lost-error.js';
import { TIDEWAY_SQL_MARK } from '../pace/statement-latency.js';
import {
  chunkInsertSql,
  chunkUpsertSql,
  mappedColumns,
  mappedSelectSql,
  qualified,
  quoteIdent,
  rangePredicateLiteral,
  upsertClause,
  type ChunkLocking,
  type KeyShape,
  type KeyValue,
} from './sql.js';

const UNIQUE_VIOLATION = '23505';

/** What one chunk copy did. */
export interface CopyResult {
  /** Rows of the range written to the target (lock-free: or found there, written by the sync). */
  readonly rows: number;
  /** Server-side execution time of the copy statements, milliseconds (no queue or lease time). */
  readonly durationMs: number;
}

/** How one chunk copy runs. */
export interface CopyOptions {
  /** Statement timeout of each copy statement, milliseconds. */
  readonly timeoutMs: number;
  /** Source row locking of a same-datasource chunk (see {@link ChunkLocking}). @defaultValue 'share' */
  readonly locking?: ChunkLocking;
  /**
   * Asked right before COMMIT; `false` rolls the copy back with {@link LeaseLostError}. A copy whose
   * lease expired while it ran (a stalled worker) then never commits after the chunk was redone.
   */
  readonly stillLeased?: () => Promise<boolean>;
  /**
   * Aborted when the chunk's lease is given up (its heartbeat could not renew it): the running copy
   * statement is cancelled (`pg_cancel_backend`) and rolled back, failing with SQLSTATE 57014.
   */
  readonly signal?: AbortSignal;
}

async function inTransaction<T>(client: pg.PoolClient, timeoutMs: number, fn: () => Promise<T>, beforeCommit?: () => Promise<void>): Promise<T> {
  try {
    // One round trip for both (simple query protocol; the text holds no user input).
    // Marked, as every statement a chunk sends, so other clients' statements leave them out.
    await client.query(`${TIDEWAY_SQL_MARK}BEGIN; ${TIDEWAY_SQL_MARK}SET LOCAL statement_timeout = ${Math.floor(timeoutMs)}`);
    const result = await fn();
    if (beforeCommit) await beforeCommit();
    await client.query(`${TIDEWAY_SQL_MARK}COMMIT`);
    return result;
  } catch (error) {
    await client.query(`${TIDEWAY_SQL_MARK}ROLLBACK`).catch(() => undefined);
    throw error;
  }
}

/** Runs `fn` with `client`'s statements cancelled when `signal` aborts. */
async function withCancel<T>(signal: AbortSignal | undefined, pool: pg.Pool, client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  const stop = cancelOnAbort(signal, pool, client);
  try {
    return await fn();
  } finally {
    stop();
  }
}

/**
 * Copies one keyset range from source to target through the mapping, idempotently.
 * - Same datasource: `INSERT … SELECT` in a savepoint, and on a unique violation the `… ON CONFLICT`
 *   form instead (measured ~30 % cheaper when nothing conflicts). With `locking: 'share'` the source
 *   rows are read `FOR SHARE` and conflicts upserted; with `'none'` (trigger sync, ADR 005) they are
 *   read without locks (about half the cost) and conflicts left to the row the sync wrote.
 * - Different datasources: the source transaction streams `COPY (SELECT … FOR SHARE) TO STDOUT`
 *   into `COPY target FROM STDIN` in a savepoint of the target transaction; on a unique violation it
 *   streams again into a temporary staging table and upserts from it. The source transaction (and
 *   its row locks) ends after the target commits.
 *
 * @throws the database error (a `57014` code when `timeoutMs` ran out); nothing is committed then.
 */
export class ChunkCopier {
  constructor(private readonly datasources: DatasourceRegistry) {}

  async copy(spec: MigrationSpec, key: KeyShape, lower: KeyValue | null, upper: KeyValue | null, options: CopyOptions): Promise<CopyResult> {
    const { timeoutMs } = options;
    const { stillLeased } = options;
    const beforeCommit = stillLeased
      ? async () => {
          if (!(await stillLeased())) throw new LeaseLostError();
        }
      : undefined;
    if (spec.source.datasource === spec.target.datasource) {
      const locking = options.locking ?? 'share';
      const insert = chunkInsertSql(spec, key, lower, upper, locking);
      const upsert = chunkUpsertSql(spec, key, lower, upper, locking);
      return this.datasources.withClient(spec.source.datasource, (client) =>
        withCancel(options.signal, this.datasources.pool(spec.source.datasource), client, () => inTransaction(client, timeoutMs, async () => {
          const t0 = performance.now();
          // A plain insert first (no speculative insertion per row); the locked rows can only
          // conflict with rows already in the target (synced meanwhile), then the upsert decides.
          await client.query('SAVEPOINT tideway_chunk');
          try {
            // No RELEASE: COMMIT releases the savepoint (one round trip fewer per chunk).
            const r = await client.query(TIDEWAY_SQL_MARK + insert.sql, insert.params);
            return { rows: r.rowCount ?? 0, durationMs: performance.now() - t0 };
          } catch (error) {
            if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
            await client.query('ROLLBACK TO SAVEPOINT tideway_chunk');
            const r = await client.query<{ n?: number }>(TIDEWAY_SQL_MARK + upsert.sql, upsert.params);
            return { rows: locking === 'none' ? Number(r.rows[0]?.n ?? 0) : (r.rowCount ?? 0), durationMs: performance.now() - t0 };
          }
        }, beforeCommit)),
      );
    }
    return this.datasources.withClient(spec.source.datasource, (source) =>
      this.datasources.withClient(spec.target.datasource, (target) =>
        withCancel(options.signal, this.datasources.pool(spec.source.datasource), source, () => withCancel(options.signal, this.datasources.pool(spec.target.datasource), target, () => inTransaction(source, timeoutMs, () =>
          inTransaction(target, timeoutMs, async () => {
            const t0 = performance.now();
            const cols = mappedColumns(spec).map((c) => quoteIdent(c.column)).join(', ');
            const where = rangePredicateLiteral(key, lower, upper, (v) => source.escapeLiteral(v));
            const out = () => source.query(copyTo(`${TIDEWAY_SQL_MARK}COPY (${mappedSelectSql(spec, where, true)}) TO STDOUT`));
            // Straight into the target first; the staging table and upsert only when a row is there.
            await target.query('SAVEPOINT tideway_chunk');
            try {
              const into = target.query(copyFrom(`${TIDEWAY_SQL_MARK}COPY ${qualified(spec.target)} (${cols}) FROM STDIN`));
              await pipeline(out(), into);
              await target.query('RELEASE SAVEPOINT tideway_chunk');
              return { rows: into.rowCount ?? 0, durationMs: performance.now() - t0 };
            } catch (error) {
              if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
              await target.query('ROLLBACK TO SAVEPOINT tideway_chunk');
            }
            await target.query(`CREATE TEMP TABLE IF NOT EXISTS tideway_stage (LIKE ${qualified(spec.target)} INCLUDING DEFAULTS) ON COMMIT DROP`);
            const staged = target.query(copyFrom(`COPY tideway_stage (${cols}) FROM STDIN`));
            await pipeline(out(), staged);
            const r = await target.query(`${TIDEWAY_SQL_MARK}INSERT INTO ${qualified(spec.target)} (${cols}) SELECT ${cols} FROM tideway_stage ${upsertClause(spec)}`);
            return { rows: r.rowCount ?? 0, durationMs: performance.now() - t0 };
          }, beforeCommit),
        ))),
      ),
    );
  }
}
