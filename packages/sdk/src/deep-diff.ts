import { TidewayError } from '@tideway/core';

/**
 * Options of {@link deepDiff}.
 *
 * @example
 * ```ts
 * const options: DeepDiffOptions = { ignore: ['updatedAt', 'items[*].etag'], maxPaths: 100 };
 * ```
 */
export interface DeepDiffOptions {
  /**
   * Field paths to leave out of the comparison, in the syntax {@link deepDiff} reports: `updatedAt`,
   * `a.b`, `items[2].sku`, `meta["x-y"]`. `*` stands for any one key or index (`items[*].etag`,
   * `*.updatedAt`). Ignoring a path ignores everything under it.
   * @defaultValue []
   */
  readonly ignore?: readonly string[];
  /** Stop after this many differing paths (the SDK sends at most 100 per shadow result). @defaultValue Infinity */
  readonly maxPaths?: number;
}

/** One step of an ignore pattern: a key, an index, or `*` (any key or index). */
type PatternSegment = { readonly kind: 'key'; readonly key: string } | { readonly kind: 'index'; readonly index: number } | { readonly kind: 'any' };
/** A partly matched ignore pattern: `pattern[at]` is the next segment to match. */
type Cursor = { readonly pattern: readonly PatternSegment[]; readonly at: number };

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * The field paths where `a` and `b` differ, by deep structural equality. Pure; never mutates its
 * arguments.
 *
 * Paths: `''` is the root value itself; object keys that are identifiers are joined with `.`
 * (`a.b`), other keys are quoted (`meta["x-y"]`), array indices are bracketed (`items[2].sku`).
 * When a key exists on one side only, or the two values have different kinds (object vs array vs
 * primitive), the path of that key or value is reported once, not each leaf under it; an array
 * that is longer on one side reports each extra index.
 *
 * Equality: primitives with `===` (and `NaN` equals `NaN`); `Date`s by time; typed arrays and
 * `Buffer`s by bytes; arrays index by index; `Map`s key by key; `Set`s by membership (reported as a
 * whole); other objects by own enumerable keys, whatever their prototype. A missing key equals a
 * key whose value is `undefined` (they serialise the same). Cycles are cut (a value already on the
 * current path compares equal).
 *
 * @param a - the old value (after any normalisation).
 * @param b - the new value.
 * @param options - `ignore` paths and `maxPaths`.
 * @returns the differing paths in traversal order (`a`'s keys first); empty when equal.
 * @throws TidewayError `VALIDATION_FAILED` when an `ignore` pattern cannot be parsed.
 *
 * @example
 * ```ts
 * deepDiff(
 *   { id: 1, items: [{ sku: 'a' }, { sku: 'b' }], updatedAt: 1 },
 *   { id: 1, items: [{ sku: 'a' }, { sku: 'c' }], updatedAt: 2 },
 *   { ignore: ['updatedAt'] },
 * ); // ['items[1].sku']
 * ```
 */
export function deepDiff(a: unknown, b: unknown, options: DeepDiffOptions = {}): string[] {
  const maxPaths = options.maxPaths ?? Number.POSITIVE_INFINITY;
  const cursors: Cursor[] = (options.ignore ?? []).map((p) => ({ pattern: parseIgnorePattern(p), at: 0 }));
  const out: string[] = [];
  if (maxPaths <= 0) return out;
  // An empty pattern ignores the root: nothing is compared.
  if (cursors.some((c) => c.pattern.length === 0)) return out;
  walk(a, b, null, cursors, new Set(), out, maxPaths);
  return out;
}

/**
 * A path as a linked list from the leaf up; turned into text only when a difference is reported,
 * so equal subtrees cost no string building.
 */
type Path = { readonly parent: Path; readonly step: string | number } | null;

function pathText(path: Path): string {
  if (path === null) return '';
  const parent = pathText(path.parent);
  const step = path.step;
  if (typeof step === 'number') return `${parent}[${step}]`;
  if (IDENTIFIER.test(step)) return parent === '' ? step : `${parent}.${step}`;
  return `${parent}[${JSON.stringify(step)}]`;
}

function walk(a: unknown, b: unknown, path: Path, cursors: readonly Cursor[], onPath: Set<object>, out: string[], maxPaths: number): void {
  if (out.length >= maxPaths) return;
  if (a === b) return;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    if (!(Number.isNaN(a) && Number.isNaN(b))) out.push(pathText(path));
    return;
  }
  if (onPath.has(a)) return;
  const kindA = kindOf(a);
  if (kindA !== kindOf(b)) {
    out.push(pathText(path));
    return;
  }
  switch (kindA) {
    case 'date': {
      const ta = (a as Date).getTime();
      const tb = (b as Date).getTime();
      if (ta !== tb && !(Number.isNaN(ta) && Number.isNaN(tb))) out.push(pathText(path));
      return;
    }
    case 'bytes':
      if (!sameBytes(a as ArrayBufferView, b as ArrayBufferView)) out.push(pathText(path));
      return;
    case 'set': {
      const sa = a as Set<unknown>;
      const sb = b as Set<unknown>;
      if (sa.size !== sb.size || [...sa].some((v) => !sb.has(v))) out.push(pathText(path));
      return;
    }
    case 'array': {
      const xa = a as readonly unknown[];
      const xb = b as readonly unknown[];
      onPath.add(a);
      const n = Math.max(xa.length, xb.length);
      for (let i = 0; i < n && out.length < maxPaths; i++) {
        const inA = i < xa.length;
        const inB = i < xb.length;
        if (inA && inB && xa[i] === xb[i]) continue; // equal: nothing to report, ignored or not
        const next = advance(cursors, 'index', i);
        if (next === null) continue;
        const child: Path = { parent: path, step: i };
        if (!inA || !inB) out.push(pathText(child));
        else walk(xa[i], xb[i], child, next, onPath, out, maxPaths);
      }
      onPath.delete(a);
      return;
    }
    case 'map': {
      const ma = a as Map<unknown, unknown>;
      const mb = b as Map<unknown, unknown>;
      onPath.add(a);
      const keys = new Set<unknown>([...ma.keys(), ...mb.keys()]);
      for (const k of keys) {
        if (out.length >= maxPaths) break;
        compareEntry(String(k), ma.has(k), mb.has(k), ma.get(k), mb.get(k), path, cursors, onPath, out, maxPaths);
      }
      onPath.delete(a);
      return;
    }
    case 'object': {
      const oa = a as Record<string, unknown>;
      const ob = b as Record<string, unknown>;
      onPath.add(a);
      for (const k of Object.keys(oa)) {
        if (out.length >= maxPaths) break;
        const inB = hasOwn(ob, k);
        compareEntry(k, true, inB, oa[k], inB ? ob[k] : undefined, path, cursors, onPath, out, maxPaths);
      }
      for (const k of Object.keys(ob)) {
        if (out.length >= maxPaths) break;
        if (hasOwn(oa, k)) continue;
        compareEntry(k, false, true, undefined, ob[k], path, cursors, onPath, out, maxPaths);
      }
      onPath.delete(a);
      return;
    }
  }
}

function compareEntry(
  key: string,
  inA: boolean,
  inB: boolean,
  va: unknown,
  vb: unknown,
  path: Path,
  cursors: readonly Cursor[],
  onPath: Set<object>,
  out: string[],
  maxPaths: number,
): void {
  // Equal values report nothing, ignored or not; a missing key and an `undefined` value are the
  // same thing on the wire.
  if (va === vb) return;
  const next = advance(cursors, 'key', key);
  if (next === null) return;
  const child: Path = { parent: path, step: key };
  if (!inA || !inB) {
    out.push(pathText(child));
    return;
  }
  walk(va, vb, child, next, onPath, out, maxPaths);
}

function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

type Kind = 'date' | 'bytes' | 'set' | 'map' | 'array' | 'object';

function kindOf(v: object): Kind {
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (ArrayBuffer.isView(v)) return 'bytes';
  if (v instanceof Map) return 'map';
  if (v instanceof Set) return 'set';
  return 'object';
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Moves every cursor past one step (a key or an index). Returns `null` when some pattern is now
 * fully matched (the child is ignored), otherwise the cursors still alive below the child.
 */
function advance(cursors: readonly Cursor[], kind: 'key' | 'index', step: string | number): readonly Cursor[] | null {
  if (cursors.length === 0) return cursors;
  const next: Cursor[] = [];
  for (const c of cursors) {
    const want = c.pattern[c.at];
    if (want === undefined || !segmentMatches(want, kind, step)) continue;
    if (c.at + 1 === c.pattern.length) return null;
    next.push({ pattern: c.pattern, at: c.at + 1 });
  }
  return next;
}

function segmentMatches(want: PatternSegment, kind: 'key' | 'index', step: string | number): boolean {
  switch (want.kind) {
    case 'any':
      return true;
    case 'key':
      return kind === 'key' && step === want.key;
    case 'index':
      return kind === 'index' && step === want.index;
  }
}

/** Parses `a.b`, `items[2].sku`, `items[*]`, `*.x`, `meta["x-y"]` into segments. */
function parseIgnorePattern(pattern: string): PatternSegment[] {
  const segments: PatternSegment[] = [];
  const bad = (why: string): never => {
    throw new TidewayError('VALIDATION_FAILED', `invalid ignore path ${JSON.stringify(pattern)}: ${why}`, { path: pattern });
  };
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i];
    if (ch === '[') {
      const close = pattern[i + 1] === '"' ? closingQuote(pattern, i + 1) + 1 : pattern.indexOf(']', i);
      if (close <= i || pattern[close] !== ']') bad('unclosed [');
      const inner = pattern.slice(i + 1, close);
      if (inner === '*') segments.push({ kind: 'any' });
      else if (/^\d+$/.test(inner)) segments.push({ kind: 'index', index: Number(inner) });
      else if (inner.startsWith('"')) {
        let key: unknown;
        try {
          key = JSON.parse(inner);
        } catch {
          bad('bad quoted key');
        }
        segments.push({ kind: 'key', key: String(key) });
      } else bad(`bad bracket ${inner}`);
      i = close + 1;
      continue;
    }
    if (ch === '.') {
      const after = pattern[i + 1];
      if (segments.length === 0 || after === undefined || after === '.' || after === '[') bad('misplaced .');
      i++;
      continue;
    }
    let end = i;
    while (end < pattern.length && pattern[end] !== '.' && pattern[end] !== '[') end++;
    const name = pattern.slice(i, end);
    segments.push(name === '*' ? { kind: 'any' } : { kind: 'key', key: name });
    i = end;
  }
  return segments;
}

/** Index of the `"` closing the JSON string that opens at `open`, or -1. */
function closingQuote(s: string, open: number): number {
  for (let i = open + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '"') return i;
  }
  return -1;
}
