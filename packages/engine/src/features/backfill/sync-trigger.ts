import type { MigrationSpec } from '@tideway/core';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { createTombstoneTableSql, dropTombstoneTableSql, reverseSpec, syncTriggerSql, tombstoneTable, type SyncDirection } from './sql.js';

/** How long installing or dropping the trigger may wait for the source table's lock, milliseconds. */
export const SYNC_LOCK_TIMEOUT_MS = 5000;

/**
 * The trigger sync of `syncMode: "trigger"`: a row trigger on the source applies every INSERT,
 * UPDATE and DELETE to the target through the mapping, in the writer's own transaction. Install
 * and removal are idempotent and each runs in one transaction with a lock timeout, so a busy table
 * makes them fail fast (and the transition with them) instead of queueing behind long writers.
 */
export class SyncTrigger {
  constructor(
    private readonly datasources: DatasourceRegistry,
    private readonly catalog: CatalogInspector,
  ) {}

  /**
   * Installs (or replaces) the forward sync function and trigger, and the tombstone table the
   * trigger records deletes in (so the backfill's chunks can run without source row locks, ADR 005).
   * @throws the database error; nothing is left half-installed.
   */
  async install(spec: MigrationSpec, migrationId: string): Promise<void> {
    const sql = syncTriggerSql(spec, migrationId, 'forward', { tombstones: true });
    const tombstones = createTombstoneTableSql(spec, migrationId, await this.catalog.columnTypes(spec.target, spec.target.key));
    await this.#transaction(spec, [tombstones, sql.createFunction, sql.dropTrigger, sql.createTrigger]);
  }

  /** Removes the sync in both directions (triggers, functions, tombstones); a no-op for what is not there. */
  async uninstall(spec: MigrationSpec, migrationId: string): Promise<void> {
    const forward = syncTriggerSql(spec, migrationId, 'forward');
    // The reverse trigger lives on the target; its names do not depend on the mapping.
    const back = syncTriggerSql(reverseSpec(spec, { [spec.source.key[0] as string]: spec.target.key[0] as string }), migrationId, 'reverse');
    await this.#transaction(spec, [forward.dropTrigger, forward.dropFunction, back.dropTrigger, back.dropFunction, dropTombstoneTableSql(spec, migrationId)]);
  }

  /** True when the tombstone table of the forward sync exists (the backfill may then run lock-free). */
  async recordsTombstones(spec: MigrationSpec, migrationId: string): Promise<boolean> {
    return this.datasources.withClient(spec.source.datasource, async (client) => {
      const r = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [tombstoneTable(spec, migrationId)]);
      return r.rows[0]?.t != null;
    });
  }

  /** True when the trigger of that direction exists (on the source for forward, on the target for reverse). */
  async isInstalled(spec: MigrationSpec, migrationId: string, direction: SyncDirection = 'forward'): Promise<boolean> {
    const on = direction === 'forward' ? spec.source : spec.target;
    const name = syncTriggerSql(spec, migrationId, direction).createTrigger.match(/^CREATE TRIGGER "([^"]+)"/)?.[1];
    return this.datasources.withClient(on.datasource, async (client) => {
      const r = await client.query(
        `SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND t.tgname = $3`,
        [on.schema, on.table, name],
      );
      return (r.rowCount ?? 0) > 0;
    });
  }

  /**
   * Write cutover: installs the reverse sync (target → source through `reverseMapping`) next to the
   * forward one, in one transaction that locks only the target table. With both guarded against
   * echo, a write on either side reaches the other while application instances switch over at their
   * own pace (flag propagation takes seconds), so no write is lost in either direction (ADR 004).
   * A no-op when the reverse trigger is already there.
   */
  async reverse(spec: MigrationSpec, migrationId: string, reverseMapping: Readonly<Record<string, string>>): Promise<void> {
    if (await this.isInstalled(spec, migrationId, 'reverse')) return;
    const back = syncTriggerSql(reverseSpec(spec, reverseMapping), migrationId, 'reverse');
    await this.#transaction(spec, [back.createFunction, back.dropTrigger, back.createTrigger]);
  }

  /**
   * Rollback after write cutover: old is authoritative again. The forward sync is still installed
   * (write cutover kept it) and the reverse one stays until cleanup, so writes from instances that
   * still write new reach old; only a missing forward trigger is re-created. No DDL otherwise, so
   * rollback takes no table lock while writers are busy on both sides.
   */
  async restoreForward(spec: MigrationSpec, migrationId: string): Promise<void> {
    if (await this.isInstalled(spec, migrationId, 'forward')) return;
    await this.install(spec, migrationId);
  }

  /** Removes both directions (cleanup); a no-op for what is not there. */
  async uninstallAll(spec: MigrationSpec, migrationId: string, reverseMapping: Readonly<Record<string, string>> | null): Promise<void> {
    const forward = syncTriggerSql(spec, migrationId, 'forward');
    const statements = [forward.dropTrigger, forward.dropFunction, dropTombstoneTableSql(spec, migrationId)];
    if (reverseMapping) {
      const back = syncTriggerSql(reverseSpec(spec, reverseMapping), migrationId, 'reverse');
      statements.push(back.dropTrigger, back.dropFunction);
    }
    await this.#transaction(spec, statements);
  }

  async #transaction(spec: MigrationSpec, statements: string[]): Promise<void> {
    await this.datasources.withClient(spec.source.datasource, async (client) => {
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL lock_timeout = ${SYNC_LOCK_TIMEOUT_MS}`);
        for (const statement of statements) await client.query(statement);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }
}

