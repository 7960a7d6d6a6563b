import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createMigrationClient } from './migration-client.js';
import { murmurHash3X86_32 } from './murmur-hash3.js';
import { stickyBucket } from './sticky-bucket.js';
import { FAKE_INSTALLATION, fakeFetch, fakeFlags, unleashRollout } from './test-fakes.js';

const MIGRATION = { id: 'm-1', name: 'orders-v2', installation: FAKE_INSTALLATION };
const KEYS = Array.from({ length: 10_000 }, (_, i) => `order-${i}`);

describe('murmurHash3X86_32', () => {
  it('matches the published MurmurHash3 x86-32 vectors', () => {
    expect(murmurHash3X86_32('')).toBe(0);
    expect(murmurHash3X86_32('', 1)).toBe(0x514e28b7);
    expect(murmurHash3X86_32('hello')).toBe(0x248bfa47);
    expect(murmurHash3X86_32('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
  });

  it("gives Unleash's normalizedValue cross-client values (unleash-client-node test/strategy/util.test)", () => {
    const normalizedValue = (id: string, groupId: string) => (murmurHash3X86_32(`${groupId}:${id}`) % 100) + 1;
    expect(normalizedValue('123', 'gr1')).toBe(73);
    expect(normalizedValue('999', 'groupX')).toBe(25);
  });
});

describe('stickyBucket', () => {
  it('is in [0, 99.99] with two decimals and always the same for the same input', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (seed, key) => {
        const b = stickyBucket(seed, key);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThanOrEqual(99.99);
        expect(Math.round(b * 100)).toBeCloseTo(b * 100, 6);
        expect(stickyBucket(seed, key)).toBe(b);
      }),
    );
  });

  it('is uniform: each rate is hit within ±2 % over 10,000 keys', () => {
    const buckets = KEYS.map((k) => stickyBucket('orders-v2', k));
    for (const percent of [1, 10, 25, 50, 90]) {
      const rate = (buckets.filter((b) => b < percent).length / KEYS.length) * 100;
      expect(Math.abs(rate - percent), `rate ${rate} for ${percent}`).toBeLessThanOrEqual(2);
    }
  });

  it('samples independent subsets for different seeds', () => {
    const a = KEYS.filter((k) => stickyBucket('migration-a', k) < 50);
    const bSet = new Set(KEYS.filter((k) => stickyBucket('migration-b', k) < 50));
    const both = a.filter((k) => bSet.has(k)).length / KEYS.length;
    expect(both).toBeGreaterThan(0.23);
    expect(both).toBeLessThan(0.27);
  });
});

describe('shadow sampling in the client', () => {
  /** Reads every key once and returns the keys that were shadowed (their readNew ran). */
  async function shadowedKeys(client: ReturnType<typeof createMigrationClient>): Promise<Set<string>> {
    const shadowed = new Set<string>();
    for (const key of KEYS) {
      await client.read({ key, readOld: () => 1, readNew: () => (shadowed.add(key), 1) });
    }
    await client.idle();
    return shadowed;
  }

  it('shadows shadowSamplePercent of keys (±2 %) and the same keys every time', async () => {
    const { fetch } = fakeFetch();
    const client = createMigrationClient({ baseUrl: 'http://cp.test', token: 't', migration: MIGRATION, flags: fakeFlags(MIGRATION.name, { shadowRead: true }), fetch, shadowSamplePercent: 25 });
    const first = await shadowedKeys(client);
    const second = await shadowedKeys(client);
    expect(Math.abs((first.size / KEYS.length) * 100 - 25)).toBeLessThanOrEqual(2);
    expect([...second].sort()).toEqual([...first].sort());
    expect([...first].every((k) => stickyBucket(MIGRATION.name, k) < 25)).toBe(true);
    expect(client.stats().shadowReads).toBe(first.size * 2);
    await client.close();
  });

  it("lets the flag's sticky gradual rollout decide when shadowSamplePercent is not given", async () => {
    const flag = unleashRollout('tideway.orders-v2.shadow-read', 10);
    const client = createMigrationClient({ baseUrl: 'http://cp.test', token: 't', migration: MIGRATION, flags: fakeFlags(MIGRATION.name, { shadowRead: flag }), fetch: fakeFetch().fetch });
    const first = await shadowedKeys(client);
    const second = await shadowedKeys(client);
    expect(Math.abs((first.size / KEYS.length) * 100 - 10)).toBeLessThanOrEqual(2);
    expect([...second].sort()).toEqual([...first].sort());
    expect([...first].every(flag)).toBe(true);
    await client.close();
  });

  it('samples within the flag rollout when both are set (independent hashes: product of the rates)', async () => {
    const flag = unleashRollout('tideway.orders-v2.shadow-read', 50);
    const client = createMigrationClient({ baseUrl: 'http://cp.test', token: 't', migration: MIGRATION, flags: fakeFlags(MIGRATION.name, { shadowRead: flag }), fetch: fakeFetch().fetch, shadowSamplePercent: 40 });
    const shadowed = await shadowedKeys(client);
    expect(Math.abs((shadowed.size / KEYS.length) * 100 - 20)).toBeLessThanOrEqual(2);
    expect([...shadowed].every((k) => flag(k) && stickyBucket(MIGRATION.name, k) < 40)).toBe(true);
    await client.close();
  });

  it('shadows nothing at 0 % and everything at 100 %', async () => {
    for (const [percent, expected] of [[0, 0], [100, KEYS.length]] as const) {
      const client = createMigrationClient({ baseUrl: 'http://cp.test', token: 't', migration: MIGRATION, flags: fakeFlags(MIGRATION.name, { shadowRead: true }), fetch: fakeFetch().fetch, shadowSamplePercent: percent });
      expect((await shadowedKeys(client)).size).toBe(expected);
      await client.close();
    }
  });
});
