import { murmurHash3X86_32 } from './murmur-hash3.js';

/** Buckets per whole percent: buckets are 0.01 % wide. */
const BUCKETS = 10_000;

/**
 * The sticky sampling bucket of `key` within `seed`: a number from 0 to 99.99 in steps of 0.01,
 * always the same for the same `(seed, key)`, spread uniformly over keys.
 *
 * It hashes `<seed>:<key>` with MurmurHash3 x86-32 (seed 0), the same input layout and hash as
 * Unleash's `normalizedValue(id, groupId)` (which returns `hash % 100 + 1`); Tideway keeps two more
 * decimal digits (`hash % 10000 / 100`) so rates below 1 % sample correctly. A key is in a
 * `p` percent sample when `stickyBucket(seed, key) < p`, so `p = 0` samples nothing and `p = 100`
 * samples everything. The SDK uses the migration name as `seed`, so different migrations sample
 * independent subsets of keys.
 *
 * Pure: no I/O, no state.
 *
 * @param seed - the sampling group, e.g. the migration name.
 * @param key - the key as text (see `keyToString`).
 * @returns a bucket in [0, 99.99].
 *
 * @example
 * ```ts
 * const sampled = stickyBucket('orders-v2', '42') < 10; // the same answer on every call and host
 * ```
 */
export function stickyBucket(seed: string, key: string): number {
  return (murmurHash3X86_32(`${seed}:${key}`) % BUCKETS) / 100;
}
