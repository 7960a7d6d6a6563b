import type {
  PhaseHooks} from '@tideway/core';
import {
  adminOnlyChanges,
  GateNotMetError,
  InvalidSpecError,
  InvalidTransitionError,
  MigrationNotFoundError,
  VersionConflictError,
  allowedActions,
  applySpecPatch,
  resolveSpec,
  transition,
  type Action,
  type GateResult,
  type MigrationSpec,
  type MigrationSpecInput,
  type MigrationSpecPatch,
  type MigrationState,
  type SpecProblem,
  NameTakenError,
  TidewayError,
  flagNames,
  isTerminal,
  isUuid,
  type FlagNames,
} from '@tideway/core';
import { loadSqlParser, validateMapping } from '../mapping/mapping-validator.js';
import { wayBackProblems } from '../way-back/way-back.js';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { Clock } from '../../clock.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { Migration } from './migration.js';
import type { MigrationContext } from './migration-context.js';
import type { MigrationReadModel } from './migration-read-model.js';
import type { MigrationRepository } from './migration-repository.js';
import { noFaults, type Faults } from '../../faults.js';
import type { ConvergeChange, ConvergeTarget } from '../desired-state/desired-state.js';
import type { Installation } from '../installation/installation.js';
import { roleAllows, type Role } from '../tokens/roles.js';
import { validateProbeSql } from '../pace/probe-sql.js';

/** Who acts and under which optimistic-concurrency expectation. */
export interface ActOptions {
  /** Token name, or `tideway:<component>`. */
  readonly actor: string;
  /** When given, the action fails with VERSION_CONFLICT unless the stored version equals it. */
  readonly expectedVersion?: number | undefined;
  readonly reason?: string | undefined;
  /** Extra facts for the audit event (e.g. the numbers behind an automatic abort). */
  readonly details?: Record<string, unknown> | undefined;
}

/** {@link ActOptions} of {@link MigrationService.patch}, with the caller's role. */
export interface PatchOptions extends ActOptions {
  /**
   * The caller's role. Changing an admin-only field (`ADMIN_ONLY_SPEC_FIELDS` of `@tideway/core`:
   * source, target, mapping, reverseMapping, syncMode, cleanup.dropOld/autoExecute/dropConfirmation)
   * needs `admin`; every other field needs `operator`. Required, so no caller path skips the check.
   */
  readonly role: Role;
}

/** Told after a transition committed. */
export interface TransitionNotice {
  readonly migration: Migration;
  readonly action: Action;
  readonly from: MigrationState;
}

/** Contributes part of `progress` to the migration resource (backfill figures, ramp, …). */
export type ProgressProvider = (migration: Migration, db: Kysely<Database>) => Promise<Record<string, unknown>>;

/** A migration with what operators see next to it. */
export interface MigrationView {
  readonly migration: Migration;
  /** The gates of the current phase, evaluated now. */
  readonly gates: GateResult[];
  readonly progress: Record<string, unknown>;
  /** Operator actions the transition table allows now (Tideway's own `fail` is left out). */
  readonly allowedActions: Action[];
  /** The installation whose flags these are (`TIDEWAY_INSTALLATION` or the orchestrator database's id). */
  readonly installation: string;
  /** The migration's flag names (`tideway.<installation>.<name>.<purpose>`), as the SDK reads them. */
  readonly flags: FlagNames;
}

/** Dependencies of {@link MigrationService}. */
export interface MigrationServiceDeps {
  readonly db: Kysely<Database>;
  readonly repository: MigrationRepository;
  readonly readModel: MigrationReadModel;
  readonly hooks: PhaseHooks<MigrationContext>;
  readonly datasources: DatasourceRegistry;
  readonly clock: Clock;
  /** Crash points for fault tests. @defaultValue none */
  readonly faults?: Faults;
  /** The installation id, for the flag names on the view. */
  readonly installation: Installation;
}

/**
 * A step of PATCH that makes a changed setting take effect where it lives outside the spec (e.g. the
 * current ramp hold's end), inside the patch's transaction (the migration row locked), after the new
 * spec is written and before the converge. It returns facts for the `patch` audit event, or throws
 * to refuse the patch (e.g. `INVALID_TRANSITION` naming when the change can apply): nothing is changed.
 */
export type PatchStep = (ctx: { readonly before: Migration; readonly after: Migration; readonly changed: readonly string[]; readonly db: Kysely<Database> }) => Promise<Record<string, unknown> | void>;

/**
 * Brings the world outside the orchestrator database in line with a migration's state (see
 * `DesiredStateReconciler`): `intend` commits an intent before the caller's transaction,
 * `converge` runs inside it.
 */
export interface Converger {
  intend(migrationId: string): Promise<number>;
  converge(target: ConvergeTarget, intent: number | null): Promise<ConvergeChange[]>;
}

/**
 * The migration use-cases: create, act (start/advance/pause/resume/abort/rollback/fail), patch and
 * describe. Every change runs in one transaction that locks the migration row, checks the
 * transition table and the expected version, evaluates gates, runs the phase actions, updates the
 * row and appends exactly one audit event — so concurrent callers are serialised, and a failure
 * anywhere leaves the state as it was.
 */
export class MigrationService {
  readonly #deps: MigrationServiceDeps;
  readonly #listeners: ((notice: TransitionNotice) => void | Promise<void>)[] = [];
  readonly #progress: ProgressProvider[] = [];
  /** Reads of {@link describe} in flight, shared by concurrent callers for the same id. */
  readonly #describing = new Map<string, Promise<MigrationView>>();
  readonly #patchSteps: PatchStep[] = [];
  readonly #beforeAct: { actions: readonly Action[]; step: (migration: Migration) => Promise<void> }[] = [];
  #converge: Converger | null = null;
  readonly #during: ((trx: Kysely<Database>, migration: Migration, action: Action, to: MigrationState) => Promise<void>)[] = [];

  constructor(deps: MigrationServiceDeps) {
    this.#deps = deps;
  }

  /**
   * Sets how a transition converges the desired state: after the phase actions and the new state
   * are written, before the commit (see `DesiredStateReconciler`). Without one, transitions change
   * only the orchestrator database.
   */
  useConverger(converge: Converger): void {
    this.#converge = converge;
  }

  /** Registers a listener told after every committed transition; its errors are swallowed. */
  onTransition(listener: (notice: TransitionNotice) => void | Promise<void>): void {
    this.#listeners.push(listener);
  }

  /** Registers a {@link PatchStep}; steps run in registration order. */
  onPatch(step: PatchStep): void {
    this.#patchSteps.push(step);
  }

  /**
   * Registers a step that runs before {@link act} opens its transaction for one of `actions` (so
   * outside the migration row's lock), with the migration as it is then. Its errors are swallowed:
   * it prepares work the phase actions then check under the lock (e.g. copying old-side write
   * failures back before a rollback), it decides nothing.
   */
  beforeAct(actions: readonly Action[], step: (migration: Migration) => Promise<void>): void {
    this.#beforeAct.push({ actions, step });
  }

  /**
   * Registers a step that runs inside every allowed transition's transaction, before its phase
   * actions (e.g. opening a new evidence window, so windows the actions open come after it), with
   * the migration as it was and the state it goes to. A throw cancels the transition.
   */
  duringTransition(step: (trx: Kysely<Database>, migration: Migration, action: Action, to: MigrationState) => Promise<void>): void {
    this.#during.push(step);
  }

  /** Registers a contributor to the `progress` object of the resource. */
  addProgressProvider(provider: ProgressProvider): void {
    this.#progress.push(provider);
  }

  /**
   * Creates a migration in `draft`/`active` from a client spec, with a `create` audit event, and
   * converges its desired state (its flags are created, at 0 %) in the same transaction.
   * @throws InvalidSpecError for incoherent fields or unknown datasources (every problem at once).
   * @throws NameTakenError when the name is in use.
   * @throws FlagConflictError when one of its flag names is held by a flag Tideway did not create for it (nothing created).
   * @throws DependencyUnavailableError when the flag server cannot be reached (nothing created).
   */
  async create(input: MigrationSpecInput, options: Pick<ActOptions, 'actor' | 'reason'>): Promise<Migration> {
    const spec = resolveSpec(input);
    await this.#checkSpec(spec);
    const taken = await this.#deps.db.selectFrom('migrations').select('id').where('name', '=', spec.name).executeTakeFirst();
    if (taken) throw new NameTakenError(spec.name);
    return this.#deps.db.transaction().execute(async (trx) => {
      // Inserted first: the name's unique index makes a concurrent create of the same name wait here, before any flag is touched.
      const migration = await this.#deps.repository.insert(trx, spec.name, spec);
      // No intent (the id is new): flags a crash leaves behind here are this installation's orphans, swept later.
      const converged = this.#converge ? await this.#converge.converge({ migration, db: trx }, null) : [];
      await this.#deps.repository.appendEvent(trx, {
        migrationId: migration.id,
        actor: options.actor,
        action: 'create',
        from: null,
        to: { phase: migration.phase, status: migration.status },
        reason: options.reason ?? null,
        details: converged.length ? { converged: converged.map((c) => ({ ...c })) } : {},
      });
      return migration;
    });
  }

  /**
   * Applies an action through the transition table.
   * @throws MigrationNotFoundError, VersionConflictError, InvalidTransitionError, GateNotMetError, and
   *   whatever a phase action throws (InvalidSpecError from the prepare catalog check,
   *   DependencyUnavailableError, …); in every case nothing was changed.
   */
  async act(id: string, action: Action, options: ActOptions): Promise<Migration> {
    const { repository, hooks, clock } = this.#deps;
    const before = this.#beforeAct.filter((b) => b.actions.includes(action));
    if (before.length > 0) {
      const row = await this.#deps.readModel.get(id);
      if (row) for (const { step } of before) await step(row).catch(() => undefined);
    }
    const intent = this.#converge && isUuid(id) ? await this.#converge.intend(id) : null;
    // A transition that lost a deadlock (its DROP TRIGGER against a chunk's locks, say) or a
    // serialization conflict was rolled back whole: it is run again on the state as it is then.
    const result = await retryOnConflict(() => this.#deps.db.transaction().execute(async (trx) => {
      const current = await repository.lock(trx, id);
      if (!current) throw new MigrationNotFoundError(id);
      if (options.expectedVersion !== undefined && options.expectedVersion !== current.version) {
        throw new VersionConflictError(id, options.expectedVersion, current.version);
      }
      const from: MigrationState = { phase: current.phase, status: current.status };
      const outcome = transition(from, action);
      if (!outcome.allowed) {
        // Operators are told what they can do; `fail` is Tideway's own action.
        const allowed = action === 'fail' ? outcome.allowedActions : outcome.allowedActions.filter((a) => a !== 'fail');
        throw new InvalidTransitionError(from.phase, from.status, action, allowed);
      }

      const ctx: MigrationContext = { migration: current, db: trx, clock, actor: options.actor };
      let gates: GateResult[] = [];
      if (action === 'advance') {
        gates = await this.#evaluateGates(ctx);
        const failing = gates.filter((g) => !g.passed);
        if (failing.length > 0) throw new GateNotMetError(from.phase, failing);
      }
      const faults = this.#deps.faults ?? noFaults;
      const ran: string[] = [];
      const planned = hooks.plan(from, action, outcome.to);
      for (const step of this.#during) await step(trx, current, action, outcome.to);
      faults.crashPoint(`transition:${action}:before-actions`);
      for (const step of planned.filter((p) => p.action.stage !== 'after-converge')) {
        await step.action.run(ctx);
        ran.push(`${step.kind}:${step.phase}:${step.action.name}`);
        faults.crashPoint(`transition:${action}:after-action:${step.action.name}`);
      }
      const updated = await repository.updateState(trx, current, outcome.to);
      const converged = this.#converge ? await this.#converge.converge({ migration: updated, db: trx }, intent) : [];
      faults.crashPoint(`transition:${action}:after-converge`);
      const after: MigrationContext = { ...ctx, migration: updated };
      for (const step of planned.filter((p) => p.action.stage === 'after-converge')) {
        await step.action.run(after);
        ran.push(`${step.kind}:${step.phase}:${step.action.name}`);
        faults.crashPoint(`transition:${action}:after-action:${step.action.name}`);
      }
      await repository.appendEvent(trx, {
        migrationId: id,
        actor: options.actor,
        action,
        from,
        to: outcome.to,
        reason: options.reason ?? null,
        details: {
          ...options.details,
          ...(gates.length ? { gates } : {}),
          ...(ran.length ? { actions: ran } : {}),
          ...(converged.length ? { converged: converged.map((c) => ({ ...c })) } : {}),
          version: updated.version,
        },
      });
      faults.crashPoint(`transition:${action}:before-commit`);
      return { updated, from };
    }));
    (this.#deps.faults ?? noFaults).crashPoint(`transition:${action}:after-commit`);
    this.#describing.delete(id);
    await this.#notify({ migration: result.updated, action, from: result.from });
    return result.updated;
  }

  /**
   * Changes tunable parts of the spec, with a `patch` audit event listing the changed fields. A
   * setting that lives outside the spec takes effect in the same transaction: the {@link PatchStep}s
   * (e.g. the current hold rescheduled) and the converge of the desired state (e.g. the shadow-read
   * rollout set to the new sample percent), both recorded in the event.
   * @throws TidewayError `FORBIDDEN` (details `field`, `fields`, `required: 'admin'`, `role`) when a
   *   caller below `admin` would change an admin-only field, or `role` is below `operator`; checked
   *   before the phase's immutability, so an operator learns the field is not theirs at all.
   * @throws MigrationNotFoundError, VersionConflictError, ImmutableFieldError, InvalidSpecError.
   * @throws TidewayError `INVALID_TRANSITION` from a step that refuses the change now (it says when it can apply).
   * @throws DependencyUnavailableError when the flag server cannot be reached and a flag had to change (nothing changed).
   */
  async patch(id: string, patch: MigrationSpecPatch, options: PatchOptions): Promise<Migration> {
    const { repository } = this.#deps;
    const intent = this.#converge && isUuid(id) ? await this.#converge.intend(id) : null;
    const updated = await this.#deps.db.transaction().execute(async (trx) => {
      const current = await repository.lock(trx, id);
      if (!current) throw new MigrationNotFoundError(id);
      if (options.expectedVersion !== undefined && options.expectedVersion !== current.version) {
        throw new VersionConflictError(id, options.expectedVersion, current.version);
      }
      if (isTerminal(current)) {
        throw new TidewayError('INVALID_TRANSITION', `migration is ${current.status}: its spec can no longer change`, {
          phase: current.phase,
          status: current.status,
          action: 'patch',
          allowed: [],
        });
      }
      if (!roleAllows(options.role, 'operator')) throw forbidden(['spec'], 'operator', options.role);
      if (!roleAllows(options.role, 'admin')) {
        // What the patch would change whatever the phase (the phase's own rules come next).
        const adminOnly = adminOnlyChanges(applySpecPatch(current.spec, patch, 'draft').changed);
        if (adminOnly.length > 0) throw forbidden(adminOnly, 'admin', options.role);
      }
      const { spec, changed } = applySpecPatch(current.spec, patch, current.phase);
      if (changed.length === 0) return current;
      await this.#checkSpec(spec);
      const updated = await repository.updateSpec(trx, current, spec);
      const applied: Record<string, unknown> = {};
      for (const step of this.#patchSteps) Object.assign(applied, (await step({ before: current, after: updated, changed, db: trx })) ?? {});
      const converged = this.#converge ? await this.#converge.converge({ migration: updated, db: trx }, intent) : [];
      const state = { phase: current.phase, status: current.status };
      await repository.appendEvent(trx, {
        migrationId: id,
        actor: options.actor,
        action: 'patch',
        from: state,
        to: state,
        reason: options.reason ?? null,
        details: { changed, ...applied, ...(converged.length ? { converged: converged.map((c) => ({ ...c })) } : {}), version: updated.version },
      });
      return updated;
    });
    this.#describing.delete(id);
    return updated;
  }

  /**
   * The migration with its gates (evaluated now), progress and allowed actions.
   *
   * Concurrent calls for the same id share one read (request coalescing, as Go's `singleflight`
   * does): a caller that arrives while a read is in flight gets that read's view, so under load
   * the database sees one read per id at a time instead of one per request, and a view is never
   * older than the moment the first of its callers asked. A transition or patch made through this
   * service drops the shared read, so a caller never gets a view from before its own write. The
   * view is shared: callers must not mutate it.
   * @throws MigrationNotFoundError.
   */
  async describe(id: string): Promise<MigrationView> {
    const shared = this.#describing.get(id);
    if (shared) return shared;
    const read = (async () => {
      const migration = await this.#deps.readModel.get(id);
      if (!migration) throw new MigrationNotFoundError(id);
      return this.view(migration);
    })();
    this.#describing.set(id, read);
    const done = () => {
      if (this.#describing.get(id) === read) this.#describing.delete(id);
    };
    read.then(done, done);
    return read;
  }

  /**
   * Appends an informational audit event (a ramp step, a reminder) that changes neither phase nor
   * status, under the migration's row lock so `seq` stays gap-free.
   * @throws MigrationNotFoundError.
   */
  async recordEvent(
    id: string,
    action: string,
    options: { actor: string; reason?: string; details?: Record<string, unknown> },
    trx?: Kysely<Database>,
  ): Promise<void> {
    const append = async (t: Kysely<Database>) => {
      const current = await this.#deps.repository.lock(t, id);
      if (!current) throw new MigrationNotFoundError(id);
      const state = { phase: current.phase, status: current.status };
      await this.#deps.repository.appendEvent(t, { migrationId: id, actor: options.actor, action, from: state, to: state, reason: options.reason ?? null, details: options.details ?? {} });
    };
    if (trx) await append(trx);
    else await this.#deps.db.transaction().execute(append);
  }

  /**
   * The migration alone, without gates or progress (for hot paths such as result ingestion).
   * @throws MigrationNotFoundError.
   */
  async describeLite(id: string): Promise<{ migration: Migration }> {
    const migration = await this.#deps.readModel.get(id);
    if (!migration) throw new MigrationNotFoundError(id);
    return { migration };
  }

  /** Like {@link describe} for a migration already read. */
  async view(migration: Migration): Promise<MigrationView> {
    const ctx: MigrationContext = { migration, db: this.#deps.db, clock: this.#deps.clock, actor: 'tideway:read' };
    const [gates, parts, installation] = await Promise.all([
      this.#evaluateGates(ctx),
      Promise.all(this.#progress.map((p) => p(migration, this.#deps.db))),
      this.#deps.installation.id(),
    ]);
    return {
      migration,
      gates,
      progress: Object.assign({}, ...parts) as Record<string, unknown>,
      allowedActions: allowedActions(migration).filter((a) => a !== 'fail'),
      installation,
      flags: flagNames(installation, migration.name),
    };
  }

  /**
   * Checks that need the server: configured datasources, trigger sync only within one datasource,
   * and every mapping expression through the PostgreSQL parser and the allowlist.
   * @throws InvalidSpecError listing every problem.
   */
  async #checkSpec(spec: MigrationSpec): Promise<void> {
    const problems: SpecProblem[] = (['source', 'target'] as const)
      .filter((side) => !this.#deps.datasources.has(spec[side].datasource))
      .map((side) => ({
        field: `${side}.datasource`,
        problem: `unknown datasource "${spec[side].datasource}"; configured: ${this.#deps.datasources.names().join(', ') || '(none)'}`,
      }));
    if (spec.syncMode === 'trigger' && spec.source.datasource !== spec.target.datasource) {
      problems.push({ field: 'syncMode', problem: 'trigger sync needs source and target on the same datasource; use "application"' });
    }
    await loadSqlParser();
    problems.push(...validateMapping({ ...spec.mapping }));
    if (spec.reverseMapping) {
      problems.push(...validateMapping({ ...spec.reverseMapping }).map((p) => ({ ...p, field: p.field.replace(/^mapping\./, 'reverseMapping.') })));
    }
    // The way back is part of the contract: every old column the mapping carries over comes back.
    problems.push(...wayBackProblems(spec));
    if (spec.throttle.latencyGuard.probeSql !== null) problems.push(...validateProbeSql(spec.throttle.latencyGuard.probeSql));
    if (problems.length > 0) throw new InvalidSpecError(problems);
  }

  async #evaluateGates(ctx: MigrationContext): Promise<GateResult[]> {
    const gates = this.#deps.hooks.gates(ctx.migration.phase).filter((g) => g.appliesTo?.(ctx) ?? true);
    return Promise.all(gates.map(async (g) => ({ ...(await g.evaluate(ctx)), name: g.name })));
  }

  async #notify(notice: TransitionNotice): Promise<void> {
    for (const listener of this.#listeners) {
      try {
        await listener(notice);
      } catch {
        // A listener's failure must not undo or fail a committed transition; listeners log their own.
      }
    }
  }
}

/** SQLSTATEs of a transaction PostgreSQL rolled back to resolve a conflict: run it again. */
const CONFLICT_CODES = new Set(['40P01', '40001']);
/** Attempts of a transition that keeps losing conflicts before the error goes to the caller. */
export const TRANSITION_ATTEMPTS = 3;

/** Whether `error`, or an error it was caused by, is a deadlock or serialization failure. */
export function isConflictError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (CONFLICT_CODES.has((e as { code?: string }).code ?? '')) return true;
  }
  return false;
}

/** Runs `fn` again, up to {@link TRANSITION_ATTEMPTS} times in all, while it fails by {@link isConflictError}, with a short jittered pause between. */
async function retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= TRANSITION_ATTEMPTS || !isConflictError(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25 * attempt + Math.random() * 50));
    }
  }
}

function forbidden(fields: readonly string[], required: Role, role: Role): TidewayError {
  const [field] = fields;
  return new TidewayError('FORBIDDEN', `changing ${fields.join(', ')} needs role "${required}"; the caller has "${role}"`, {
    field,
    fields: [...fields],
    required,
    role,
  });
}
