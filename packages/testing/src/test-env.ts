import { randomBytes } from 'node:crypto';

/** Where tests find Redis; override with `TIDEWAY_REDIS_URL`. */
export const TEST_REDIS_URL = process.env['TIDEWAY_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/**
 * A Redis key prefix no other test uses, hash-tagged for Redis Cluster: `{tw-test-<random>}`.
 */
export function uniqueRedisPrefix(): string {
  return `{tw-test-${randomBytes(6).toString('hex')}}`;
}

/**
 * The flag-server variables of this test run (`TIDEWAY_UNLEASH_URL`, `TIDEWAY_UNLEASH_ADMIN_TOKEN`,
 * `TIDEWAY_UNLEASH_CLIENT_TOKEN`) from the environment, as vitest.unleash-setup.ts put them there:
 * spread them into the explicit environments fixtures build configurations from, so those use this
 * checkout's Unleash and not whatever answers on the default port. Empty when they are not set.
 */
export function unleashTestEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['TIDEWAY_UNLEASH_URL', 'TIDEWAY_UNLEASH_ADMIN_TOKEN', 'TIDEWAY_UNLEASH_CLIENT_TOKEN']) {
    const value = process.env[name];
    if (value) out[name] = value;
  }
  return out;
}
