import { performance } from 'node:perf_hooks';
import type { MigrationSpec } from '@tideway/core';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { qualified, quoteIdent, rangePredicate, type KeyShape, type KeyValue } from './sql.js';

/** Target rows deleted per purge transaction. */
export const PURGE_BATCH = 5000;
/** How long one purge call may run before it returns (the next call goes on from its position), milliseconds. */
export const PURGE_BUDGET_MS = 2000;
/** Statement timeout of one purge batch, milliseconds. */
export const PURGE_STATEMENT_TIMEOUT_MS = 30_000;
/** How long a purge batch may wait for a lock someone holds on the target, milliseconds (it tries again next round). */
export const PURGE_LOCK_TIMEOUT_MS = 1000;

/** What a purge call did. */
export type PurgeOutcome =
  /** `rows` deleted this call; `done` when no row is left past `through`. */
  | { readonly kind: 'purged'; readonly rows: number; readonly through: KeyValue | null; readonly done: boolean }
  /** Another worker is purging this migration's target right now. */
  | { readonly kind: 'busy' };

/**
 * Empties the target of a backfill before its first chunk (ADR 005, "re-runs"): a backfill that
 * follows a rollback — or finds rows someone else put there — makes the target exact, so stale rows
 * of an earlier run can neither survive (lock-free chunks never overwrite, `ON CONFLICT DO NOTHING`)
 * nor linger as rows with no source row.
 *
 * Keyset batches of {@link PURGE_BATCH} in target-key order, one transaction each, one worker at a
 * time per migration (a session advisory lock). Deleting while the trigger sync writes the target
 * is safe because chunks are planned only after the purge: a target row written by the sync before
 * its key was purged is deleted and copied again by its chunk from the source, which holds the same
 * write; one written after is newer than every chunk's snapshot, as ADR 005 needs.
 */
export class TargetPurger {
  constructor(
    private readonly datasources: DatasourceRegistry,
    private readonly catalog: CatalogInspector,
  ) {}

  /**
   * Deletes target rows with keys after `after` (all when `null`) for up to `budgetMs`.
   * @throws the database error (the next call resumes from the last committed batch).
   */
  async purge(spec: MigrationSpec, migrationId: string, after: KeyValue | null, budgetMs = PURGE_BUDGET_MS): Promise<PurgeOutcome> {
    const key: KeyShape = { columns: spec.target.key, types: await this.catalog.columnTypes(spec.target, spec.target.key) };
    const target = qualified(spec.target);
    const cols = key.columns.map(quoteIdent);
    const keyRow = (alias: string) => (cols.length === 1 ? `${alias}.${cols[0] as string}` : `(${cols.map((c) => `${alias}.${c}`).join(', ')})`);
    return this.datasources.withClient(spec.target.datasource, async (client) => {
      const lockKey = `tideway:purge:${migrationId}`;
      const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [lockKey]);
      if (!got.rows[0]?.ok) return { kind: 'busy' };
      try {
        const started = performance.now();
        let through = after;
        let rows = 0;
        for (;;) {
          const range = rangePredicate(key, through, null);
          const r = await client.query<Record<string, string | number>>(
            `BEGIN; SET LOCAL statement_timeout = ${PURGE_STATEMENT_TIMEOUT_MS}; SET LOCAL lock_timeout = ${PURGE_LOCK_TIMEOUT_MS}`,
          ).then(() =>
            client.query<Record<string, string | number>>(
              `WITH batch AS (SELECT ${cols.join(', ')} FROM ${target} WHERE ${range.sql} ORDER BY ${cols.join(', ')} LIMIT ${PURGE_BATCH}),
                    gone AS (DELETE FROM ${target} t USING batch b WHERE ${keyRow('t')} = ${keyRow('b')} RETURNING 1),
                    last AS (SELECT ${cols.map((c, i) => `${c}::text AS k${i}`).join(', ')} FROM batch ORDER BY ${cols.map((c) => `${c} DESC`).join(', ')} LIMIT 1)
               SELECT (SELECT count(*)::int FROM gone) AS n, (SELECT count(*)::int FROM batch) AS seen, last.* FROM (SELECT 1) one LEFT JOIN last ON true`,
              range.params,
            ),
          ).catch(async (error: unknown) => {
            await client.query('ROLLBACK').catch(() => undefined);
            throw error;
          });
          await client.query('COMMIT');
          const row = r.rows[0] ?? {};
          rows += Number(row['n'] ?? 0);
          const seen = Number(row['seen'] ?? 0);
          if (seen > 0) through = key.columns.map((_, i) => String(row[`k${i}`]));
          if (seen < PURGE_BATCH) return { kind: 'purged', rows, through, done: true };
          if (performance.now() - started >= budgetMs) return { kind: 'purged', rows, through, done: false };
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [lockKey]).catch(() => undefined);
      }
    });
  }
}
