import { DependencyUnavailableError, TidewayError, evaluateAbortCriteria, type Breach, type FlagControl, type GateResult } from '@tideway/core';
import { reverseMappingOf } from '../way-back/way-back.js';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import type { Database, RampRow, TimerRow } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../../clock.js';
import { noFaults, type Faults } from '../../faults.js';
import type { AbortEvaluator } from '../abort/abort-evaluator.js';
import type { DivergenceReadModel } from '../divergence/divergence-read-model.js';
import type { EvidenceWindows } from '../divergence/evidence-windows.js';
import type { RoundTripCheck } from '../way-back/round-trip-check.js';
import type { MigrationContext } from '../migrations/migration-context.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { Converger, MigrationService, PatchStep } from '../migrations/migration-service.js';
import type { TimerOutcome, TimerService } from '../timers/timer-service.js';
import type { WebhookNotifier } from '../webhooks/webhook-notifier.js';

/**
 * What a step whose hold ended still waits for in the evidence gathered during that hold (its
 * evidence window): `samples` (fewer than `minSamples` shadow reads), `divergence` (the Wilson
 * upper bound is not under `maxDivergenceRate`), `new-errors`, `latency` (p99 ratio),
 * `dual-write-failures`, `failed-chunks`. Issue 12 §4: every ramp step needs fresh evidence.
 */
export type RampWait = 'samples' | 'divergence' | 'new-errors' | 'latency' | 'dual-write-failures' | 'failed-chunks';

/**
 * What the ramp waits for before its next change: the end of the hold, an operator's approval, the
 * flag server (`flag-server`: the hold ended but the step could not be applied because the flag
 * server is unreachable; it is taken once the server answers), the round-trip check of the way back
 * (`round-trip`: before the write cutover, reverse(mapping(row)) must give the row back), or the
 * evidence of the step ({@link RampWait}).
 */
export type RampWaitsFor = 'hold' | 'approval' | 'flag-server' | 'round-trip' | RampWait;

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
const EVIDENCE_WAITS: readonly string[] = ['samples', 'divergence', 'new-errors', 'latency', 'dual-write-failures', 'failed-chunks', 'round-trip'];
/** A round-trip check younger than this is reused before the write cutover instead of run again, milliseconds. */
export const ROUND_TRIP_REUSE_MS = 60_000;

/** The ramp as shown on the migration resource. */
export interface RampView {
  /** Index into `spec.ramp.steps` of the step in force; −1 before the first. */
  readonly step: number;
  readonly percent: number;
  readonly status: RampRow['status'];
  /** What the next change waits for (`null` after write cutover or a rollback). */
  readonly waitsFor: RampWaitsFor | null;
  /** Since when it waits for the flag server or for evidence, with why; `null` when it waits for neither. */
  readonly waiting: { readonly since: string; readonly reason: string } | null;
  readonly nextAt: string | null;
  readonly writeCutoverAt: string | null;
  readonly reverseSync: boolean;
  readonly history: { step: number; percent: number; at: string; event: string }[];
}

/** What `POST /cutover/dry-run` answers: the next change and the gates, changing nothing. */
export interface CutoverDryRun {
  readonly current: { step: number; percent: number; status: string } | null;
  readonly next: { kind: 'ramp-step'; step: number; percent: number } | { kind: 'write-cutover' } | { kind: 'none'; reason: string };
  /** The same judgement the ramp makes when the hold ends, so the dry run never promises a step the ramp would refuse. */
  readonly waitsFor: RampWaitsFor | null;
  readonly waiting: { readonly since: string | null; readonly reason: string } | null;
  readonly nextAt: string | null;
  readonly gates: GateResult[];
}

/** Told when a ramp starts or stops waiting for the flag server (the worker logs it). */
export interface RampWaitNotice {
  readonly migrationId: string;
  readonly name: string;
  /** `flag-server` when it starts waiting, `null` when the wait cleared. */
  readonly waitsFor: 'flag-server' | null;
  /** When the wait started. */
  readonly since: Date;
  /** The flag server's error (start), or how long the wait lasted (clear). */
  readonly reason: string;
}

interface Deps {
  readonly db: Kysely<Database>;
  /** Only checked for presence: a cutover needs a flag server; flags change through {@link Deps.converge}. */
  readonly flags: FlagControl | null;
  /** Converges the desired state (datasource objects, then flags) of a migration inside the caller's transaction. */
  readonly converge: Converger;
  /** Crash points for fault tests. @defaultValue none */
  readonly faults?: Faults;
  readonly timers: TimerService;
  readonly migrations: MigrationService;
  readonly abort: AbortEvaluator;
  /** The evidence of the current window (a step's hold). */
  readonly evidence: DivergenceReadModel;
  readonly windows: EvidenceWindows;
  /** The round-trip check of the way back, run (or reused when fresh) before the write cutover. */
  readonly roundTrip?: RoundTripCheck;
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
 *
 * The ramp changes only its `ramps` row; the flags follow it through the desired-state converge
 * (ADR 008), in the same orchestrator transaction, which holds the migration's row lock: a step
 * whose flag change fails (flag server down) changes nothing and is tried again by the timer, with
 * `waitsFor: 'flag-server'` shown (and audited once when it starts and once when it clears).
 */
export class RampService {
  readonly #waitListeners: ((notice: RampWaitNotice) => void)[] = [];

  constructor(private readonly deps: Deps) {}

  /** Registers a listener told when a ramp starts or stops waiting for the flag server; its errors are swallowed. */
  onWaitChange(listener: (notice: RampWaitNotice) => void): void {
    this.#waitListeners.push(listener);
  }

  #crashPoint(name: string): void {
    (this.deps.faults ?? noFaults).crashPoint(name);
  }

  /** The migration row, locked, inside `trx` (already locked by `recordEvent` in the same transaction). */
  async #locked(trx: Kysely<Database>, id: string): Promise<Migration> {
    return toMigration(await trx.selectFrom('migrations').selectAll().where('id', '=', id).forUpdate().executeTakeFirstOrThrow());
  }

  /** @throws DependencyUnavailableError when no flag server is configured: a cutover cannot move without one. */
  #requireFlagServer(): void {
    if (!this.deps.flags) throw new DependencyUnavailableError('unleash', 'no flag server is configured (TIDEWAY_UNLEASH_URL)');
  }

  /**
   * Entry action of `cutover`: the ramp row at 0 %, then the first step (or wait for approval). The
   * transition's converge then sets the flags to what the row says.
   */
  async enter(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    this.#requireFlagServer();
    await loadSqlParser();
    if (migration.spec.syncMode === 'trigger' && migration.spec.rollbackAfterWriteCutover && !reverseMappingOf(migration.spec)) {
      throw new TidewayError('INVALID_SPEC', 'write cutover in trigger mode reverses the sync: give reverseMapping (source column → expression over the target row)', { field: 'reverseMapping' });
    }
    const now = this.deps.clock.now();
    await ctx.db
      .insertInto('ramps')
      .values({ migration_id: migration.id, step: -1, percent: 0, status: 'awaiting_approval', history: JSON.stringify([{ step: -1, percent: 0, at: now.toISOString(), event: 'entered' }]) })
      .onConflict((oc) =>
        oc.column('migration_id').doUpdateSet({ step: -1, percent: 0, status: 'awaiting_approval', next_at: null, paused_at: null, write_cutover_at: null, reverse_sync: false, waits_for: null, waiting_since: null, waiting_reason: null, history: sql`ramps.history || excluded.history` }),
      )
      .execute();
    if (!migration.spec.ramp.requireApproval) await this.#applyStep(ctx.db, migration, 0, now);
  }

  /**
   * Records step `index` on the ramp row, with its hold timer (and ends a wait for the flag server).
   * The flags follow through the converge: the transition's, or {@link #takeStep}'s.
   */
  async #applyStep(db: Kysely<Database>, migration: Migration, index: number, now: Date): Promise<void> {
    const steps = migration.spec.ramp.steps;
    const percent = steps[index];
    if (percent === undefined) throw new Error(`ramp has no step ${index}`);
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
        waits_for: null,
        waiting_since: null,
        waiting_reason: null,
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
   * on the Wilson upper bound (a gate must prove the rate is low). Issue 12 §4.
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

  /**
   * A due step's evidence is not enough: marks the ramp as waiting for it (one audit event
   * `ramp.waiting` when the wait starts or turns to another reason; later polls only update the reason).
   */
  async #waitForEvidence(migrationId: string, judgement: { waitsFor: RampWait | 'round-trip'; message: string; observed: StepJudgement['observed'] }, now: Date): Promise<void> {
    await this.deps.db.transaction().execute(async (trx) => {
      await this.#locked(trx, migrationId);
      const ramp = await trx.selectFrom('ramps').select(['waits_for', 'waiting_since']).where('migration_id', '=', migrationId).executeTakeFirst();
      if (ramp?.waits_for === judgement.waitsFor) {
        await trx.updateTable('ramps').set({ waiting_reason: judgement.message }).where('migration_id', '=', migrationId).execute();
        return;
      }
      await trx
        .updateTable('ramps')
        .set({ waits_for: judgement.waitsFor, waiting_since: ramp?.waiting_since && ramp.waits_for && EVIDENCE_WAITS.includes(ramp.waits_for) ? ramp.waiting_since : now, waiting_reason: judgement.message })
        .where('migration_id', '=', migrationId)
        .execute();
      await this.deps.migrations.recordEvent(migrationId, 'ramp.waiting', { actor: ACTOR, reason: judgement.message, details: { waitsFor: judgement.waitsFor, ...judgement.observed } }, trx);
    });
  }

  /**
   * A change of the ramp outside a transition (a step after a hold, an approval, the write cutover):
   * in one orchestrator transaction, the audit event (which locks the migration row first, the order
   * a transition takes its locks in), the ramp row via `apply`, then the converge of the flags. A
   * crash or a failure anywhere before the commit changes nothing in the orchestrator database, and
   * the periodic pass brings any flag already changed back to the row.
   * @throws DependencyUnavailableError when the flag server cannot be reached (nothing changed).
   */
  async #takeStep(
    migrationId: string,
    event: { action: string; actor: string; details: Record<string, unknown> },
    apply: (trx: Kysely<Database>, migration: Migration) => Promise<void>,
    waited: { since: Date; waitsFor: string } | null,
    now: Date,
  ): Promise<void> {
    const intent = await this.deps.converge.intend(migrationId);
    const name = await this.deps.db.transaction().execute(async (trx) => {
      await this.deps.migrations.recordEvent(migrationId, event.action, { actor: event.actor, details: event.details }, trx);
      const migration = await this.#locked(trx, migrationId);
      await apply(trx, migration);
      this.#crashPoint('ramp:step:after-row-update');
      await this.deps.converge.converge({ migration, db: trx }, intent);
      this.#crashPoint('ramp:step:after-converge');
      if (waited) {
        const seconds = Math.round((now.getTime() - waited.since.getTime()) / 1000);
        await this.deps.migrations.recordEvent(migrationId, 'ramp.wait_cleared', { actor: ACTOR, details: { waitsFor: waited.waitsFor, since: waited.since.toISOString(), waitedSeconds: seconds } }, trx);
      }
      return migration.name;
    });
    if (waited?.waitsFor === 'flag-server') this.#tell({ migrationId, name, waitsFor: null, since: waited.since, reason: `the flag server answered again after ${Math.round((now.getTime() - waited.since.getTime()) / 1000)} s` });
  }

  /**
   * The hold ended but its step could not reach the flag server: marks the ramp as waiting for it
   * (one audit event `ramp.waiting` when the wait starts; later attempts only update the reason).
   */
  async #waitForFlagServer(migrationId: string, error: DependencyUnavailableError, now: Date): Promise<void> {
    const started = await this.deps.db.transaction().execute(async (trx) => {
      const migration = await this.#locked(trx, migrationId);
      const row = await trx
        .updateTable('ramps')
        .set({ waits_for: 'flag-server', waiting_since: now, waiting_reason: error.message })
        .where('migration_id', '=', migrationId)
        .where('waits_for', 'is', null)
        .returning('waiting_since')
        .executeTakeFirst();
      if (!row) {
        await trx.updateTable('ramps').set({ waiting_reason: error.message }).where('migration_id', '=', migrationId).execute();
        return null;
      }
      await this.deps.migrations.recordEvent(migrationId, 'ramp.waiting', { actor: ACTOR, reason: error.message, details: { waitsFor: 'flag-server', dependency: error.details['dependency'] ?? 'unleash' } }, trx);
      return migration;
    });
    if (started) this.#tell({ migrationId, name: started.name, waitsFor: 'flag-server', since: now, reason: error.message });
  }

  #tell(notice: RampWaitNotice): void {
    for (const listener of this.#waitListeners) {
      try {
        listener(notice);
      } catch {
        // A listener's failure must not change what the ramp did.
      }
    }
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
    if (judgement.waitsFor) {
      await this.#waitForEvidence(migration.id, { ...judgement, waitsFor: judgement.waitsFor }, now);
      return 'later';
    }
    const steps = migration.spec.ramp.steps;
    const last = ramp.step >= steps.length - 1;
    if (last && this.deps.roundTrip && migration.spec.rollbackAfterWriteCutover) {
      // The way back must give old rows back unchanged before writes switch to new.
      const fresh = await this.deps.roundTrip.latest(migration.id, new Date(now.getTime() - ROUND_TRIP_REUSE_MS));
      const check = fresh ?? (await this.deps.roundTrip.run(migration));
      if (check && !check.passed) {
        const message = check.error ? `the round-trip check could not run: ${check.error}` : `${check.mismatches} of ${check.rowsChecked} rows do not come back unchanged: ${Object.keys(check.columns).join(', ')}`;
        await this.#waitForEvidence(migration.id, { waitsFor: 'round-trip', message, observed: { checkId: check.id, rowsChecked: check.rowsChecked, mismatches: check.mismatches } }, now);
        return 'later';
      }
    }
    const event = {
      actor: ACTOR,
      details: last ? { percent: 100 } : { step: ramp.step + 1, percent: steps[ramp.step + 1] ?? null, awaitingApproval: migration.spec.ramp.requireApproval },
    };
    const waited = ramp.waits_for && ramp.waiting_since ? { since: ramp.waiting_since, waitsFor: ramp.waits_for } : null;
    if (last) {
      try {
        await this.#takeStep(migration.id, { action: 'ramp.write_cutover', ...event }, (trx, locked) => this.writeCutover(trx, locked, now), waited, now);
      } catch (error) {
        if (!isFlagServerDown(error)) throw error;
        await this.#waitForFlagServer(migration.id, error, now);
        return 'later';
      }
      await this.deps.webhooks.notify('migration.write_cutover', { migrationId: migration.id, name: migration.name, reverseSync: migration.spec.syncMode === 'trigger' && reverseMappingOf(migration.spec) !== null });
    } else if (migration.spec.ramp.requireApproval) {
      await db.transaction().execute(async (trx) => {
        await this.deps.migrations.recordEvent(migration.id, 'ramp.step', event, trx);
        await trx.updateTable('ramps').set({ status: 'awaiting_approval', next_at: null, updated_at: now, waits_for: null, waiting_since: null, waiting_reason: null }).where('migration_id', '=', migration.id).execute();
      });
      await this.deps.webhooks.notify('migration.ramp_awaiting_approval', { migrationId: migration.id, name: migration.name, nextPercent: steps[ramp.step + 1] });
    } else {
      // The step, its audit event and its flags commit together: a crash between them cannot leave
      // a step the audit log does not show, nor a flag the row does not (see #takeStep).
      try {
        await this.#takeStep(migration.id, { action: 'ramp.step', ...event }, (trx, locked) => this.#applyStep(trx, locked, ramp.step + 1, now), waited, now);
      } catch (error) {
        if (!isFlagServerDown(error)) throw error;
        await this.#waitForFlagServer(migration.id, error, now);
        return 'later';
      }
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
    const details = { step: ramp.step + 1, percent: migration.spec.ramp.steps[ramp.step + 1] ?? null };
    await this.#takeStep(migration.id, { action: 'ramp.approved', actor, details }, (trx, locked) => this.#applyStep(trx, locked, ramp.step + 1, now), null, now);
    return (await this.view(migration.id)) as RampView;
  }

  /**
   * Write cutover, on the ramp row inside `db` (a transaction holding the migration's row lock). The
   * converge that follows (in {@link #takeStep}) installs, in trigger mode, the reverse sync (new →
   * old) — the datasource kind converges before the flags — and then turns `write-new` on, so old is
   * kept current before any instance writes new (ADR 004).
   */
  async writeCutover(db: Kysely<Database>, migration: Migration, now: Date): Promise<void> {
    await loadSqlParser();
    const reverse = migration.spec.syncMode === 'trigger' ? reverseMappingOf(migration.spec) : null;
    await db
      .updateTable('ramps')
      .set({
        status: 'write_cutover',
        write_cutover_at: now,
        next_at: null,
        reverse_sync: reverse !== null,
        updated_at: now,
        waits_for: null,
        waiting_since: null,
        waiting_reason: null,
        history: sql`history || ${JSON.stringify([{ step: migration.spec.ramp.steps.length - 1, percent: 100, at: now.toISOString(), event: 'write_cutover' }])}::jsonb`,
      })
      .where('migration_id', '=', migration.id)
      .execute();
  }

  /**
   * Rollback action of `cutover` (rollback, abort, automatic rollback): the ramp row rolled back; the
   * transition's converge then sends reads and writes back to old. The sync needs no DDL: the forward
   * direction is still desired, and the reverse one stays while old takes over again (desiredSync,
   * ADR 004) — abort removes both.
   */
  async rollback(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const ramp = await ctx.db.selectFrom('ramps').selectAll().where('migration_id', '=', migration.id).executeTakeFirst();
    this.#requireFlagServer();
    const now = this.deps.clock.now();
    await this.deps.timers.cancel(ctx.db, migration.id, ['ramp_hold']);
    if (ramp) {
      await ctx.db
        .updateTable('ramps')
        .set({
          status: 'rolled_back',
          percent: 0,
          // write-new goes off: instances write new until the change reaches them, so the reverse
          // sync stays that long whatever the migration does next (desiredSync).
          // (Database time, like the comparisons in desiredSync's caller and the observe query.)
          ...(ramp.status === 'write_cutover' ? { reverse_until: sql<Date>`now() + make_interval(secs => ${migration.spec.backfill.flagPropagationSeconds})` } : {}),
          next_at: null,
          updated_at: now,
          waits_for: null,
          waiting_since: null,
          waiting_reason: null,
          history: sql`history || ${JSON.stringify([{ step: ramp.step, percent: 0, at: now.toISOString(), event: 'rolled_back' }])}::jsonb`,
        })
        .where('migration_id', '=', migration.id)
        .execute();
    }
  }

  /**
   * {@link PatchStep} for `ramp.*`, inside the patch's transaction:
   * - `ramp.holdSeconds` during a hold moves the end of the current hold by the difference
   *   (`hold_started_at + holdSeconds`, plus the time the hold was paused) and reschedules its timer;
   *   an end already past is due at once. Before and after a hold it applies from the next hold.
   * - `ramp.steps` while the ramp runs (cutover, holding or awaiting approval) is refused with 409
   *   `INVALID_TRANSITION`: the step in force, its percent and the history are positions in the old
   *   list. It can change before cutover, after the write cutover, or after a rollback.
   * - `ramp.requireApproval: false` while a step awaits approval is refused likewise (approve it:
   *   the setting applies from the next step); turning it on applies at the end of the current hold.
   */
  readonly onPatch: PatchStep = async ({ before, after, changed, db }) => {
    const touches = changed.filter((c) => c === 'ramp' || c.startsWith('ramp.'));
    if (touches.length === 0 || after.phase !== 'cutover') return;
    const ramp = await db.selectFrom('ramps').selectAll().where('migration_id', '=', after.id).executeTakeFirst();
    if (!ramp || (ramp.status !== 'holding' && ramp.status !== 'awaiting_approval')) return;
    const refuse = (field: string, message: string, canApply: string): never => {
      throw new TidewayError('INVALID_TRANSITION', `${message}; ${field} can change ${canApply}`, {
        phase: after.phase,
        status: after.status,
        action: 'patch',
        allowed: [],
        field,
        ramp: { step: ramp.step, percent: ramp.percent, status: ramp.status },
        canApply,
      });
    };
    if (touches.includes('ramp.steps')) {
      refuse('ramp.steps', `the ramp is running (step ${ramp.step} at ${ramp.percent} %, ${ramp.status})`, 'before cutover, after the write cutover, or after a rollback');
    }
    if (touches.includes('ramp.requireApproval') && !after.spec.ramp.requireApproval && ramp.status === 'awaiting_approval') {
      refuse('ramp.requireApproval', `step ${ramp.step + 1} is waiting for an approval`, 'once it is approved (POST /v1/migrations/:id/ramp/approve); it then applies from the next step');
    }
    if (!touches.includes('ramp.holdSeconds') || ramp.status !== 'holding' || !ramp.next_at) return;
    const deltaMs = (after.spec.ramp.holdSeconds - before.spec.ramp.holdSeconds) * 1000;
    const nextAt = new Date(ramp.next_at.getTime() + deltaMs);
    await db.updateTable('ramps').set({ next_at: nextAt, updated_at: this.deps.clock.now() }).where('migration_id', '=', after.id).execute();
    // Paused: the timer was left as it was and resume reschedules from next_at.
    if (!ramp.paused_at) {
      await this.deps.timers.cancel(db, after.id, ['ramp_hold']);
      await this.deps.timers.schedule(db, after.id, 'ramp_hold', nextAt, { step: ramp.step });
    }
    return { ramp: { holdRescheduled: { step: ramp.step, from: ramp.next_at.toISOString(), to: nextAt.toISOString() } } };
  };

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
      waitsFor: waitsForOf(r),
      waiting: r.waits_for && r.waiting_since ? { since: r.waiting_since.toISOString(), reason: r.waiting_reason ?? '' } : null,
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
    let waitsFor = ramp?.waitsFor ?? null;
    let waiting: CutoverDryRun['waiting'] = ramp?.waiting ?? null;
    if (ramp && migration.phase === 'cutover' && (ramp.status === 'holding' || ramp.status === 'awaiting_approval') && (waitsFor === 'hold' || waitsFor === 'approval')) {
      const judgement = await this.judgeStep(migration);
      if (judgement.waitsFor) {
        if (waitsFor === 'hold' && ramp.nextAt && Date.parse(ramp.nextAt) <= this.deps.clock.now().getTime()) waitsFor = judgement.waitsFor;
        waiting = { since: null, reason: judgement.message };
      }
    }
    return { current, next, waitsFor, waiting, nextAt: ramp?.nextAt ?? null, gates };
  }
}

/** What a ramp row waits for: the flag server or evidence (recorded when a due step could not go), an approval, the hold. */
function waitsForOf(r: RampRow): RampWaitsFor | null {
  if (r.waits_for && r.status === 'holding') return r.waits_for as RampWaitsFor;
  if (r.status === 'awaiting_approval') return 'approval';
  if (r.status === 'holding') return 'hold';
  return null;
}

/** A failure to reach the flag server (as opposed to a refusal, a conflict or a database error). */
function isFlagServerDown(error: unknown): error is DependencyUnavailableError {
  return error instanceof DependencyUnavailableError && error.details['dependency'] === 'unleash';
}
