/**
 * Marks the end of an exhaustive `switch`: the compiler rejects a call whose argument can still be
 * something, and at run time it throws.
 *
 * @throws Error always, naming the unexpected value.
 * @example
 * ```ts
 * switch (status) { case 'active': break; default: assertNever(status); }
 * ```
 */
export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}
