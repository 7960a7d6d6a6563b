/** Nesting beyond this depth is replaced by `'[Deep]'`. */
const MAX_DEPTH = 32;

/**
 * A JSON-safe copy of a compared value, for `ShadowResult.oldValue/newValue`: `bigint` → decimal
 * string, `Date` → ISO string (`null` when invalid), typed arrays and `Buffer`s → `'\x…'` hex (the
 * PostgreSQL `bytea` text form), `Map` → object, `Set` → array, objects with `toJSON` → its result, functions and symbols dropped,
 * cycles → `'[Circular]'`. When the JSON text would exceed `maxChars`, the value becomes a string: the
 * first `maxChars` characters of that JSON followed by `…`, so one huge row cannot blow up a batch.
 *
 * Never throws (a throwing getter or `toJSON` yields `'[Unserializable]'`).
 *
 * @param value - any value a read returned.
 * @param maxChars - size cap of the JSON text, characters. @defaultValue 8192
 * @returns a value `JSON.stringify` accepts; `undefined` stays `undefined` (the field is omitted).
 *
 * @example
 * ```ts
 * toWireValue({ id: 1n, at: new Date(0) }); // { id: '1', at: '1970-01-01T00:00:00.000Z' }
 * ```
 */
export function toWireValue(value: unknown, maxChars = 8192): unknown {
  try {
    const safe = convert(value, 0, new Set());
    if (safe === undefined) return undefined;
    const text = JSON.stringify(safe);
    return text.length > maxChars ? `${text.slice(0, maxChars)}…` : safe;
  } catch {
    return '[Unserializable]';
  }
}

function convert(v: unknown, depth: number, onPath: Set<object>): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    case 'bigint':
      return v.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    case 'object':
      break;
  }
  if (v === null) return null;
  const o = v as object;
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? null : o.toISOString();
  if (ArrayBuffer.isView(o)) return `\\x${Buffer.from(o.buffer, o.byteOffset, o.byteLength).toString('hex')}`;
  if (depth >= MAX_DEPTH) return '[Deep]';
  const toJSON = (o as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return convert(toJSON.call(o), depth + 1, onPath);
  if (onPath.has(o)) return '[Circular]';
  onPath.add(o);
  try {
    if (Array.isArray(o)) return o.map((x: unknown) => convert(x, depth + 1, onPath) ?? null);
    if (o instanceof Set) return [...o].map((x) => convert(x, depth + 1, onPath) ?? null);
    const entries: Iterable<[unknown, unknown]> = o instanceof Map ? o.entries() : Object.entries(o);
    const out: Record<string, unknown> = {};
    for (const [k, x] of entries) {
      const c = convert(x, depth + 1, onPath);
      if (c !== undefined) Object.defineProperty(out, String(k), { value: c, enumerable: true, writable: true, configurable: true });
    }
    return out;
  } finally {
    onPath.delete(o);
  }
}
