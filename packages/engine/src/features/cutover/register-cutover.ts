import type { PhaseHooks } from '@tideway/core';
import type { CleanupService } from '../cleanup/cleanup-service.js';
import type { MigrationContext } from '../migrations/migration-context.js';
import type { MigrationService } from '../migrations/migration-service.js';
import type { TimerService } from '../timers/timer-service.js';
import type { RampService } from './ramp-service.js';

/**
 * Plugs cutover and cleanup into the state machine:
 * - cutover entry: the ramp at its first step (or awaiting approval); rollback: the ramp rolled
 *   back, sync forward again (the transition's converge moves the flags); gate `write-cutover-done`;
 * - cleanup entry: the deadline and its reminders; rollback: they go away;
 * - done entry: the cleanup is executed (triggers dropped, old table renamed; the converge archives the flags);
 * - PATCH of `ramp.*` during the ramp (the current hold rescheduled, or refused);
 * - timers `ramp_hold`, `cleanup_reminder`, `cleanup_deadline`; pause/resume freeze the hold;
 * - `ramp` in the migration's `progress`.
 */
export function registerCutover(
  hooks: PhaseHooks<MigrationContext>,
  deps: { ramp: RampService; cleanup: CleanupService; timers: TimerService; migrations: MigrationService },
): void {
  hooks.addEntryAction('cutover', { name: 'start-ramp', run: (ctx) => deps.ramp.enter(ctx) });
  hooks.addRollbackAction('cutover', { name: 'reads-and-writes-to-old', run: (ctx) => deps.ramp.rollback(ctx) });
  hooks.addGate('cutover', {
    name: 'write-cutover-done',
    evaluate: async (ctx) => {
      const ramp = await deps.ramp.view(ctx.migration.id);
      const passed = ramp?.status === 'write_cutover';
      return {
        name: 'write-cutover-done',
        passed,
        message: passed ? 'reads at 100 % held, writes on new' : ramp ? `ramp at ${ramp.percent} % (${ramp.status})` : 'ramp not started',
        observed: { percent: ramp?.percent ?? 0, step: ramp?.step ?? -1, status: ramp?.status ?? null, reverseSync: ramp?.reverseSync ?? false },
      };
    },
  });
  hooks.addEntryAction('cleanup', { name: 'schedule-cleanup-deadline', run: (ctx) => deps.cleanup.enter(ctx) });
  hooks.addRollbackAction('cleanup', { name: 'cancel-cleanup-deadline', run: (ctx) => deps.cleanup.leave(ctx) });
  hooks.addEntryAction('done', { name: 'execute-cleanup', stage: 'after-converge', run: (ctx) => deps.cleanup.execute(ctx) });

  deps.timers.on('ramp_hold', (timer, now) => deps.ramp.onHoldEnd(timer, now));
  deps.timers.on('cleanup_reminder', (timer, now) => deps.cleanup.onReminder(timer, now));
  deps.timers.on('cleanup_deadline', (timer, now) => deps.cleanup.onDeadline(timer, now));

  deps.migrations.onPatch(deps.ramp.onPatch);
  deps.migrations.onTransition(async ({ migration, action }) => {
    if (migration.phase !== 'cutover') return;
    if (action === 'pause') await deps.ramp.onPause(migration.id);
    if (action === 'resume') await deps.ramp.onResume(migration.id);
  });
  deps.migrations.addProgressProvider(async (migration) => {
    const ramp = await deps.ramp.view(migration.id);
    return ramp ? { ramp } : {};
  });
}
