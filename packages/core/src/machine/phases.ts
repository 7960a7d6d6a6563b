/**
 * The phases of a migration, in order. `draft` is before anything touches user data; `done` is
 * after cleanup. The six working phases between them are the rollout:
 * prepare → dual_write → backfill → shadow_read → cutover → cleanup.
 */
export const PHASES = [
  'draft',
  'prepare',
  'dual_write',
  'backfill',
  'shadow_read',
  'cutover',
  'cleanup',
  'done',
] as const;
export type Phase = (typeof PHASES)[number];

/** The working phases: every phase but `draft` and `done`. */
export const WORKING_PHASES = [
  'prepare',
  'dual_write',
  'backfill',
  'shadow_read',
  'cutover',
  'cleanup',
] as const satisfies readonly Phase[];
export type WorkingPhase = (typeof WORKING_PHASES)[number];

/**
 * Status is orthogonal to phase. `active` runs, `paused` holds still, `failed` stopped by itself and
 * waits for an operator; `aborted` and `completed` are terminal.
 */
export const STATUSES = ['active', 'paused', 'aborted', 'failed', 'completed'] as const;
export type Status = (typeof STATUSES)[number];

/**
 * What can be done to a migration. The first six are operator actions exposed over the REST API;
 * `fail` is raised by Tideway itself (e.g. chunks that finally failed).
 */
export const ACTIONS = ['start', 'advance', 'pause', 'resume', 'abort', 'rollback', 'fail'] as const;
export type Action = (typeof ACTIONS)[number];

/** The actions an operator may request through the API (every action but `fail`). */
export const OPERATOR_ACTIONS = ['start', 'advance', 'pause', 'resume', 'abort', 'rollback'] as const satisfies readonly Action[];
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];

/** Where a migration stands. */
export interface MigrationState {
  readonly phase: Phase;
  readonly status: Status;
}

/** True for `draft` … `done` members of {@link PHASES}. */
export function isPhase(value: unknown): value is Phase {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value);
}

/** True for members of {@link STATUSES}. */
export function isStatus(value: unknown): value is Status {
  return typeof value === 'string' && (STATUSES as readonly string[]).includes(value);
}

/** True for the working phases (every phase but `draft` and `done`). */
export function isWorkingPhase(phase: Phase): phase is WorkingPhase {
  return (WORKING_PHASES as readonly Phase[]).includes(phase);
}

/**
 * The phase after `phase`.
 * @throws Error for `done`, which has no next phase.
 */
export function nextPhase(phase: Phase): Phase {
  const next = PHASES[PHASES.indexOf(phase) + 1];
  if (!next) throw new Error(`phase "${phase}" has no next phase`);
  return next;
}

/**
 * The phase before `phase`.
 * @throws Error for `draft`, which has no previous phase.
 */
export function previousPhase(phase: Phase): Phase {
  const index = PHASES.indexOf(phase);
  const previous = index > 0 ? PHASES[index - 1] : undefined;
  if (!previous) throw new Error(`phase "${phase}" has no previous phase`);
  return previous;
}
