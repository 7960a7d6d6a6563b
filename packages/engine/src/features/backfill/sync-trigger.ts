import type { MigrationSpec } from '@tideway/core';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { reverseSpec, syncTriggerSql, type SyncDirection } from './sql.js';

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
   * Turns the sync around in one transaction (write cutover): drops the forward trigger and installs
   * the reverse one (target → source through `reverseMapping`), so there is never a moment with both
   * (they would echo each other) or neither (a write would be lost). Same datasource only.
   */
  async reverse(spec: MigrationSpec, migrationId: string, reverseMapping: Readonly<Record<string, string>>): Promise<void> {
    const forward = syncTriggerSql(spec, migrationId, 'forward');
    const back = syncTriggerSql(reverseSpec(spec, reverseMapping), migrationId, 'reverse');
    await this.#transaction(spec, [forward.dropTrigger, forward.dropFunction, back.createFunction, back.dropTrigger, back.createTrigger]);
  }

  /** The inverse of {@link reverse} (rollback after write cutover): reverse trigger out, forward trigger in, one transaction. */
  async restoreForward(spec: MigrationSpec, migrationId: string, reverseMapping: Readonly<Record<string, string>>): Promise<void> {
    const forward = syncTriggerSql(spec, migrationId, 'forward');
    const back = syncTriggerSql(reverseSpec(spec, reverseMapping), migrationId, 'reverse');
    await this.#transaction(spec, [back.dropTrigger, back.dropFunction, forward.createFunction, forward.dropTrigger, forward.createTrigger]);
  }

  /** Removes both directions (cleanup); a no-op for what is not there. */
  async uninstallAll(spec: MigrationSpec, migrationId: string, reverseMapping: Readonly<Record<string, string>> | null): Promise<void> {
    const forward = syncTriggerSql(spec, migrationId, 'forward');
    const statements = [forward.dropTrigger, forward.dropFunction];
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
