import { describe, expect, it } from 'vitest';
import { PhaseHooks, type PhaseAction } from './phase-hooks.js';

const action = (name: string): PhaseAction<unknown> => ({ name, run: () => undefined });

function hooks() {
  return new PhaseHooks<unknown>()
    .addEntryAction('dual_write', action('install-sync'))
    .addEntryAction('dual_write', action('flag-on'))
    .addRollbackAction('dual_write', action('remove-sync'))
    .addRollbackAction('dual_write', action('flag-off'))
    .addRollbackAction('cutover', action('reads-to-old'))
    .addRollbackAction('prepare', action('forget-prepare'));
}

const names = (plan: { phase: string; kind: string; action: { name: string } }[]) => plan.map((p) => `${p.kind}:${p.phase}:${p.action.name}`);

describe('PhaseHooks.plan', () => {
  it('runs the entry actions of the phase entered, in registration order', () => {
    expect(names(hooks().plan({ phase: 'prepare', status: 'active' }, 'advance', { phase: 'dual_write', status: 'active' }))).toEqual([
      'entry:dual_write:install-sync',
      'entry:dual_write:flag-on',
    ]);
  });

  it('runs the rollback actions of the phase left on rollback, newest first', () => {
    expect(names(hooks().plan({ phase: 'dual_write', status: 'active' }, 'rollback', { phase: 'prepare', status: 'active' }))).toEqual([
      'rollback:dual_write:flag-off',
      'rollback:dual_write:remove-sync',
    ]);
  });

  it('unwinds every entered phase on abort, newest phase first', () => {
    expect(names(hooks().plan({ phase: 'cutover', status: 'paused' }, 'abort', { phase: 'cutover', status: 'aborted' }))).toEqual([
      'rollback:cutover:reads-to-old',
      'rollback:dual_write:flag-off',
      'rollback:dual_write:remove-sync',
      'rollback:prepare:forget-prepare',
    ]);
  });

  it('runs nothing on pause, resume, fail, or abort of a draft', () => {
    const h = hooks();
    expect(h.plan({ phase: 'cutover', status: 'active' }, 'pause', { phase: 'cutover', status: 'paused' })).toEqual([]);
    expect(h.plan({ phase: 'cutover', status: 'paused' }, 'resume', { phase: 'cutover', status: 'active' })).toEqual([]);
    expect(h.plan({ phase: 'cutover', status: 'active' }, 'fail', { phase: 'cutover', status: 'failed' })).toEqual([]);
    expect(h.plan({ phase: 'draft', status: 'active' }, 'abort', { phase: 'draft', status: 'aborted' })).toEqual([]);
  });
});
