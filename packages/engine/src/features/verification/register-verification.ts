import type { PhaseHooks } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { MigrationContext } from '../migrations/migration-context.js';

/**
 * The shadow_read gate `verification-passed`: the newest verification started after the backfill
 * completed, finished, and found 0 differences (or every difference was repaired and re-checked).
 */
export function registerVerificationGate(hooks: PhaseHooks<MigrationContext>, db: Kysely<Database>): void {
  hooks.addGate('shadow_read', {
    name: 'verification-passed',
    evaluate: async (ctx) => {
      const run = await ctx.db.selectFrom('backfill_runs').select('completed_at').where('migration_id', '=', ctx.migration.id).executeTakeFirst();
      let q = (ctx.db ?? db).selectFrom('verifications').selectAll().where('migration_id', '=', ctx.migration.id).orderBy('started_at', 'desc').limit(1);
      if (run?.completed_at) q = q.where('started_at', '>=', run.completed_at);
      const v = await q.executeTakeFirst();
      const passed = v?.status === 'passed';
      return {
        name: 'verification-passed',
        passed,
        message: !v ? 'no verification since the backfill ended: POST /v1/migrations/:id/verifications' : passed ? `verification ${v.id} found 0 differences` : `verification ${v.id} is ${v.status}`,
        observed: { verificationId: v?.id ?? null, status: v?.status ?? null, rowsCompared: v ? Number(v.rows_compared) : 0 },
      };
    },
  });
}
