import type { PhaseHooks } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { MigrationContext } from '../migrations/migration-context.js';

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
 * rollback, whichever is latest) finished and found 0 differences, or every difference was repaired
 * and re-checked. The gate names the verification it used and the epoch.
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
      const passed = v?.status === 'passed';
      const since = epoch ? ` since the ${epoch.reason.replace('-', ' ')} at ${epoch.at.toISOString()}` : '';
      return {
        name: 'verification-passed',
        passed,
        message: !v
          ? `no verification${since}: POST /v1/migrations/:id/verifications`
          : passed
            ? `verification ${v.id}${since} found 0 differences`
            : `verification ${v.id}${since} is ${v.status}`,
        observed: {
          verificationId: v?.id ?? null,
          status: v?.status ?? null,
          rowsCompared: v ? Number(v.rows_compared) : 0,
          syncEpochAt: epoch ? epoch.at.toISOString() : null,
          syncEpochReason: epoch?.reason ?? null,
        },
      };
    },
  });
}
