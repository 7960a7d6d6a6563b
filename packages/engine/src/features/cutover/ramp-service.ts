import { DependencyUnavailableError, TidewayError, evaluateAbortCriteria, flagNames, reverseMappingOf, type Breach, type GateResult, type MigrationSpec } from '@tideway/core';
import type { Database, RampRow, TimerRow } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../../clock.js';
import type { AbortEvaluator } from '../abort/abort-evaluator.js';
import type { DivergenceReadModel } from '../divergence/divergence-read-model.js';
import type { EvidenceWindows } from '../divergence/evidence-windows.js';
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
  /**
   * What the ramp waits for now: `hold` (the step's hold has not ended), `approval`, or — for a
   * step whose hold ended — what its evidence still lacks (see {@link RampWait}); `null` when
   * nothing holds it (write cutover done, rolled back, or about to move).
   */
  readonly waitsFor: RampWait | 'hold' | 'approval' | null;
  /** Why, for a person, when `waitsFor` is about evidence. */
  readonly waitsMessage: string | null;
  readonly history: { step: number; percent: number; at: string; event: string }[];
}

/**
 * What a step whose hold ended still waits for in the evidence gathered during that hold (its
 * evidence window): `samples` (fewer than `minSamples` shadow reads), `divergence` (the Wilson
 * upper bound is not under `maxDivergenceRate`), `new-errors`, `latency` (p99 ratio),
 * `dual-write-failures`, `failed-chunks`.
 */
export type RampWait = 'samples' | 'divergence' | 'new-errors' | 'latency' | 'dual-write-failures' | 'failed-chunks';

/** The judgement of the current step's evidence (its window): what the next step waits for, or `null` when it may go. */
export interface StepJudgement {
  readonly waitsFor: RampWait | null;
  readonly message: string;
  readonly observed: Readonly<Record<string, number | string | null>>;
}

const WAIT_OF: Record<Breach['criterion'], RampWait> = {
  maxDivergenceRate: 'divergence',
  maxNewErrorRate: 'new-errors',
  maxP99LatencyRatio: 'latency',
  maxDualWriteFailureRate: 'dual-write-failures',
  maxFailedChunks: 'failed-chunks',
};

/** What `POST /cutover/dry-run` answers: the next change and the gates, changing nothing. */
export interface CutoverDryRun {
  readonly current: { step: number; percent: number; status: string } | null;
  readonly next: { kind: 'ramp-step'; step: number; percent: number } | { kind: 'write-cutover' } | { kind: 'none'; reason: string };
  /** As {@link RampView.waitsFor}; the same judgement the ramp itself makes at the end of a hold. */
  readonly waitsFor: RampView['waitsFor'];
  readonly waitsMessage: string | null;
  readonly nextAt: string | null;
  readonly gates: GateResult[];
}

interface Deps {
  readonly db: Kysely<Database>;
  readonly flags: FlagControl | null;
  readonly timers: TimerService;
  readonly migrations: MigrationService;
  readonly abort: AbortEvaluator;
  /** The evidence of the current window (a step's hold). */
  readonly evidence: DivergenceReadModel;
  readonly windows: EvidenceWindows;
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
    // Every step judges only what was seen while it was in force.
    await this.deps.windows.open(db, migration.id, 'ramp.step', 'cutover', index);
  }

  /**
   * Judges the evidence of the current step (its evidence window, opened when the step was taken):
   * at least `abortCriteria.minSamples` shadow reads and every criterion within bounds, divergence
   * on the Wilson upper bound (a gate must prove the rate is low). Issue 12 §4: every ramp step
   * needs fresh evidence.
   */
  async judgeStep(migration: Migration): Promise<StepJudgement> {
    const criteria = migration.spec.abortCriteria;
    const evidence = await this.deps.evidence.evidence(migration.id, null);
    const observed = {
      samples: evidence.samples,
      minSamples: criteria.minSamples,
      mismatches: evidence.mismatches,
      rateUpper95: Number(evidence.window.rateUpper95.toFixed(6)),
      maxDivergenceRate: criteria.maxDivergenceRate,
      newErrors: evidence.newErrors,
    };
    if (evidence.samples < criteria.minSamples) {
      return { waitsFor: 'samples', message: `${evidence.samples} of ${criteria.minSamples} shadow reads at this step`, observed };
    }
    const breach = evaluateAbortCriteria(evidence, criteria, 'gate')[0];
    if (breach) return { waitsFor: WAIT_OF[breach.criterion], message: breach.message, observed };
    return { waitsFor: null, message: `${evidence.samples} shadow reads at this step, divergence upper bound ${evidence.window.rateUpper95.toFixed(5)} ≤ ${criteria.maxDivergenceRate}`, observed };
  }

  /** Records what a due step waits for (an audit event when it starts waiting, or waits for something else). */
  async #wait(migration: Migration, waitsFor: RampWait | null, judgement: StepJudgement | null, now: Date): Promise<void> {
    const { db } = this.deps;
    const ramp = await db.selectFrom('ramps').select(['waits_for']).where('migration_id', '=', migration.id).executeTakeFirst();
    if ((ramp?.waits_for ?? null) === waitsFor) return;
    await db.transaction().execute(async (trx) => {
      if (waitsFor && judgement) {
        await this.deps.migrations.recordEvent(migration.id, 'ramp.waiting', { actor: ACTOR, reason: judgement.message, details: { waitsFor, ...judgement.observed } }, trx);
      }
      await trx
        .updateTable('ramps')
        .set({ waits_for: waitsFor, waits_since: waitsFor ? now : null, updated_at: now })
        .where('migration_id', '=', migration.id)
        .execute();
    });
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
    // Not proven bad is not proven good: the next step waits for fresh evidence of this one.
    const judgement = await this.judgeStep(migration);
    await this.#wait(migration, judgement.waitsFor, judgement, now);
    if (judgement.waitsFor) return 'later';
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
    const now = this.deps.clock.now().getTime();
    const holding = r.status === 'holding' && !r.paused_at;
    const waitsFor: RampView['waitsFor'] =
      r.status === 'awaiting_approval'
        ? 'approval'
        : holding && r.next_at && r.next_at.getTime() > now
          ? 'hold'
          : holding && r.waits_for
            ? (r.waits_for as RampWait)
            : null;
    let waitsMessage: string | null = null;
    if (holding && r.waits_for && waitsFor === r.waits_for) {
      const row = await this.deps.db.selectFrom('migrations').selectAll().where('id', '=', migrationId).executeTakeFirst();
      if (row) waitsMessage = (await this.judgeStep(toMigration(row))).message;
    }
    return {
      step: r.step,
      percent: r.percent,
      status: r.status,
      nextAt: r.next_at ? r.next_at.toISOString() : null,
      writeCutoverAt: r.write_cutover_at ? r.write_cutover_at.toISOString() : null,
      reverseSync: r.reverse_sync,
      waitsFor,
      waitsMessage,
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
    // The same judgement the ramp makes when the hold ends, so the dry run never promises a step
    // the ramp would refuse.
    let waitsFor = ramp?.waitsFor ?? null;
    let waitsMessage = ramp?.waitsMessage ?? null;
    if (ramp && migration.phase === 'cutover' && (ramp.status === 'holding' || ramp.status === 'awaiting_approval') && (waitsFor === 'hold' || waitsFor === null)) {
      const judgement = await this.judgeStep(migration);
      if (judgement.waitsFor && waitsFor === null) waitsFor = judgement.waitsFor;
      waitsMessage = judgement.message;
    }
    return { current, next, waitsFor, waitsMessage, nextAt: ramp?.nextAt ?? null, gates };
  }

  /** The spec's flag names, for callers that archive them. */
  static flagsOf(spec: Pick<MigrationSpec, 'name'>): string[] {
    const n = flagNames(spec.name);
    return [n.dualWrite, n.shadowRead, n.readNew, n.writeNew];
  }
}
