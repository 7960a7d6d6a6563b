import { assertNever } from '../assert-never.js';
import { WORKING_PHASES, type Action, type MigrationState, type Phase } from './phases.js';

/** A value a gate observed, as shown to operators (`rowsCopied: 812000`, `rateUpper95: 0.0004`). */
export type ObservedValue = number | string | boolean | null;

/** The verdict of one gate, with the numbers it was judged on. */
export interface GateResult {
  readonly name: string;
  readonly passed: boolean;
  /** One human sentence: why it passes or what is missing. */
  readonly message: string;
  readonly observed: Readonly<Record<string, ObservedValue>>;
}

/**
 * What must hold before a migration may `advance` out of a phase (backfill complete, verification
 * passed, divergence within criteria, ramp at 100 %). Evaluated inside the transition, under the
 * migration's row lock, and on every read of the migration resource.
 */
export interface Gate<C> {
  readonly name: string;
  /** Whether the gate concerns this migration at all (e.g. application sync only); left out of the gates when false. @defaultValue always */
  appliesTo?(ctx: C): boolean;
  evaluate(ctx: C): Promise<GateResult> | GateResult;
}

/**
 * A side effect tied to a phase: entry actions run when a migration enters the phase; rollback
 * actions run when it leaves the phase backwards (rollback, abort). An action that throws cancels the
 * transition: the state is not changed. Actions must be idempotent, because a crash after the action
 * and before the commit repeats it.
 */
export interface PhaseAction<C> {
  readonly name: string;
  /**
   * When the action runs relative to the converge of the desired state (datasource objects, flags):
   * `before-converge` (the default) for checks and for changes to Tideway's own rows that the
   * desired state is derived from; `after-converge` for steps that need the world already changed
   * (e.g. renaming the old table once its sync triggers are gone).
   */
  readonly stage?: 'before-converge' | 'after-converge';
  run(ctx: C): Promise<void> | void;
}

/** One action scheduled by {@link PhaseHooks.plan}, in the order it must run. */
export interface PlannedAction<C> {
  readonly kind: 'entry' | 'rollback';
  readonly phase: Phase;
  readonly action: PhaseAction<C>;
}

/**
 * The registry through which features plug gates and actions into the state machine without editing
 * it: the backfill feature registers its gate on `backfill`, the flags feature its rollback on
 * `cutover`, and so on. `C` is the context the engine hands to them (the migration, its spec, a
 * clock, a transaction).
 *
 * @example
 * ```ts
 * const hooks = new PhaseHooks<{ rowsLeft: number }>();
 * hooks.addGate('backfill', { name: 'backfill-complete', evaluate: (c) => ({
 *   name: 'backfill-complete', passed: c.rowsLeft === 0, message: `${c.rowsLeft} rows left`,
 *   observed: { rowsLeft: c.rowsLeft } }) });
 * ```
 */
export class PhaseHooks<C> {
  readonly #gates = new Map<Phase, Gate<C>[]>();
  readonly #entry = new Map<Phase, PhaseAction<C>[]>();
  readonly #rollback = new Map<Phase, PhaseAction<C>[]>();

  /** Adds a gate that must hold to advance out of `phase`. */
  addGate(phase: Phase, gate: Gate<C>): this {
    push(this.#gates, phase, gate);
    return this;
  }

  /** Adds an action that runs when a migration enters `phase` (by start or advance). */
  addEntryAction(phase: Phase, action: PhaseAction<C>): this {
    push(this.#entry, phase, action);
    return this;
  }

  /** Adds an action that undoes `phase` when a migration leaves it backwards (rollback, abort). */
  addRollbackAction(phase: Phase, action: PhaseAction<C>): this {
    push(this.#rollback, phase, action);
    return this;
  }

  /** The gates of `phase`, in registration order. */
  gates(phase: Phase): readonly Gate<C>[] {
    return this.#gates.get(phase) ?? [];
  }

  /** The entry actions of `phase`, in registration order. */
  entryActions(phase: Phase): readonly PhaseAction<C>[] {
    return this.#entry.get(phase) ?? [];
  }

  /** The rollback actions of `phase`, in reverse registration order (undo runs newest first). */
  rollbackActions(phase: Phase): readonly PhaseAction<C>[] {
    return [...(this.#rollback.get(phase) ?? [])].reverse();
  }

  /**
   * The actions a transition runs, in order:
   * - `start`, `advance`: the entry actions of the phase entered;
   * - `rollback`: the rollback actions of the phase left;
   * - `abort`: the rollback actions of the current phase and of every earlier working phase, newest
   *   first, so that an aborted migration leaves nothing behind (no trigger, no flag on new);
   * - `pause`, `resume`, `fail`: none.
   */
  plan(from: MigrationState, action: Action, to: MigrationState): PlannedAction<C>[] {
    switch (action) {
      case 'start':
      case 'advance':
        return this.entryActions(to.phase).map((a) => ({ kind: 'entry', phase: to.phase, action: a }));
      case 'rollback':
        return this.rollbackActions(from.phase).map((a) => ({ kind: 'rollback', phase: from.phase, action: a }));
      case 'abort': {
        const index = (WORKING_PHASES as readonly Phase[]).indexOf(from.phase);
        const unwound = index < 0 ? [] : WORKING_PHASES.slice(0, index + 1).reverse();
        return unwound.flatMap((phase) =>
          this.rollbackActions(phase).map((a) => ({ kind: 'rollback' as const, phase, action: a })),
        );
      }
      case 'pause':
      case 'resume':
      case 'fail':
        return [];
      default:
        return assertNever(action);
    }
  }
}

function push<T>(map: Map<Phase, T[]>, phase: Phase, item: T): void {
  const list = map.get(phase);
  if (list) list.push(item);
  else map.set(phase, [item]);
}
