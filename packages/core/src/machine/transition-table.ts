import { assertNever } from '../assert-never.js';
import {
  ACTIONS,
  WORKING_PHASES,
  nextPhase,
  previousPhase,
  type Action,
  type MigrationState,
  type Phase,
  type Status,
} from './phases.js';

/** Where a row of the table leads: a fixed phase, or one relative to the current one. */
export type PhaseTarget = 'same' | 'next' | 'previous';
/** The status a row leads to; `same` keeps the current one. */
export type StatusTarget = Status | 'same';

/** One allowed transition: from these phases and statuses, this action leads there. */
export interface TransitionRule {
  readonly action: Action;
  readonly phases: readonly Phase[];
  readonly statuses: readonly Status[];
  readonly toPhase: PhaseTarget;
  readonly toStatus: StatusTarget;
  /** Why the rule exists, for docs and for the audit trail. */
  readonly note: string;
}

const BEFORE_CLEANUP = WORKING_PHASES.filter((p) => p !== 'cleanup');
const AFTER_PREPARE = WORKING_PHASES.filter((p) => p !== 'prepare');

/**
 * The whole state machine as data: a (phase, status, action) triple is allowed exactly when one row
 * matches it; every other triple is rejected with the list of actions that are allowed. `draft` and
 * `done` as well as `aborted` and `completed` have deliberately few rows: a migration that has not
 * started can only start or be abandoned, and a finished one can do nothing.
 */
export const TRANSITION_TABLE: readonly TransitionRule[] = [
  { action: 'start', phases: ['draft'], statuses: ['active'], toPhase: 'next', toStatus: 'active', note: 'begin the rollout with prepare' },
  { action: 'abort', phases: ['draft'], statuses: ['active'], toPhase: 'same', toStatus: 'aborted', note: 'abandon before any change' },
  { action: 'advance', phases: BEFORE_CLEANUP, statuses: ['active'], toPhase: 'next', toStatus: 'active', note: 'gates of the current phase must hold' },
  { action: 'advance', phases: ['cleanup'], statuses: ['active'], toPhase: 'next', toStatus: 'completed', note: 'cleanup done ends the migration' },
  { action: 'pause', phases: WORKING_PHASES, statuses: ['active'], toPhase: 'same', toStatus: 'paused', note: 'stop dispatching work; in-flight work finishes' },
  { action: 'resume', phases: WORKING_PHASES, statuses: ['paused', 'failed'], toPhase: 'same', toStatus: 'active', note: 'continue from the checkpoints' },
  { action: 'abort', phases: WORKING_PHASES, statuses: ['active', 'paused', 'failed'], toPhase: 'same', toStatus: 'aborted', note: 'unwind every phase entered, newest first' },
  { action: 'rollback', phases: ['prepare'], statuses: ['active', 'paused', 'failed'], toPhase: 'previous', toStatus: 'active', note: 'back to draft: nothing runs in draft, so it is never paused' },
  { action: 'rollback', phases: AFTER_PREPARE, statuses: ['active'], toPhase: 'previous', toStatus: 'same', note: 'one phase back, undoing the phase left' },
  { action: 'rollback', phases: AFTER_PREPARE, statuses: ['paused', 'failed'], toPhase: 'previous', toStatus: 'paused', note: 'one phase back, holding still' },
  { action: 'fail', phases: WORKING_PHASES, statuses: ['active', 'paused'], toPhase: 'same', toStatus: 'failed', note: 'Tideway stopped the migration; an operator decides' },
];

/** The outcome of looking a triple up: the next state, or the actions that would have been allowed. */
export type TransitionOutcome =
  | { readonly allowed: true; readonly to: MigrationState; readonly rule: TransitionRule }
  | { readonly allowed: false; readonly allowedActions: readonly Action[] };

function findRule(state: MigrationState, action: Action): TransitionRule | undefined {
  return TRANSITION_TABLE.find(
    (rule) => rule.action === action && rule.phases.includes(state.phase) && rule.statuses.includes(state.status),
  );
}

function resolvePhase(phase: Phase, target: PhaseTarget): Phase {
  switch (target) {
    case 'same':
      return phase;
    case 'next':
      return nextPhase(phase);
    case 'previous':
      return previousPhase(phase);
    default:
      return assertNever(target);
  }
}

/** The actions the table allows from `state`, in {@link ACTIONS} order. */
export function allowedActions(state: MigrationState): Action[] {
  return ACTIONS.filter((action) => findRule(state, action) !== undefined);
}

/**
 * Looks a (phase, status, action) triple up in {@link TRANSITION_TABLE}. Pure: gates and actions are
 * checked by the caller.
 *
 * @example
 * ```ts
 * transition({ phase: 'draft', status: 'active' }, 'start'); // { allowed: true, to: { phase: 'prepare', status: 'active' }, … }
 * ```
 */
export function transition(state: MigrationState, action: Action): TransitionOutcome {
  const rule = findRule(state, action);
  if (!rule) return { allowed: false, allowedActions: allowedActions(state) };
  const to: MigrationState = {
    phase: resolvePhase(state.phase, rule.toPhase),
    status: rule.toStatus === 'same' ? state.status : rule.toStatus,
  };
  return { allowed: true, to, rule };
}

/** The state every migration is created in. */
export const INITIAL_STATE: MigrationState = { phase: 'draft', status: 'active' };

/** True when no action is allowed any more (aborted, or done and completed). */
export function isTerminal(state: MigrationState): boolean {
  return allowedActions(state).length === 0;
}
