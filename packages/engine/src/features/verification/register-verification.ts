import type { PhaseHooks } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { MigrationContext } from '../migrations/migration-context.js';
import { findingsOf, outcomeOf } from './verification-findings.js';

/** What started the sync state a verification must be newer than. */
export type SyncEpochReason = 'backfill-completed' | 'write-cutover' | 'rollback';

/**
 * The start of the current sync epoch: the latest of the backfill run's completion, the write
 * cutover and the last rollback. A verification started before it checked a target that has been
 * written through another path since (a new backfill, the reverse sync, a return to old), so it
 * proves nothing about the target now.
 */
export async function syncEpoch(db: Kysely<Database>, migrationId: string): Promise<{ at: Date; reason: SyncEpochReason } | null> {
  const [run, ramp, rollback] = await Promise.all([
    db.selectFrom('backfill_runs').select('completed_at').where('migration_id', '=', migrationId).executeTakeFirst(),
    db.selectFrom('ramps').select('write_cutover_at').where('migration_id', '=', migrationId).executeTakeFirst(),
    db.selectFrom('migration_events').select('at').where('migration_id', '=', migrationId).where('action', '=', 'rollback').orderBy('seq', 'desc').limit(1).executeTakeFirst(),
  ]);
  const candidates: { at: Date; reason: SyncEpochReason }[] = [];
  if (run?.completed_at) candidates.push({ at: run.completed_at, reason: 'backfill-completed' });
  if (ramp?.write_cutover_at) candidates.push({ at: ramp.write_cutover_at, reason: 'write-cutover' });
  if (rollback) candidates.push({ at: rollback.at, reason: 'rollback' });
  return candidates.reduce<{ at: Date; reason: SyncEpochReason } | null>((a, b) => (!a || b.at > a.at ? b : a), null);
}

/**
 * The shadow_read gate `verification-passed`: the newest verification started after the start of
 * the current sync epoch ({@link syncEpoch}: the backfill's completion, a write cutover or a
 * rollback, whichever is latest) has the outcome `passed` (it found 0 differences) or `repaired`
 * (every difference it found was re-copied and re-checked by a repair). The gate names the
 * verification it used, the epoch, and for `repaired` the repair it relies on (`observed.repairId`:
 * the one that fixed the last open finding).
 */
export function registerVerificationGate(hooks: PhaseHooks<MigrationContext>, db: Kysely<Database>): void {
  hooks.addGate('shadow_read', {
    name: 'verification-passed',
    evaluate: async (ctx) => {
      const exec = ctx.db ?? db;
      const epoch = await syncEpoch(exec, ctx.migration.id);
      let q = exec.selectFrom('verifications').selectAll().where('migration_id', '=', ctx.migration.id).orderBy('started_at', 'desc').limit(1);
      if (epoch) q = q.where('started_at', '>=', epoch.at);
      const v = await q.executeTakeFirst();
      const found = v ? (await findingsOf(exec, [v.id])).get(v.id) : undefined;
      const outcome = v && found ? outcomeOf(v.status, found) : null;
      const findings = found ? found.missingInTarget + found.extraInTarget + found.different : 0;
      const repairId = outcome === 'repaired' ? (found?.lastRepairId ?? null) : null;
      const passed = outcome === 'passed' || outcome === 'repaired';
      const since = epoch ? ` since the ${epoch.reason.replace('-', ' ')} at ${epoch.at.toISOString()}` : '';
      const message = !v
        ? `no verification${since}: POST /v1/migrations/:id/verifications`
        : outcome === 'passed'
          ? `verification ${v.id}${since} found 0 differences`
          : outcome === 'repaired'
            ? `verification ${v.id}${since} found ${findings} differences; repair ${repairId ?? '?'} re-copied and re-checked every one`
            : outcome === 'failed'
              ? `verification ${v.id}${since} found ${findings} differences, ${found?.unrepaired ?? findings} not repaired: POST /v1/migrations/:id/verifications/${v.id}/repair`
              : `verification ${v.id}${since} is ${v.status}`;
      return {
        name: 'verification-passed',
        passed,
        message,
        observed: {
          verificationId: v?.id ?? null,
          status: v?.status ?? null,
          outcome,
          findings,
          unrepaired: found?.unrepaired ?? 0,
          repairId,
          rowsCompared: v ? Number(v.rows_compared) : 0,
          syncEpochAt: epoch ? epoch.at.toISOString() : null,
          syncEpochReason: epoch?.reason ?? null,
        },
      };
    },
  });
}
