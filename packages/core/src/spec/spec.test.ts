import { describe, expect, it } from 'vitest';
import { ImmutableFieldError } from '../errors/immutable-field-error.js';
import { InvalidSpecError } from '../errors/invalid-spec-error.js';
import { SPEC_DEFAULTS } from './migration-spec.js';
import { resolveSpec } from './resolve-spec.js';
import { adminOnlyChanges, applySpecPatch } from './spec-patch.js';
import type { MigrationSpecInput } from './spec-schema.js';

const input: MigrationSpecInput = {
  name: 'orders-v2',
  syncMode: 'trigger',
  source: { datasource: 'main', table: 'orders', key: 'id' },
  target: { datasource: 'main', table: 'orders_v2', key: ['id'] },
  mapping: { id: 'id', total_cents: 'total * 100' },
  backfill: { targetChunkMs: 250 },
};

describe('resolveSpec', () => {
  it('fills every default and normalises keys and schema', () => {
    const spec = resolveSpec(input);
    expect(spec.source).toEqual({ datasource: 'main', schema: 'public', table: 'orders', key: ['id'] });
    expect(spec.backfill).toEqual({ ...SPEC_DEFAULTS.backfill, targetChunkMs: 250 });
    expect(spec.ramp.steps).toEqual([1, 5, 25, 50, 100]);
    expect(spec.abortCriteria.maxDivergenceRate).toBe(0.001);
    expect(spec.abortCriteria.minSamples).toBe(1000);
    expect(spec.cleanup).toEqual({ deadlineDays: 30, autoExecute: false, dropOld: false, dropConfirmation: null });
    expect(spec.description).toBeNull();
  });

  it('lists every relational problem at once', () => {
    const bad: MigrationSpecInput = {
      ...input,
      target: { datasource: 'main', table: 'orders', key: ['id', 'x'] },
      mapping: { total_cents: 'total' },
      backfill: { minChunkRows: 500, initialChunkRows: 100 },
      ramp: { steps: [5, 1, 50] },
      cleanup: { dropOld: true },
    };
    try {
      resolveSpec(bad);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidSpecError);
      const fields = (error as InvalidSpecError).problems.map((p) => p.field);
      expect(fields).toEqual([
        'target.key',
        'mapping.id',
        'mapping.x',
        'target.table',
        'backfill.initialChunkRows',
        'ramp.steps[1]',
        'ramp.steps',
        'cleanup.dropConfirmation',
      ]);
    }
  });

  it('refuses a name shaped like a UUID: the CLI takes a UUID for an id', () => {
    expect(() => resolveSpec({ ...input, name: 'abcdef01-2345-4678-9abc-def012345678' })).toThrow(InvalidSpecError);
    expect(() => resolveSpec({ ...input, name: 'abcdef01-2345-orders' })).not.toThrow();
  });
});

describe('applySpecPatch', () => {
  const spec = resolveSpec(input);

  it('merges a section field by field and names the changed fields', () => {
    const { spec: next, changed } = applySpecPatch(spec, { backfill: { maxChunkRows: 9000 }, ramp: { holdSeconds: 5 } }, 'backfill');
    expect(next.backfill.maxChunkRows).toBe(9000);
    expect(next.backfill.targetChunkMs).toBe(250);
    expect(next.ramp.holdSeconds).toBe(5);
    expect(changed.sort()).toEqual(['backfill.maxChunkRows', 'ramp.holdSeconds']);
  });

  it('merges the latency guard field by field and names its fields', () => {
    expect(spec.throttle.latencyGuard).toEqual({ enabled: true, latencyBudget: 0.3, minRowsPerSecond: 200, probeSql: null, prometheus: null });
    const { spec: next, changed } = applySpecPatch(spec, { throttle: { latencyGuard: { latencyBudget: 0.5 } } }, 'backfill');
    expect(next.throttle.latencyGuard).toEqual({ enabled: true, latencyBudget: 0.5, minRowsPerSecond: 200, probeSql: null, prometheus: null });
    expect(next.throttle.maxLockWaiters).toBe(spec.throttle.maxLockWaiters);
    expect(changed).toEqual(['throttle.latencyGuard.latencyBudget']);
    expect(applySpecPatch(next, { throttle: { maxLockWaiters: 9 } }, 'backfill').spec.throttle.latencyGuard.latencyBudget).toBe(0.5);
  });

  it('takes the Prometheus signal whole, names it as one admin-only field, and refuses a URL that is not a server base URL', () => {
    const prometheus = { url: 'http://prometheus:9090', query: 'max(app_p99_seconds)', max: 0.25 };
    const { spec: next, changed } = applySpecPatch(spec, { throttle: { latencyGuard: { prometheus } } }, 'backfill');
    expect(next.throttle.latencyGuard.prometheus).toEqual(prometheus);
    expect(changed).toEqual(['throttle.latencyGuard.prometheus']);
    expect(adminOnlyChanges(changed)).toEqual(['throttle.latencyGuard.prometheus']);
    // A new object replaces the old one (no half-merged signal), and null removes it.
    expect(applySpecPatch(next, { throttle: { latencyGuard: { prometheus: { ...prometheus, max: 1 } } } }, 'backfill').spec.throttle.latencyGuard.prometheus).toEqual({ ...prometheus, max: 1 });
    expect(applySpecPatch(next, { throttle: { latencyGuard: { prometheus: null } } }, 'backfill').spec.throttle.latencyGuard.prometheus).toBeNull();
    for (const [url, problem] of [
      ['prometheus:9090', /absolute URL|http/],
      ['ftp://prometheus:9090', /http:\/\/ or https:\/\//],
      ['http://prometheus:9090/?x=1', /no query string/],
      ['not a url', /absolute URL/],
      ['http://admin:secret@prometheus:9090', /carries credentials/],
    ] as const) {
      expect(() => applySpecPatch(spec, { throttle: { latencyGuard: { prometheus: { ...prometheus, url } } } }, 'backfill'), url).toThrow(
        expect.objectContaining({ problems: [expect.objectContaining({ field: 'throttle.latencyGuard.prometheus.url', problem: expect.stringMatching(problem) })] }),
      );
    }
  });

  it('reports no change for a patch equal to the current values', () => {
    expect(applySpecPatch(spec, { backfill: { targetChunkMs: 250 } }, 'backfill').changed).toEqual([]);
  });

  it('allows mapping and source changes in draft but not after start', () => {
    expect(applySpecPatch(spec, { mapping: { id: 'id', total_cents: 'total * 1000' } }, 'draft').changed).toEqual(['mapping']);
    expect(() => applySpecPatch(spec, { mapping: { id: 'id' } }, 'prepare')).toThrow(ImmutableFieldError);
    try {
      applySpecPatch(spec, { source: { datasource: 'main', table: 'orders_old', key: 'id' } }, 'backfill');
      expect.unreachable();
    } catch (error) {
      expect((error as ImmutableFieldError).details).toMatchObject({ field: 'source' });
    }
  });

  it('never allows a new name', () => {
    expect(() => applySpecPatch(spec, { name: 'other' }, 'draft')).toThrow(/field "name" cannot be changed/);
  });

  it('re-checks the merged spec', () => {
    expect(() => applySpecPatch(spec, { backfill: { minChunkRows: 100_000 } }, 'backfill')).toThrow(InvalidSpecError);
  });
});

describe('adminOnlyChanges', () => {
  it('names each admin-only field a change list touches, once, and nothing else', () => {
    expect(adminOnlyChanges(['backfill.maxChunkRows', 'source.table', 'source.key', 'cleanup.deadlineDays'])).toEqual(['source']);
    expect(adminOnlyChanges(['mapping', 'reverseMapping.total', 'syncMode'])).toEqual(['mapping', 'reverseMapping', 'syncMode']);
    expect(adminOnlyChanges(['cleanup.dropConfirmation', 'cleanup.autoExecute', 'cleanup.dropOld'])).toEqual(['cleanup.dropOld', 'cleanup.autoExecute', 'cleanup.dropConfirmation']);
    expect(adminOnlyChanges(['sourceX', 'cleanup.dropOldish', 'ramp.steps', 'throttle.enabled'])).toEqual([]);
  });
});
