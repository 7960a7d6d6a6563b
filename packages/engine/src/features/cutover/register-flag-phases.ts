import { flagNames, type PhaseHooks } from '@tideway/core';
import type { MigrationContext } from '../migrations/migration-context.js';
import type { MigrationService } from '../migrations/migration-service.js';
import type { FlagControl } from './flag-control.js';

/**
 * The flags the application SDK reads before cutover:
 * - entering `dual_write` in application mode turns `dual-write` on for every key (the SDK starts
 *   writing new best-effort); leaving it backwards turns it off. In trigger mode the trigger syncs
 *   and the flag stays off (a second write from the application would only repeat it);
 * - entering `shadow_read` sets `shadow-read` to `spec.shadowRead.samplePercent` (sticky per key);
 *   leaving it backwards sets it to 0.
 * - creating a migration resets every flag of its name to 0 first (503 and nothing created when the
 *   flag server is down).
 * Without a flag server these do nothing (the SDK then stays on the old path).
 */
export function registerFlagPhases(hooks: PhaseHooks<MigrationContext>, flags: FlagControl | null, migrations: MigrationService): void {
  if (!flags) return;
  const all = (name: string) => Object.values(flagNames(name));
  // A new migration starts with every flag of its name off, whatever an earlier migration of the
  // same name (another orchestrator database, an aborted run) left behind.
  migrations.beforeCreate(async (spec) => {
    await flags.ensureFlags(all(spec.name));
    for (const flag of all(spec.name)) await flags.setRollout(flag, 0);
  });
  hooks.addEntryAction('dual_write', {
    name: 'dual-write-flag-on',
    run: async ({ migration }) => {
      const names = flagNames(migration.name);
      await flags.ensureFlags(all(migration.name));
      // Before cutover nothing may read or write new as authoritative, whatever a flag of the same
      // name was left at by an earlier migration.
      await flags.setRollout(names.readNew, 0);
      await flags.setRollout(names.writeNew, 0);
      await flags.setRollout(names.shadowRead, 0);
      await flags.setRollout(names.dualWrite, migration.spec.syncMode === 'application' ? 100 : 0);
    },
  });
  hooks.addRollbackAction('dual_write', {
    name: 'dual-write-flag-off',
    run: async ({ migration }) => {
      if (migration.spec.syncMode === 'application') await flags.setRollout(flagNames(migration.name).dualWrite, 0);
    },
  });
  hooks.addEntryAction('shadow_read', {
    name: 'shadow-read-flag-on',
    run: async ({ migration }) => {
      await flags.ensureFlags(all(migration.name));
      await flags.setRollout(flagNames(migration.name).shadowRead, migration.spec.shadowRead.samplePercent);
    },
  });
  hooks.addRollbackAction('shadow_read', {
    name: 'shadow-read-flag-off',
    run: async ({ migration }) => flags.setRollout(flagNames(migration.name).shadowRead, 0),
  });
}
