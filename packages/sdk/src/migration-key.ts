/**
 * One value of a key column, as the application has it.
 *
 * @example
 * ```ts
 * const id: KeyValue = 9007199254740993n;
 * ```
 */
export type KeyValue = string | number | bigint;

/**
 * The migration key of one row: a single value, or the values of a composite key in
 * `spec.source.key` order.
 *
 * @example
 * ```ts
 * const single: MigrationKey = 42;
 * const composite: MigrationKey = ['tenant-7', 42n];
 * ```
 */
export type MigrationKey = KeyValue | readonly KeyValue[];

/**
 * The key's values as text, in order: the shape of `DualWriteReport.failures[].key`.
 *
 * @example
 * ```ts
 * keyParts(['tenant-7', 42n]); // ['tenant-7', '42']
 * ```
 */
export function keyParts(key: MigrationKey): string[] {
  return Array.isArray(key) ? key.map((v: KeyValue) => String(v)) : [String(key)];
}

/**
 * The default `keyToString`: a single value as text (`42` → `'42'`), a composite key as the JSON
 * array of its values as text (`['t7', 42]` → `'["t7","42"]'`), which cannot be ambiguous. This
 * text is the flag context's `key` (Unleash stickiness), the input of sticky sampling, and
 * `ShadowResult.key`.
 *
 * @example
 * ```ts
 * defaultKeyToString(42); // '42'
 * ```
 */
export function defaultKeyToString(key: MigrationKey): string {
  if (!Array.isArray(key)) return String(key);
  const parts = keyParts(key);
  return parts.length === 1 ? (parts[0] as string) : JSON.stringify(parts);
}
