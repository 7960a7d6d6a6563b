import { describe, expect, it } from 'vitest';
import { PHASES, STATUSES } from '../machine/phases.js';
import { MAX_FLAG_NAME_LENGTH, desiredFlags, flagDescription, flagNames, flagOwnerMarker, flagOwnerOf, sameDesiredFlag, type FlagStateInput } from './desired-flags.js';

const base: FlagStateInput = { phase: 'draft', status: 'active', syncMode: 'application', samplePercent: 10, ramp: null };
/** The four rollouts (or 'archived') in FLAG_KEYS order, to compare tables at a glance. */
const rollouts = (input: Partial<FlagStateInput>) =>
  Object.values(desiredFlags({ ...base, ...input })).map((f) => (f.state === 'archived' ? 'archived' : f.rollout));

describe('flagNames', () => {
  it('carries the installation and the migration name', () => {
    expect(flagNames('k3x9q2ma', 'orders-v2')).toEqual({
      dualWrite: 'tideway.k3x9q2ma.orders-v2.dual-write',
      shadowRead: 'tideway.k3x9q2ma.orders-v2.shadow-read',
      readNew: 'tideway.k3x9q2ma.orders-v2.read-new',
      writeNew: 'tideway.k3x9q2ma.orders-v2.write-new',
    });
  });

  it('the longest installation and migration names fit Unleash', () => {
    const longest = Object.values(flagNames('a'.repeat(16), 'm'.repeat(63)));
    expect(Math.max(...longest.map((n) => n.length))).toBe(MAX_FLAG_NAME_LENGTH);
  });
});

describe('ownership marker', () => {
  const owner = { installation: 'k3x9q2ma', migrationId: '0b6f1c2d-1111-4222-8333-944455556666' };

  it('round-trips through a description', () => {
    expect(flagOwnerOf(flagDescription(owner, 'read-new'))).toEqual(owner);
    expect(flagOwnerOf(`a note someone added\n${flagOwnerMarker(owner)}`)).toEqual(owner);
  });

  it('is absent from flags Tideway did not create', () => {
    for (const d of [null, undefined, '', 'Managed by Tideway: gradual rollout per migration phase.', '[tideway-owner K3X/not-a-uuid]']) expect(flagOwnerOf(d)).toBeNull();
  });
});

describe('desiredFlags', () => {
  it('follows the phases in application mode (dual-write, shadow-read, read-new, write-new)', () => {
    expect(rollouts({ phase: 'draft' })).toEqual([0, 0, 0, 0]);
    expect(rollouts({ phase: 'prepare' })).toEqual([0, 0, 0, 0]);
    expect(rollouts({ phase: 'dual_write' })).toEqual([100, 0, 0, 0]);
    expect(rollouts({ phase: 'backfill' })).toEqual([100, 0, 0, 0]);
    expect(rollouts({ phase: 'shadow_read' })).toEqual([100, 10, 0, 0]);
    expect(rollouts({ phase: 'cutover', ramp: { percent: 0, status: 'awaiting_approval' } })).toEqual([100, 10, 0, 0]);
    expect(rollouts({ phase: 'cutover', ramp: { percent: 25, status: 'holding' } })).toEqual([100, 10, 25, 0]);
    expect(rollouts({ phase: 'cutover', ramp: { percent: 100, status: 'write_cutover' } })).toEqual([100, 10, 100, 100]);
    expect(rollouts({ phase: 'cleanup', ramp: { percent: 100, status: 'write_cutover' } })).toEqual([100, 0, 100, 100]);
  });

  it('leaves dual-write off in trigger mode (the trigger syncs)', () => {
    expect(rollouts({ syncMode: 'trigger', phase: 'dual_write' })).toEqual([0, 0, 0, 0]);
    expect(rollouts({ syncMode: 'trigger', phase: 'cutover', ramp: { percent: 5, status: 'holding' } })).toEqual([0, 10, 5, 0]);
  });

  it('sends reads and writes back to old after a rollback of the ramp, and before cutover whatever the ramp row says', () => {
    expect(rollouts({ phase: 'cutover', ramp: { percent: 50, status: 'rolled_back' } })).toEqual([100, 10, 0, 0]);
    // Rolled back from cutover to shadow_read: the row still says write_cutover or 50 %, the phase decides.
    expect(rollouts({ phase: 'shadow_read', ramp: { percent: 100, status: 'write_cutover' } })).toEqual([100, 10, 0, 0]);
  });

  it('follows the sample percent where shadow reads run', () => {
    expect(rollouts({ phase: 'shadow_read', samplePercent: 37.5 })[1]).toBe(37.5);
    expect(rollouts({ phase: 'cutover', samplePercent: 0, ramp: { percent: 1, status: 'holding' } })[1]).toBe(0);
  });

  it('a pause or a failure changes nothing; abort and completion archive every flag', () => {
    const cutover = { phase: 'cutover' as const, ramp: { percent: 25, status: 'holding' as const } };
    expect(rollouts({ ...cutover, status: 'paused' })).toEqual(rollouts(cutover));
    expect(rollouts({ ...cutover, status: 'failed' })).toEqual(rollouts(cutover));
    for (const phase of PHASES) {
      expect(rollouts({ phase, status: 'aborted' })).toEqual(['archived', 'archived', 'archived', 'archived']);
    }
    expect(rollouts({ phase: 'done', status: 'completed' })).toEqual(['archived', 'archived', 'archived', 'archived']);
  });

  it('answers for every phase and status', () => {
    for (const phase of PHASES) for (const status of STATUSES) expect(Object.keys(desiredFlags({ ...base, phase, status }))).toEqual(['dualWrite', 'shadowRead', 'readNew', 'writeNew']);
  });
});

describe('sameDesiredFlag', () => {
  it('compares state and rollout', () => {
    expect(sameDesiredFlag({ state: 'active', rollout: 5 }, { state: 'active', rollout: 5 })).toBe(true);
    expect(sameDesiredFlag({ state: 'active', rollout: 5 }, { state: 'active', rollout: 25 })).toBe(false);
    expect(sameDesiredFlag({ state: 'archived' }, { state: 'archived' })).toBe(true);
    expect(sameDesiredFlag({ state: 'archived' }, { state: 'active', rollout: 0 })).toBe(false);
    expect(sameDesiredFlag(null, { state: 'archived' })).toBe(false);
  });
});
