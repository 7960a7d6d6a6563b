import type { MigrationSpec } from '@tideway/core';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { syncTriggerSql } from './sql.js';

/** How long installing or dropping the trigger may wait for the source table's lock, milliseconds. */
export const SYNC_LOCK_TIMEOUT_MS = 5000;

/**
 * The trigger sync of `syncMode: "trigger"`: a row trigger on the source applies every INSERT,
 * UPDATE and DELETE to the target through the mapping, in the writer's own transaction. Install
 * and removal are idempotent and each runs in one transaction with a lock timeout, so a busy table
 * makes them fail fast (and the transition with them) instead of queueing behind long writers.
 */
export class SyncTrigger {
  constructor(private readonly datasources: DatasourceRegistry) {}

  /** Installs (or replaces) the sync function and trigger. @throws the database error; nothing is left half-installed. */
  async install(spec: MigrationSpec, migrationId: string): Promise<void> {
    const sql = syncTriggerSql(spec, migrationId);
    await this.#transaction(spec, [sql.createFunction, sql.dropTrigger, sql.createTrigger]);
  }

  /** Removes the trigger and its function; a no-op when they are not there. */
  async uninstall(spec: MigrationSpec, migrationId: string): Promise<void> {
    const sql = syncTriggerSql(spec, migrationId);
    await this.#transaction(spec, [sql.dropTrigger, sql.dropFunction]);
  }

  /** True when the trigger exists on the source table. */
  async isInstalled(spec: MigrationSpec, migrationId: string): Promise<boolean> {
    const name = syncTriggerSql(spec, migrationId).createTrigger.match(/^CREATE TRIGGER "([^"]+)"/)?.[1];
    return this.datasources.withClient(spec.source.datasource, async (client) => {
      const r = await client.query(
        `SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND t.tgname = $3`,
        [spec.source.schema, spec.source.table, name],
      );
      return (r.rowCount ?? 0) > 0;
    });
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
