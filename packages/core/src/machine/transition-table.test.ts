import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTIONS, PHASES, STATUSES, type Action, type MigrationState, type Phase, type Status } from './phases.js';
import { replayEvents, type ReplayableEvent } from './replay.js';
import { INITIAL_STATE, TRANSITION_TABLE, allowedActions, isTerminal, transition } from './transition-table.js';

/**
 * The oracle: the rules of the issue written out independently of TRANSITION_TABLE, triple by triple.
 * Returns the next state or null when the action must be rejected.
 */
function expected(phase: Phase, status: Status, action: Action): MigrationState | null {
  const working = phase !== 'draft' && phase !== 'done';
  const order = PHASES.indexOf(phase);
  if (phase === 'draft') {
    if (status !== 'active') return null; // a draft is only ever active
    if (action === 'start') return { phase: 'prepare', status: 'active' };
    if (action === 'abort') return { phase: 'draft', status: 'aborted' };
    return null;
  }
  if (!working || status === 'aborted' || status === 'completed') return null;
  switch (action) {
    case 'start':
      return null;
    case 'advance':
      if (status !== 'active') return null;
      return phase === 'cleanup' ? { phase: 'done', status: 'completed' } : { phase: PHASES[order + 1] as Phase, status: 'active' };
    case 'pause':
      return status === 'active' ? { phase, status: 'paused' } : null;
    case 'resume':
      return status === 'paused' || status === 'failed' ? { phase, status: 'active' } : null;
    case 'abort':
      return { phase, status: 'aborted' };
    case 'rollback':
      // Back to draft is always draft/active (a draft runs nothing, so it is never paused).
      if (phase === 'prepare') return { phase: 'draft', status: 'active' };
      return { phase: PHASES[order - 1] as Phase, status: status === 'active' ? 'active' : 'paused' };
    case 'fail':
      return status === 'active' || status === 'paused' ? { phase, status: 'failed' } : null;
  }
}

const TRIPLES = PHASES.flatMap((phase) => STATUSES.flatMap((status) => ACTIONS.map((action) => ({ phase, status, action }))));

describe('transition table', () => {
  it(`decides all ${TRIPLES.length} (phase, status, action) triples as the rules say`, () => {
    expect(TRIPLES).toHaveLength(8 * 5 * 7);
    for (const { phase, status, action } of TRIPLES) {
      const outcome = transition({ phase, status }, action);
      const want = expected(phase, status, action);
      if (want === null) {
        expect(outcome.allowed, `${phase}/${status}/${action} must be rejected`).toBe(false);
        if (!outcome.allowed) {
          const wantAllowed = ACTIONS.filter((a) => expected(phase, status, a) !== null);
          expect(outcome.allowedActions, `${phase}/${status}/${action} allowed list`).toEqual(wantAllowed);
        }
      } else {
        expect(outcome.allowed, `${phase}/${status}/${action} must be allowed`).toBe(true);
        if (outcome.allowed) expect(outcome.to, `${phase}/${status}/${action}`).toEqual(want);
      }
    }
  });

  it('has no triple matched by two rules', () => {
    for (const { phase, status, action } of TRIPLES) {
      const matches = TRANSITION_TABLE.filter((r) => r.action === action && r.phases.includes(phase) && r.statuses.includes(status));
      expect(matches.length, `${phase}/${status}/${action}`).toBeLessThanOrEqual(1);
    }
  });

  it('treats aborted and completed as terminal, and only they are', () => {
    for (const phase of PHASES) {
      for (const status of STATUSES) {
        const reachable = expected(phase, status, 'abort') !== null || allowedActions({ phase, status }).length > 0;
        expect(isTerminal({ phase, status })).toBe(!reachable);
      }
    }
    expect(isTerminal({ phase: 'done', status: 'completed' })).toBe(true);
    expect(isTerminal({ phase: 'backfill', status: 'aborted' })).toBe(true);
    expect(isTerminal({ phase: 'backfill', status: 'failed' })).toBe(false);
  });
});

/** States a migration can be in: every state reachable from INITIAL_STATE through the table. */
function reachableStates(): Set<string> {
  const seen = new Set<string>([`${INITIAL_STATE.phase}/${INITIAL_STATE.status}`]);
  const queue: MigrationState[] = [INITIAL_STATE];
  while (queue.length) {
    const state = queue.shift() as MigrationState;
    for (const action of ACTIONS) {
      const outcome = transition(state, action);
      if (!outcome.allowed) continue;
      const key = `${outcome.to.phase}/${outcome.to.status}`;
      if (!seen.has(key)) {
        seen.add(key);
        queue.push(outcome.to);
      }
    }
  }
  return seen;
}

describe('random action sequences (property)', () => {
  const reachable = reachableStates();

  it('never leave the states the table describes, and replaying the log gives the current state', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...ACTIONS), { maxLength: 60 }), (actions) => {
        let state = INITIAL_STATE;
        const log: ReplayableEvent[] = [{ seq: 1, action: 'create', fromPhase: null, fromStatus: null, toPhase: 'draft', toStatus: 'active' }];
        for (const action of actions) {
          const outcome = transition(state, action);
          if (!outcome.allowed) {
            expect(outcome.allowedActions).not.toContain(action);
            continue;
          }
          expect(expected(state.phase, state.status, action)).toEqual(outcome.to);
          log.push({ seq: log.length + 1, action, fromPhase: state.phase, fromStatus: state.status, toPhase: outcome.to.phase, toStatus: outcome.to.status });
          // A patch event changes no state and must be skipped by replay.
          log.push({ seq: log.length + 1, action: 'patch', fromPhase: outcome.to.phase, fromStatus: outcome.to.status, toPhase: outcome.to.phase, toStatus: outcome.to.status });
          state = outcome.to;
          expect(reachable.has(`${state.phase}/${state.status}`)).toBe(true);
          expect(state.status === 'completed').toBe(state.phase === 'done');
        }
        expect(replayEvents(log)).toEqual(state);
      }),
      { numRuns: 500 },
    );
  });

  it('has no dead end: every reachable state is terminal by design or allows an operator action', () => {
    for (const key of reachable) {
      const [phase, status] = key.split('/') as [Phase, Status];
      const operator = allowedActions({ phase, status }).filter((a) => a !== 'fail');
      const terminalByDesign = status === 'aborted' || status === 'completed';
      expect(operator.length > 0 || terminalByDesign, key).toBe(true);
    }
  });

  it('reaches done/completed only by advancing through every phase in order', () => {
    expect(reachable.has('done/completed')).toBe(true);
    expect(reachable.has('done/active')).toBe(false);
    expect(reachable.has('draft/paused')).toBe(false);
  });
});

describe('replayEvents', () => {
  it('rejects a log with a gap', () => {
    const log: ReplayableEvent[] = [
      { seq: 1, action: 'start', fromPhase: 'draft', fromStatus: 'active', toPhase: 'prepare', toStatus: 'active' },
      { seq: 2, action: 'advance', fromPhase: 'dual_write', fromStatus: 'active', toPhase: 'backfill', toStatus: 'active' },
    ];
    expect(() => replayEvents(log)).toThrow(/event 2 starts from dual_write\/active/);
  });

  it('rejects a log whose recorded result disagrees with the table', () => {
    const log: ReplayableEvent[] = [{ seq: 1, action: 'start', fromPhase: 'draft', fromStatus: 'active', toPhase: 'backfill', toStatus: 'active' }];
    expect(() => replayEvents(log)).toThrow(/table gives prepare\/active/);
  });
});
