import { randomBytes } from 'node:crypto';

/** Where tests find Redis; override with `TIDEWAY_REDIS_URL`. */
export const TEST_REDIS_URL = process.env['TIDEWAY_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/**
 * A Redis key prefix no other test uses, hash-tagged for Redis Cluster: `{tw-test-<random>}`.
 */
export function uniqueRedisPrefix(): string {
  return `{tw-test-${randomBytes(6).toString('hex')}}`;
}
