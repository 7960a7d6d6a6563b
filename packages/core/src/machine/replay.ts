import { ACTIONS, isPhase, isStatus, type Action, type MigrationState } from './phases.js';
import { INITIAL_STATE, transition } from './transition-table.js';

/** The part of an audit event that replay reads. Events of other kinds (`create`, `patch`) are skipped. */
export interface ReplayableEvent {
  readonly seq: number;
  readonly action: string;
  readonly fromPhase: string | null;
  readonly fromStatus: string | null;
  readonly toPhase: string | null;
  readonly toStatus: string | null;
}

function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

/**
 * Rebuilds a migration's state from its audit log, oldest event first, by running every recorded
 * action through the transition table from {@link INITIAL_STATE}. This is the proof that the log is
 * complete: the result must equal the stored phase and status.
 *
 * @throws Error when an event's recorded `from`/`to` disagree with the table (a gap or a forged log).
 */
export function replayEvents(events: readonly ReplayableEvent[]): MigrationState {
  let state = INITIAL_STATE;
  for (const event of events) {
    if (!isAction(event.action)) continue;
    if (event.fromPhase !== state.phase || event.fromStatus !== state.status) {
      throw new Error(
        `event ${event.seq} starts from ${event.fromPhase}/${event.fromStatus} but replay is at ${state.phase}/${state.status}`,
      );
    }
    const outcome = transition(state, event.action);
    if (!outcome.allowed) throw new Error(`event ${event.seq}: "${event.action}" is not allowed from ${state.phase}/${state.status}`);
    if (!isPhase(event.toPhase) || !isStatus(event.toStatus) || event.toPhase !== outcome.to.phase || event.toStatus !== outcome.to.status) {
      throw new Error(`event ${event.seq} records ${event.toPhase}/${event.toStatus} but the table gives ${outcome.to.phase}/${outcome.to.status}`);
    }
    state = outcome.to;
  }
  return state;
}
