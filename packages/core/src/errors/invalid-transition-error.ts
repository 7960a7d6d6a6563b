import type { Action, Phase, Status } from '../machine/phases.js';
import { TidewayError } from './tideway-error.js';

/** An action that the transition table does not allow from the current phase and status. */
export class InvalidTransitionError extends TidewayError {
  constructor(phase: Phase, status: Status, action: Action, allowed: readonly Action[]) {
    super(
      'INVALID_TRANSITION',
      `action "${action}" is not allowed in phase "${phase}" with status "${status}"` +
        (allowed.length ? `; allowed: ${allowed.join(', ')}` : '; no action is allowed'),
      { phase, status, action, allowed: [...allowed] },
    );
  }
}
