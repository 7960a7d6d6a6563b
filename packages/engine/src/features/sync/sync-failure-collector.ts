import type { DualWriteReport } from '@tideway/core';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { DivergenceRecorder } from '../divergence/divergence-recorder.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { qualified } from '../backfill/sql.js';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import { sourceKeyFromTargetKey } from './sync-objects.js';
import { failuresTableName, type SyncDirection } from './sync-sql.js';

/** Failure rows read from a failures table per collection, at most. */
export const FAILURES_PER_COLLECT = 1000;
const UNDEFINED_TABLE = '42P01';

/** What one collection found. */
export interface CollectOutcome {
  /** Failure rows moved into the ledger. */
  readonly rows: number;
  /** Keys recorded (a failed statement records every key it touched). */
  readonly keys: number;
  /** Rows whose keys the trigger could not record (the key columns themselves were unreadable). */
  readonly unknownKeys: number;
}

interface FailureRow {
  id: number;
  op: string;
  sqlstate: string | null;
  error: string;
  keys: string[][] | null;
  at: Date;
}

/**
 * Moves what the sync triggers recorded in their failures tables (writes the sync could not apply,
 * ADR 009) into the divergence ledger as failed best-effort writes — `dual_write_failure` for the
 * forward sync (new missed the write), `old_write_failure` for the reverse sync (old missed it) —
 * where they are re-driven at once and on every evaluation round, and where a rollback out of
 * cutover waits for old-side ones. The same ledger as the SDK's failed writes: one concept.
 *
 * Rows are deleted from the datasource only after the ledger commit, so a crash in between records
 * a failure twice (harmless: re-drive copies the current row) and never loses one. A failure whose
 * keys could not be recorded fails the migration, since no re-drive can find what it missed.
 */
export class SyncFailureCollector {
  constructor(
    private readonly deps: {
      readonly db: Kysely<Database>;
      readonly datasources: DatasourceRegistry;
      readonly recorder: DivergenceRecorder;
      readonly migrations: MigrationService;
    },
  ) {}

  /**
   * Collects one direction (or both) of one migration.
   * @throws DependencyUnavailableError when the datasource cannot be reached.
   */
  async collect(migration: Migration, directions: readonly SyncDirection[] = ['forward', 'reverse']): Promise<CollectOutcome> {
    await loadSqlParser();
    let rows = 0;
    let keys = 0;
    let unknownKeys = 0;
    for (const direction of directions) {
      const found = await this.#read(migration, direction);
      if (found.length === 0) continue;
      const width = migration.spec.source.key.length;
      const failures: DualWriteReport['failures'][number][] = [];
      for (const row of found) {
        const error = `sync trigger, ${row.op}: ${row.error}${row.sqlstate ? ` (${row.sqlstate})` : ''}`.slice(0, 2000);
        if (!row.keys) {
          unknownKeys++;
          continue;
        }
        for (const key of row.keys) {
          const sourceKey = direction === 'forward' ? key : (sourceKeyFromTargetKey(migration.spec, key) ?? key);
          if (sourceKey.length !== width) continue;
          failures.push({ key: sourceKey, error, at: new Date(row.at).toISOString(), side: direction === 'forward' ? 'new' : 'old' });
        }
      }
      for (let i = 0; i < failures.length; i += 1000) {
        await this.deps.recorder.recordDualWrites(migration, { writes: 0, failures: failures.slice(i, i + 1000) });
      }
      await this.#forget(migration, direction, found.map((r) => r.id));
      rows += found.length;
      keys += failures.length;
      if (unknownKeys > 0 && (migration.status === 'active' || migration.status === 'paused')) {
        await this.deps.migrations
          .act(migration.id, 'fail', {
            actor: 'tideway:sync',
            reason: `the ${direction} sync failed ${unknownKeys} time(s) without being able to record which rows it missed (${found.find((r) => !r.keys)?.error ?? 'unknown error'}); roll back to backfill to copy again`,
            details: { direction, unknownKeys },
          })
          .catch(() => undefined);
      }
    }
    return { rows, keys, unknownKeys };
  }

  /**
   * Collects every migration with trigger sync from dual_write to cleanup (not aborted or completed).
   * A datasource that cannot be reached is skipped until the next round.
   * @returns failure rows collected.
   */
  async collectAll(): Promise<number> {
    const rows = await this.deps.db
      .selectFrom('migrations')
      .selectAll()
      .where('phase', 'in', ['dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup'])
      .where('status', 'not in', ['aborted', 'completed'])
      .where(sql<string>`spec->>'syncMode'`, '=', 'trigger')
      .execute();
    let n = 0;
    for (const row of rows) {
      try {
        n += (await this.collect(toMigration(row))).rows;
      } catch {
        // datasource down or a ledger write failed: the rows stay on the datasource for the next round
      }
    }
    return n;
  }

  #table(migration: Migration, direction: SyncDirection): string {
    const schema = direction === 'forward' ? migration.spec.source.schema : migration.spec.target.schema;
    return qualified({ schema, table: failuresTableName(migration.id, direction) });
  }

  async #read(migration: Migration, direction: SyncDirection): Promise<FailureRow[]> {
    return this.deps.datasources.withClient(migration.spec.source.datasource, async (client) => {
      try {
        const r = await client.query<FailureRow>(`SELECT id, op, sqlstate, error, keys, at FROM ${this.#table(migration, direction)} ORDER BY id LIMIT ${FAILURES_PER_COLLECT}`);
        return r.rows.map((x) => ({ ...x, id: Number(x.id) }));
      } catch (error) {
        if ((error as { code?: string }).code === UNDEFINED_TABLE) return [];
        throw error;
      }
    });
  }

  async #forget(migration: Migration, direction: SyncDirection, ids: number[]): Promise<void> {
    await this.deps.datasources.withClient(migration.spec.source.datasource, (client) =>
      client.query(`DELETE FROM ${this.#table(migration, direction)} WHERE id = ANY($1::bigint[])`, [ids]),
    );
  }
}
