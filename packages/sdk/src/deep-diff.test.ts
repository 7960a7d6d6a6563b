import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TidewayError } from '@tideway/core';
import { deepDiff } from './deep-diff.js';

describe('deepDiff', () => {
  it('reports nested object and array paths', () => {
    const a = { id: 1, a: { b: 1, c: 'x' }, items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }, { sku: 'c', qty: 3 }] };
    const b = { id: 1, a: { b: 2, c: 'x' }, items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }, { sku: 'z', qty: 3 }] };
    expect(deepDiff(a, b)).toEqual(['a.b', 'items[2].sku']);
  });

  it('reports the root as the empty path and kind changes once', () => {
    expect(deepDiff(1, 2)).toEqual(['']);
    expect(deepDiff({ a: { deep: [1, 2] } }, { a: [1, 2] })).toEqual(['a']);
    expect(deepDiff({ a: null }, { a: {} })).toEqual(['a']);
    expect(deepDiff([1], { 0: 1 })).toEqual(['']);
  });

  it('reports keys present on one side once, and extra array indices each', () => {
    expect(deepDiff({ a: 1, gone: { x: 1 } }, { a: 1, added: [1, 2] })).toEqual(['gone', 'added']);
    expect(deepDiff({ items: [1, 2] }, { items: [1, 2, 3, 4] })).toEqual(['items[2]', 'items[3]']);
  });

  it('treats a missing key like an undefined value', () => {
    expect(deepDiff({ a: 1, b: undefined }, { a: 1 })).toEqual([]);
    expect(deepDiff({ a: 1 }, { a: 1, b: undefined })).toEqual([]);
    expect(deepDiff({ a: undefined }, { a: null })).toEqual(['a']);
  });

  it('quotes keys that are not identifiers', () => {
    expect(deepDiff({ meta: { 'x-y': 1, 'a.b': 1, '0': 1 } }, { meta: { 'x-y': 2, 'a.b': 2, '0': 2 } })).toEqual([
      'meta["0"]',
      'meta["x-y"]',
      'meta["a.b"]',
    ]);
  });

  it('compares dates, bytes, NaN, bigint, maps and sets by value', () => {
    expect(deepDiff({ at: new Date(5), n: Number.NaN, big: 10n }, { at: new Date(5), n: Number.NaN, big: 10n })).toEqual([]);
    expect(deepDiff({ at: new Date(5) }, { at: new Date(6) })).toEqual(['at']);
    expect(deepDiff({ at: new Date(5) }, { at: '1970-01-01T00:00:00.005Z' })).toEqual(['at']);
    expect(deepDiff({ b: Buffer.from('abc') }, { b: Buffer.from('abc') })).toEqual([]);
    expect(deepDiff({ b: Buffer.from('abc') }, { b: Buffer.from('abd') })).toEqual(['b']);
    expect(deepDiff({ n: 1 }, { n: '1' })).toEqual(['n']);
    expect(deepDiff({ n: 1n }, { n: 1 })).toEqual(['n']);
    expect(deepDiff(new Map([['k', { v: 1 }]]), new Map([['k', { v: 2 }]]))).toEqual(['k.v']);
    expect(deepDiff({ s: new Set([1, 2]) }, { s: new Set([2, 1]) })).toEqual([]);
    expect(deepDiff({ s: new Set([1, 2]) }, { s: new Set([1, 3]) })).toEqual(['s']);
  });

  it('ignores listed paths, everything under them, and * wildcards', () => {
    const a = { id: 1, updatedAt: 1, audit: { by: 'a', at: 1 }, items: [{ sku: 'a', etag: 1 }, { sku: 'b', etag: 2 }], meta: { 'x-y': 1 } };
    const b = { id: 2, updatedAt: 2, audit: { by: 'b', at: 2 }, items: [{ sku: 'a', etag: 9 }, { sku: 'c', etag: 9 }], meta: { 'x-y': 2 } };
    expect(deepDiff(a, b)).toEqual(['id', 'updatedAt', 'audit.by', 'audit.at', 'items[0].etag', 'items[1].sku', 'items[1].etag', 'meta["x-y"]']);
    expect(deepDiff(a, b, { ignore: ['updatedAt', 'audit', 'items[*].etag', 'meta["x-y"]'] })).toEqual(['id', 'items[1].sku']);
    expect(deepDiff(a, b, { ignore: ['items[1]', '*[*].etag', 'id'] })).toEqual(['updatedAt', 'audit.by', 'audit.at', 'meta["x-y"]']);
    expect(deepDiff(a, b, { ignore: ['*'] })).toEqual([]);
    // An ignored key that exists on one side only is ignored too.
    expect(deepDiff({ a: 1 }, { a: 1, updatedAt: 3 }, { ignore: ['updatedAt'] })).toEqual([]);
  });

  it('stops at maxPaths', () => {
    const a = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, i]));
    const b = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, -i - 1]));
    const paths = deepDiff(a, b, { maxPaths: 100 });
    expect(paths).toHaveLength(100);
    expect(paths[99]).toBe('f99');
  });

  it('cuts cycles instead of recursing forever', () => {
    const a: Record<string, unknown> = { v: 1 };
    a.self = a;
    const b: Record<string, unknown> = { v: 2 };
    b.self = b;
    expect(deepDiff(a, b)).toEqual(['v']);
  });

  it('rejects ignore paths it cannot parse', () => {
    for (const bad of ['a..b', '.a', 'a.', 'items[', 'items[x]', 'm["x]']) {
      expect(() => deepDiff({}, {}, { ignore: [bad] }), bad).toThrow(TidewayError);
    }
  });

  it('property: a value never differs from itself or from its clone', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        expect(deepDiff(x, x)).toEqual([]);
        expect(deepDiff(x, structuredClone(x))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('property: changing one leaf yields exactly that path', () => {
    const SENTINEL = '\u0000changed-leaf\u0000';
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (x, pick) => {
        const leaves = leafPaths(x);
        const target = leaves[pick % leaves.length];
        if (target === undefined) return;
        const y = structuredClone(x);
        const replaced = setAt(y, target.steps, SENTINEL);
        expect(deepDiff(x, replaced)).toEqual([target.path]);
        expect(deepDiff(replaced, x)).toEqual([target.path]);
        // Ignoring that path makes them equal again.
        expect(deepDiff(x, replaced, { ignore: [target.path === '' ? '*' : target.path] })).toEqual(target.path === '' ? [''] : []);
      }),
      { numRuns: 300 },
    );
  });
});

type Step = { kind: 'key'; key: string } | { kind: 'index'; index: number };

/** Every leaf (primitive, empty array, empty object) of a JSON value, with its expected path. */
function leafPaths(x: unknown, steps: Step[] = [], path = ''): Array<{ steps: Step[]; path: string }> {
  if (Array.isArray(x) && x.length > 0) {
    return x.flatMap((v: unknown, i) => leafPaths(v, [...steps, { kind: 'index', index: i }], `${path}[${i}]`));
  }
  if (x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length > 0) {
    return Object.keys(x).flatMap((k) => {
      const child = /^[A-Za-z_$][\w$]*$/.test(k) ? (path === '' ? k : `${path}.${k}`) : `${path}[${JSON.stringify(k)}]`;
      return leafPaths((x as Record<string, unknown>)[k], [...steps, { kind: 'key', key: k }], child);
    });
  }
  return [{ steps, path }];
}

/** Sets the value at `steps` (own data property, so `__proto__` keys work) and returns the root. */
function setAt(root: unknown, steps: readonly Step[], value: unknown): unknown {
  if (steps.length === 0) return value;
  let node = root as Record<string | number, unknown>;
  steps.forEach((step, i) => {
    const k = step.kind === 'key' ? step.key : step.index;
    if (i === steps.length - 1) Object.defineProperty(node, k, { value, enumerable: true, writable: true, configurable: true });
    else node = node[k] as Record<string | number, unknown>;
  });
  return root;
}
