import { InvalidSpecError, TidewayError, type PhaseHooks } from '@tideway/core';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DdlGuard } from '../ddl-guard/ddl-guard.js';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import type { MigrationContext } from '../migrations/migration-context.js';
import type { Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { syncEpoch } from '../verification/register-verification.js';
import type { RoundTripCheck, RoundTripResult } from './round-trip-check.js';
import { wayBackColumns, type WayBackColumn } from './way-back.js';

/** What the migration resource shows of the way back (`progress.wayBack`). */
export interface WayBackView {
  readonly rollbackAfterWriteCutover: boolean;
  /** Every old column: produced by the reverse mapping (given or derived), or not preserved; planned at start. */
  readonly columns: readonly WayBackColumn[];
  /** The newest round-trip check, or `null`. */
  readonly roundTrip: RoundTripResult | null;
}

/** The way back's gate judgement: a round-trip check newer than the current sync epoch that passed. */
export async function judgeRoundTrip(db: Kysely<Database>, roundTrip: RoundTripCheck, migration: Migration): Promise<{ passed: boolean; message: string; check: RoundTripResult | null }> {
  if (!migration.spec.rollbackAfterWriteCutover) {
    return { passed: true, message: 'the spec declares no way back after write cutover (rollbackAfterWriteCutover: false)', check: null };
  }
  const epoch = await syncEpoch(db, migration.id);
  const check = await roundTrip.latest(migration.id, epoch?.at);
  if (!check) return { passed: false, message: 'no round-trip check of the way back since the sync last changed: it runs on entering shadow_read and again when the migration advances', check };
  if (check.passed) return { passed: true, message: `reverse(mapping(row)) = row on all ${check.rowsChecked} rows checked`, check };
  if (check.error) return { passed: false, message: `the round-trip check could not run: ${check.error}`, check };
  const worst = Object.entries(check.columns).map(([c, n]) => `${c} (${n})`).join(', ');
  return { passed: false, message: `${check.mismatches} of ${check.rowsChecked} rows do not come back unchanged; columns: ${worst}`, check };
}

/**
 * The way back as a declared contract (issue 12 §1, shared/DESIGN.md §7), plugged into the machine:
 * - prepare (after the catalog check): every old column's fate planned and recorded;
 * - the shadow_read gate `way-back-round-trip`: a round-trip check started after the current sync
 *   epoch passed (or the spec declares no way back); entering shadow_read runs one, and advancing
 *   out of it runs one first;
 * - cutover's rollback action `way-back-declared`: with `rollbackAfterWriteCutover: false`, rollback
 *   and abort past a write cutover are refused (old is stale: going back would serve it);
 * - PATCH of `reverseMapping` or `rollbackAfterWriteCutover` after start (admin only, until cutover):
 *   bound against the live catalog again (422 with every problem), then re-planned and re-recorded
 *   for the DDL guard;
 * - `progress.wayBack`.
 */
export function registerWayBack(
  hooks: PhaseHooks<MigrationContext>,
  deps: { db: Kysely<Database>; catalog: CatalogInspector; roundTrip: RoundTripCheck; migrations: MigrationService; ddlGuard: DdlGuard },
): void {
  const plan = async (db: Kysely<Database>, migration: Migration) => {
    await loadSqlParser();
    const source = await deps.catalog.describe(migration.spec.source);
    const columns = source ? wayBackColumns(migration.spec, source) : [];
    await db
      .insertInto('way_backs')
      .values({ migration_id: migration.id, columns: JSON.stringify(columns) })
      .onConflict((oc) => oc.column('migration_id').doUpdateSet({ columns: JSON.stringify(columns), planned_at: sql`now()` }))
      .execute();
  };
  hooks.addEntryAction('prepare', { name: 'plan-way-back', run: (ctx) => plan(ctx.db, ctx.migration) });
  hooks.addGate('shadow_read', {
    name: 'way-back-round-trip',
    evaluate: async (ctx) => {
      const j = await judgeRoundTrip(ctx.db, deps.roundTrip, ctx.migration);
      return {
        name: 'way-back-round-trip',
        passed: j.passed,
        message: j.message,
        observed: {
          rollbackAfterWriteCutover: ctx.migration.spec.rollbackAfterWriteCutover,
          checkId: j.check?.id ?? null,
          rowsChecked: j.check?.rowsChecked ?? 0,
          mismatches: j.check?.mismatches ?? 0,
        },
      };
    },
  });
  deps.migrations.beforeAct(['advance'], async (m) => {
    if (m.phase === 'shadow_read' && m.spec.rollbackAfterWriteCutover) await deps.roundTrip.run(m);
  });
  // Entering shadow_read runs one too, so the gate has its numbers before anyone advances (a tool
  // that waits for every gate to hold before it advances would otherwise wait forever).
  deps.migrations.onTransition(async ({ migration }) => {
    if (migration.phase === 'shadow_read' && migration.status === 'active' && migration.spec.rollbackAfterWriteCutover) await deps.roundTrip.run(migration);
  });
  hooks.addRollbackAction('cutover', {
    name: 'way-back-declared',
    run: async (ctx) => {
      if (ctx.migration.spec.rollbackAfterWriteCutover) return;
      const ramp = await ctx.db.selectFrom('ramps').select(['write_cutover_at', 'status']).where('migration_id', '=', ctx.migration.id).executeTakeFirst();
      if (!ramp?.write_cutover_at || ramp.status !== 'write_cutover') return;
      throw new TidewayError('INVALID_TRANSITION', 'this migration declared no way back after write cutover (rollbackAfterWriteCutover: false): old has not been kept current since, so going back would serve stale data', {
        phase: ctx.migration.phase,
        status: ctx.migration.status,
        action: 'rollback',
        allowed: ['advance'],
        writeCutoverAt: ramp.write_cutover_at.toISOString(),
      });
    },
  });
  deps.migrations.onPatch(async ({ after, changed, db }) => {
    if (after.phase === 'draft' || !changed.some((c) => c === 'reverseMapping' || c.startsWith('reverseMapping.') || c === 'rollbackAfterWriteCutover')) return;
    const inspection = await deps.catalog.inspectSpec(after.spec);
    if (inspection.problems.length > 0 || !inspection.binding) throw new InvalidSpecError(inspection.problems);
    await deps.ddlGuard.record(db, after.id, inspection.binding.signature);
    await plan(db, after);
    return { wayBack: { rebound: true } };
  });
  deps.migrations.addProgressProvider(async (migration) => {
    if (migration.phase === 'draft') return {};
    const [planned, roundTrip] = await Promise.all([
      deps.db.selectFrom('way_backs').select('columns').where('migration_id', '=', migration.id).executeTakeFirst(),
      deps.roundTrip.latest(migration.id),
    ]);
    const wayBack: WayBackView = { rollbackAfterWriteCutover: migration.spec.rollbackAfterWriteCutover, columns: (planned?.columns ?? []) as WayBackColumn[], roundTrip };
    return { wayBack };
  });
}
