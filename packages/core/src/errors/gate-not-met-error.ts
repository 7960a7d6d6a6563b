import type { GateResult } from '../machine/phase-hooks.js';
import type { Phase } from '../machine/phases.js';
import { TidewayError } from './tideway-error.js';

/** `advance` was asked while one or more gates of the current phase do not hold. */
export class GateNotMetError extends TidewayError {
  constructor(phase: Phase, failing: readonly GateResult[]) {
    super(
      'GATE_NOT_MET',
      `cannot leave phase "${phase}": ${failing.map((g) => `${g.name} (${g.message})`).join('; ')}`,
      { phase, gates: failing.map((g) => ({ ...g })) },
    );
  }
}
