import type { PhaseHooks } from '@tideway/core';
import type { MigrationContext } from '../migrations/migration-context.js';
import type { MigrationService } from '../migrations/migration-service.js';
import type { BackfillReadModel } from './backfill-read-model.js';
import type { BackfillService } from './backfill-service.js';
import type { DivergenceReadModel } from '../divergence/divergence-read-model.js';

/**
 * Plugs the backfill phase into the state machine (the trigger sync of dual_write on is desired
 * state, converged by `SyncObjects`):
 * - backfill entry (and a rollback from shadow_read back into backfill): record a new run; rollback:
 *   discard it; the run first empties the target (a re-run starts clean), then plans chunks;
 * - dual_write gate `dual-write-propagated` (application sync): the phase has lasted
 *   `backfill.flagPropagationSeconds` and an SDK has reported dual writes since it began, so the
 *   applications dual-write before a chunk is copied (ADR 013);
 * - backfill gate `backfill-complete`: target purged, planning done, every chunk done, none failed,
 *   every row skipped on its data re-driven or accepted, run completed (for a lock-free run: its tombstone sweep done and the keys whose sync failed
 *   re-driven after it), and no write failure pending;
 * - `progress` of the migration resource: the backfill figures;
 * - after a committed transition into backfill/active: pump chunks at once; a resume out of
 *   `failed` first gives the failed chunks a fresh start.
 */
export function registerBackfill(
  hooks: PhaseHooks<MigrationContext>,
  deps: { backfill: BackfillService; readModel: BackfillReadModel; migrations: MigrationService; evidence: DivergenceReadModel },
): void {
  hooks.addEntryAction('backfill', { name: 'start-backfill-run', run: (ctx) => deps.backfill.startRun(ctx.db, ctx.migration) });
  hooks.addRollbackAction('backfill', { name: 'discard-backfill-run', run: (ctx) => deps.backfill.discardRun(ctx.db, ctx.migration.id) });
  // Back into backfill from shadow_read is a re-run: it starts clean, like a new entry.
  hooks.addRollbackAction('shadow_read', {
    name: 'restart-backfill-run',
    run: async (ctx) => {
      await deps.backfill.discardRun(ctx.db, ctx.migration.id);
      await deps.backfill.startRun(ctx.db, ctx.migration);
    },
  });
  hooks.addGate('dual_write', {
    name: 'dual-write-propagated',
    // Trigger sync is installed with the phase: nothing to wait for.
    appliesTo: (ctx) => ctx.migration.spec.syncMode === 'application',
    evaluate: async (ctx) => {
      const { migration } = ctx;
      const required = migration.spec.backfill.flagPropagationSeconds;
      const elapsed = Math.max(0, (Date.now() - migration.phaseEnteredAt.getTime()) / 1000);
      // Evidence that the flag reached an application: dual writes reported since the phase began
      // (its evidence window). 0 s turns the gate off (no SDK instance to wait for).
      const dualWrites = required === 0 ? 0 : (await deps.evidence.window(migration.id, null, 'current')).dualWrites;
      const passed = required === 0 || (elapsed >= required && dualWrites > 0);
      return {
        name: 'dual-write-propagated',
        passed,
        message:
          required === 0
            ? 'off (backfill.flagPropagationSeconds 0)'
            : passed
              ? `the dual-write flag has been on ${Math.floor(elapsed)} s and ${dualWrites} dual write(s) were reported (backfill.flagPropagationSeconds ${required})`
              : elapsed < required
                ? `waiting for every application instance to see the dual-write flag: on ${Math.floor(elapsed)} of ${required} s (backfill.flagPropagationSeconds)`
                : 'no dual write reported since dual_write began: are the applications writing through the SDK with this migration\'s flags? (for a table nobody writes, set backfill.flagPropagationSeconds to 0)',
        observed: { elapsedSeconds: Math.floor(elapsed), requiredSeconds: required, dualWrites },
      };
    },
  });
  hooks.addGate('backfill', {
    name: 'backfill-complete',
    evaluate: async (ctx) => {
      const p = await deps.readModel.progress(ctx.migration.id);
      const chunksFinished = !!p && p.planningDone && p.chunksPending === 0 && p.chunksRunning === 0;
      const passed = chunksFinished && p.chunksFailed === 0 && p.completedAt !== null && p.writeFailuresPending === 0 && p.skippedRows.unresolved === 0;
      return {
        name: 'backfill-complete',
        passed,
        message: !p
          ? 'backfill has not started'
          : passed
            ? `all ${p.chunksDone} chunks done, ${p.rowsCopied} rows copied`
            : p.targetPurge.waitsUntil
              ? `waiting until ${p.targetPurge.waitsUntil} before removing what an earlier run left in the target: application instances may write it until the rollback from write cutover reaches them (backfill.flagPropagationSeconds)`
              : !p.targetPurge.done
              ? `removing what an earlier run left in the target (${p.targetPurge.rowsRemoved} rows so far)`
              : p.chunksFailed > 0
                ? `${p.chunksFailed} chunk(s) failed`
                : chunksFinished && p.skippedRows.unresolved > 0
                  ? `${p.skippedRows.unresolved} row(s) skipped on their data (GET /v1/migrations/${ctx.migration.id}/skipped-rows): fix them and re-drive, or an admin accepts them with a reason`
                  : p.writeFailuresPending > 0
                    ? `${p.writeFailuresPending} failed write(s) to the target are not re-driven yet (see the divergences ledger)`
                    : chunksFinished
                      ? `all ${p.chunksDone} chunks done; sweeping rows deleted while they ran`
                      : `${p.chunksDone} of ~${p.chunksTotal} chunks done${p.skippedRows.unresolved > 0 ? `, ${p.skippedRows.unresolved} row(s) skipped on their data so far` : ''}`,
        observed: {
          rowsCopied: p?.rowsCopied ?? 0,
          chunksDone: p?.chunksDone ?? 0,
          chunksPending: p ? p.chunksPending + p.chunksRunning : 0,
          chunksFailed: p?.chunksFailed ?? 0,
          planningDone: p?.planningDone ?? false,
          targetPurged: p?.targetPurge.done ?? false,
          writeFailuresPending: p?.writeFailuresPending ?? 0,
          skippedRowsUnresolved: p?.skippedRows.unresolved ?? 0,
        },
      };
    },
  });
  deps.migrations.addProgressProvider(async (migration) => {
    const t = migration.spec.throttle;
    const p = await deps.readModel.progress(migration.id, t.enabled && t.latencyGuard.enabled && migration.phase === 'backfill' ? t.latencyGuard.latencyBudget : null);
    return p ? { ...p } : {};
  });
  deps.migrations.onTransition(async ({ migration, action, from }) => {
    if (migration.phase !== 'backfill' || migration.status !== 'active') return;
    // A small target is purged at once (a large one continues in the workers' reconcile rounds).
    await deps.backfill.purgeTarget(migration.id, 500).catch(() => undefined);
    if (action === 'resume' && from.status === 'failed') await deps.backfill.retryFailedChunks(migration.id);
    else await deps.backfill.pump(migration.id);
  });
}
