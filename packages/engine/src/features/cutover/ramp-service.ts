import { DependencyUnavailableError, TidewayError, flagNames, reverseMappingOf, type GateResult, type MigrationSpec } from '@tideway/core';
import type { Database, RampRow, TimerRow } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../../clock.js';
import type { AbortEvaluator } from '../abort/abort-evaluator.js';
import type { MigrationContext } from '../migrations/migration-context.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { Converger, MigrationService } from '../migrations/migration-service.js';
import type { TimerOutcome, TimerService } from '../timers/timer-service.js';
import type { WebhookNotifier } from '../webhooks/webhook-notifier.js';
import type { FlagControl } from './flag-control.js';

/** The ramp as shown on the migration resource. */
export interface RampView {
  /** Index into `spec.ramp.steps` of the step in force; −1 before the first. */
  readonly step: number;
  readonly percent: number;
  readonly status: RampRow['status'];
  readonly nextAt: string | null;
  readonly writeCutoverAt: string | null;
  readonly reverseSync: boolean;
  readonly history: { step: number; percent: number; at: string; event: string }[];
}

/** What `POST /cutover/dry-run` answers: the next change and the gates, changing nothing. */
export interface CutoverDryRun {
  readonly current: { step: number; percent: number; status: string } | null;
  readonly next: { kind: 'ramp-step'; step: number; percent: number } | { kind: 'write-cutover' } | { kind: 'none'; reason: string };
  readonly waitsFor: 'hold' | 'approval' | null;
  readonly nextAt: string | null;
  readonly gates: GateResult[];
}

interface Deps {
  readonly db: Kysely<Database>;
  readonly flags: FlagControl | null;
  readonly timers: TimerService;
  readonly migrations: MigrationService;
  readonly abort: AbortEvaluator;
  /** Converges the desired state (the reverse sync at write cutover). */
  readonly converge: Converger;
  readonly webhooks: WebhookNotifier;
  readonly clock: Clock;
}

const ACTOR = 'tideway:ramp';

/**
 * The read cutover as a rollout: `spec.ramp.steps` (1 → 5 → 25 → 50 → 100 by default) set the
 * gradual rollout of the `read-new` flag, each held `holdSeconds` by a durable timer; the abort
 * criteria are judged at the end of every hold (and every evaluation interval by the workers);
 * with `requireApproval` each step waits for an operator. After 100 % has held, the write cutover
 * turns `write-new` on and, in trigger mode, reverses the sync in one transaction, so rollback stays
 * possible until cleanup. Rolling back (or an automatic rollback) sends reads and writes back to old.
 */
export class RampService {
  constructor(private readonly deps: Deps) {}

  #flags(): FlagControl {
    if (!this.deps.flags) throw new DependencyUnavailableError('unleash', 'no flag server is configured (TIDEWAY_UNLEASH_URL)');
    return this.deps.flags;
  }

  /** Entry action of `cutover`: flags exist, reads at 0 %, then the first step (or wait for approval). */
  async enter(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const names = flagNames(migration.name);
    const flags = this.#flags();
    if (migration.spec.syncMode === 'trigger' && !reverseMappingOf(migration.spec)) {
      throw new TidewayError('INVALID_SPEC', 'write cutover in trigger mode reverses the sync: give reverseMapping (source column → expression over the target row)', { field: 'reverseMapping' });
    }
    await flags.ensureFlags([names.dualWrite, names.shadowRead, names.readNew, names.writeNew]);
    await flags.setRollout(names.readNew, 0);
    await flags.setRollout(names.writeNew, 0);
    const now = this.deps.clock.now();
    await ctx.db
      .insertInto('ramps')
      .values({ migration_id: migration.id, step: -1, percent: 0, status: 'awaiting_approval', history: JSON.stringify([{ step: -1, percent: 0, at: now.toISOString(), event: 'entered' }]) })
      .onConflict((oc) => oc.column('migration_id').doUpdateSet({ step: -1, percent: 0, status: 'awaiting_approval', next_at: null, paused_at: null, write_cutover_at: null, reverse_sync: false, history: sql`ramps.history || excluded.history` }))
      .execute();
    if (!migration.spec.ramp.requireApproval) await this.#applyStep(ctx.db, migration, 0, now);
  }

  /** Sets step `index` on the flag server and records it, with its hold timer. */
  async #applyStep(db: Kysely<Database>, migration: Migration, index: number, now: Date): Promise<void> {
    const steps = migration.spec.ramp.steps;
    const percent = steps[index];
    if (percent === undefined) throw new Error(`ramp has no step ${index}`);
    await this.#flags().setRollout(flagNames(migration.name).readNew, percent);
    const nextAt = new Date(now.getTime() + migration.spec.ramp.holdSeconds * 1000);
    await db
      .updateTable('ramps')
      .set({
        step: index,
        percent,
        status: 'holding',
        hold_started_at: now,
        next_at: nextAt,
        updated_at: now,
        history: sql`history || ${JSON.stringify([{ step: index, percent, at: now.toISOString(), event: 'step' }])}::jsonb`,
      })
      .where('migration_id', '=', migration.id)
      .execute();
    await this.deps.timers.cancel(db, migration.id, ['ramp_hold']);
    await this.deps.timers.schedule(db, migration.id, 'ramp_hold', nextAt, { step: index });
  }

  /** Timer handler: a hold ended. Judges the criteria, then the next step, an approval wait, or the write cutover. */
  async onHoldEnd(timer: TimerRow, now: Date): Promise<TimerOutcome> {
    const { db } = this.deps;
    const row = await db.selectFrom('migrations').selectAll().where('id', '=', timer.migration_id).executeTakeFirst();
    if (!row) return 'fired';
    const migration = toMigration(row);
    if (migration.phase !== 'cutover') return 'fired';
    if (migration.status !== 'active') return 'later'; // paused: the hold is frozen
    const ramp = await db.selectFrom('ramps').selectAll().where('migration_id', '=', migration.id).executeTakeFirst();
    if (!ramp || ramp.status !== 'holding' || ramp.step !== (timer.payload['step'] as number)) return 'fired';
    const evaluation = await this.deps.abort.evaluate(migration);
    // The abort action ran (rollback cancels the hold; a pause freezes it and resume schedules it
    // again). When it could not run (flag server down, a concurrent change), the hold is judged
    // again on a later poll: the breach may be gone by then, and nothing else would move the ramp on.
    if (evaluation.breaches.length > 0) return evaluation.acted ? 'fired' : 'later';
    const steps = migration.spec.ramp.steps;
    const last = ramp.step >= steps.length - 1;
    const event = {
      actor: ACTOR,
      details: last ? { percent: 100 } : { step: ramp.step + 1, percent: steps[ramp.step + 1] ?? null, awaitingApproval: migration.spec.ramp.requireApproval },
    };
    if (last) {
      await this.writeCutover(migration, now, event);
    } else if (migration.spec.ramp.requireApproval) {
      await db.transaction().execute(async (trx) => {
        await this.deps.migrations.recordEvent(migration.id, 'ramp.step', event, trx);
        await trx.updateTable('ramps').set({ status: 'awaiting_approval', next_at: null, updated_at: now }).where('migration_id', '=', migration.id).execute();
      });
      await this.deps.webhooks.notify('migration.ramp_awaiting_approval', { migrationId: migration.id, name: migration.name, nextPercent: steps[ramp.step + 1] });
    } else {
      // The step and its audit event commit together: a crash between them cannot leave a step
      // the audit log does not show (the re-fired timer would find the step taken and say nothing).
      // The event comes first: it locks the migration row before the ramp row, the order a
      // transition takes them in, so the two cannot deadlock.
      await db.transaction().execute(async (trx) => {
        await this.deps.migrations.recordEvent(migration.id, 'ramp.step', event, trx);
        await this.#applyStep(trx, migration, ramp.step + 1, now);
      });
    }
    return 'fired';
  }

  /**
   * An operator approves the next step (`requireApproval`).
   * @throws TidewayError `INVALID_TRANSITION` when the ramp is not waiting for approval.
   */
  async approve(migration: Migration, actor: string): Promise<RampView> {
    const ramp = await this.deps.db.selectFrom('ramps').selectAll().where('migration_id', '=', migration.id).executeTakeFirst();
    if (migration.phase !== 'cutover' || migration.status !== 'active' || ramp?.status !== 'awaiting_approval') {
      throw new TidewayError('INVALID_TRANSITION', 'the ramp is not waiting for an approval', { phase: migration.phase, status: migration.status, action: 'approve', allowed: [], ramp: ramp?.status ?? null });
    }
    const now = this.deps.clock.now();
    await this.deps.db.transaction().execute(async (trx) => {
      await this.deps.migrations.recordEvent(migration.id, 'ramp.approved', { actor, details: { step: ramp.step + 1, percent: migration.spec.ramp.steps[ramp.step + 1] ?? null } }, trx);
      await this.#applyStep(trx, migration, ramp.step + 1, now);
    });
    return (await this.view(migration.id)) as RampView;
  }

  /**
   * Write cutover. First, in one orchestrator transaction holding the migration's row lock, the ramp
   * records the write cutover with its audit event and, in trigger mode, the desired state gains the
   * reverse sync (new → old), converged, and then `write-new` goes on, all before the commit — so
   * old is kept current before any instance writes new (ADR 004), and a failure anywhere changes
   * nothing that the next converge does not take back.
   */
  async writeCutover(migration: Migration, now: Date, event: { actor: string; details: Record<string, unknown> } = { actor: ACTOR, details: { percent: 100 } }): Promise<void> {
    const reverse = migration.spec.syncMode === 'trigger' ? reverseMappingOf(migration.spec) : null;
    const flags = this.#flags();
    const intent = await this.deps.converge.intend(migration.id);
    await this.deps.db.transaction().execute(async (trx) => {
      await this.deps.migrations.recordEvent(migration.id, 'ramp.write_cutover', event, trx);
      await trx
        .updateTable('ramps')
        .set({
          status: 'write_cutover',
          write_cutover_at: now,
          next_at: null,
          reverse_sync: reverse !== null,
          updated_at: now,
          history: sql`history || ${JSON.stringify([{ step: migration.spec.ramp.steps.length - 1, percent: 100, at: now.toISOString(), event: 'write_cutover' }])}::jsonb`,
        })
        .where('migration_id', '=', migration.id)
        .execute();
      const locked = await trx.selectFrom('migrations').selectAll().where('id', '=', migration.id).executeTakeFirstOrThrow();
      await this.deps.converge.converge({ migration: toMigration(locked), db: trx }, intent);
      // Writes switch only once old is kept current, and the ramp says write_cutover only once they have.
      const names = flagNames(migration.name);
      await flags.setRollout(names.writeNew, 100);
      await flags.enable(names.writeNew);
    });
    await this.deps.webhooks.notify('migration.write_cutover', { migrationId: migration.id, name: migration.name, reverseSync: reverse !== null });
  }

  /**
   * Rollback action of `cutover` (rollback, abort, automatic rollback): reads to 0 %, writes back to
   * old, and — after a write cutover — the sync turned forward again in one transaction.
   */
  async rollback(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const ramp = await ctx.db.selectFrom('ramps').selectAll().where('migration_id', '=', migration.id).executeTakeFirst();
    const names = flagNames(migration.name);
    const flags = this.#flags();
    await flags.setRollout(names.readNew, 0);
    await flags.setRollout(names.writeNew, 0);
    // The sync needs no DDL here: the forward direction is still desired, and the reverse one stays
    // while old takes over again (desiredSync, ADR 004).
    const now = this.deps.clock.now();
    await this.deps.timers.cancel(ctx.db, migration.id, ['ramp_hold']);
    if (ramp) {
      await ctx.db
        .updateTable('ramps')
        .set({
          status: 'rolled_back',
          percent: 0,
          next_at: null,
          updated_at: now,
          history: sql`history || ${JSON.stringify([{ step: ramp.step, percent: 0, at: now.toISOString(), event: 'rolled_back' }])}::jsonb`,
        })
        .where('migration_id', '=', migration.id)
        .execute();
    }
  }

  /** After a pause in cutover: the hold freezes. */
  async onPause(migrationId: string): Promise<void> {
    await this.deps.db.updateTable('ramps').set({ paused_at: this.deps.clock.now() }).where('migration_id', '=', migrationId).where('status', '=', 'holding').execute();
  }

  /** After a resume in cutover: the hold goes on for what was left of it. */
  async onResume(migrationId: string): Promise<void> {
    const { db } = this.deps;
    const ramp = await db.selectFrom('ramps').selectAll().where('migration_id', '=', migrationId).executeTakeFirst();
    if (!ramp?.paused_at || ramp.status !== 'holding' || !ramp.next_at) return;
    const now = this.deps.clock.now();
    const nextAt = new Date(ramp.next_at.getTime() + (now.getTime() - ramp.paused_at.getTime()));
    await db.transaction().execute(async (trx) => {
      await trx.updateTable('ramps').set({ paused_at: null, next_at: nextAt, updated_at: now }).where('migration_id', '=', migrationId).execute();
      await this.deps.timers.cancel(trx, migrationId, ['ramp_hold']);
      await this.deps.timers.schedule(trx, migrationId, 'ramp_hold', nextAt, { step: ramp.step });
    });
  }

  /** The ramp of a migration, or `null` before cutover. */
  async view(migrationId: string): Promise<RampView | null> {
    const r = await this.deps.db.selectFrom('ramps').selectAll().where('migration_id', '=', migrationId).executeTakeFirst();
    if (!r) return null;
    return {
      step: r.step,
      percent: r.percent,
      status: r.status,
      nextAt: r.next_at ? r.next_at.toISOString() : null,
      writeCutoverAt: r.write_cutover_at ? r.write_cutover_at.toISOString() : null,
      reverseSync: r.reverse_sync,
      history: r.history,
    };
  }

  /** What the next cutover step would change and which gates pass, with their numbers; changes nothing. */
  async dryRun(migration: Migration, gates: GateResult[]): Promise<CutoverDryRun> {
    const ramp = await this.view(migration.id);
    const steps = migration.spec.ramp.steps;
    const current = ramp ? { step: ramp.step, percent: ramp.percent, status: ramp.status } : null;
    let next: CutoverDryRun['next'];
    if (migration.phase === 'shadow_read') next = { kind: 'ramp-step', step: 0, percent: steps[0] as number };
    else if (migration.phase !== 'cutover' || !ramp) next = { kind: 'none', reason: `migration is in ${migration.phase}` };
    else if (ramp.status === 'write_cutover') next = { kind: 'none', reason: 'write cutover done; advance to cleanup' };
    else if (ramp.status === 'rolled_back') next = { kind: 'none', reason: 'ramp was rolled back' };
    else if (ramp.step >= steps.length - 1) next = { kind: 'write-cutover' };
    else next = { kind: 'ramp-step', step: ramp.step + 1, percent: steps[ramp.step + 1] as number };
    const waitsFor = ramp?.status === 'awaiting_approval' ? 'approval' : ramp?.status === 'holding' ? 'hold' : null;
    return { current, next, waitsFor, nextAt: ramp?.nextAt ?? null, gates };
  }

  /** The spec's flag names, for callers that archive them. */
  static flagsOf(spec: Pick<MigrationSpec, 'name'>): string[] {
    const n = flagNames(spec.name);
    return [n.dualWrite, n.shadowRead, n.readNew, n.writeNew];
  }
}
