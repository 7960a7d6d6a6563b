import type { OperatorAction, Phase, Status } from '@tideway/core';

/*
 * Runtime copies of the domain's lists, for option choices: the CLI depends on @tideway/core for
 * types only. The `satisfies` clauses and the checks below fail to compile when core's lists change.
 */

export const PHASES = ['draft', 'prepare', 'dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup', 'done'] as const satisfies readonly Phase[];
export const STATUSES = ['active', 'paused', 'aborted', 'failed', 'completed'] as const satisfies readonly Status[];
export const OPERATOR_ACTIONS = ['start', 'advance', 'pause', 'resume', 'abort', 'rollback'] as const satisfies readonly OperatorAction[];

/** Statuses after which a migration never changes again. */
export const TERMINAL_STATUSES: readonly Status[] = ['completed', 'aborted'];

type Exhaustive<All, Listed> = [Exclude<All, Listed>] extends [never] ? true : false;
const _phasesComplete: Exhaustive<Phase, (typeof PHASES)[number]> = true;
const _statusesComplete: Exhaustive<Status, (typeof STATUSES)[number]> = true;
const _actionsComplete: Exhaustive<OperatorAction, (typeof OPERATOR_ACTIONS)[number]> = true;
void [_phasesComplete, _statusesComplete, _actionsComplete];
