import { DependencyUnavailableError, FlagConflictError, TidewayError, flagNames, flagOwnerMarker } from '@tideway/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnleashFlagControl } from '../src/index.js';
import { ensureLocalUnleash, pruneStaleFlags, type LocalUnleash } from '../src/testing.js';
import { freePort } from '@tideway/testing';
import { TEST_INSTALLATION, startFixedAnswer, startSilent, uniqueFlag, uniqueMigrationName } from './helpers.js';

let unleash: LocalUnleash;
let control: UnleashFlagControl;
const created: string[] = [];

interface RawEnvironment {
  name: string;
  enabled: boolean;
  strategies: { name: string; parameters: Record<string, string> }[];
}
interface RawFeature {
  type: string;
  description: string | null;
  environments: RawEnvironment[];
}

/** The flag as Unleash stores it, read without going through the code under test. */
async function rawFeature(flag: string): Promise<{ status: number; body: RawFeature }> {
  const res = await fetch(`${unleash.url}/api/admin/projects/default/features/${encodeURIComponent(flag)}`, { headers: { authorization: unleash.adminToken } });
  return { status: res.status, body: (await res.json()) as RawFeature };
}

/** What ensureFlags decides: type, description, and per environment on/off and strategies. */
async function rawShape(flag: string): Promise<unknown> {
  const { body } = await rawFeature(flag);
  return {
    type: body.type,
    description: body.description,
    environments: body.environments.map((e) => ({ name: e.name, enabled: e.enabled, strategies: e.strategies })),
  };
}

async function rawDevelopment(flag: string): Promise<RawEnvironment> {
  const { body } = await rawFeature(flag);
  const development = body.environments.find((e) => e.name === 'development');
  if (!development) throw new Error(`flag ${flag} has no development environment`);
  return development;
}

beforeAll(async () => {
  unleash = await ensureLocalUnleash();
  control = new UnleashFlagControl({ url: unleash.url, adminToken: unleash.adminToken });
});

afterAll(async () => {
  for (const flag of created) await control.archive(flag);
});

describe('UnleashFlagControl against a real Unleash', () => {
  it('ensureFlags creates the four flags of a migration as sticky 0 % rollouts, switched on, and is idempotent', async () => {
    const names = Object.values(flagNames(TEST_INSTALLATION, uniqueMigrationName('ensure')));
    created.push(...names);

    await control.ensureFlags(names);
    const first = await Promise.all(names.map((name) => rawShape(name)));
    await control.ensureFlags(names);
    const second = await Promise.all(names.map((name) => rawShape(name)));

    expect(second).toEqual(first);
    for (const name of names) {
      const { body } = await rawFeature(name);
      expect(body.type).toBe('release');
      expect(body.description).toMatch(/^Managed by Tideway/);
      const development = await rawDevelopment(name);
      expect(development.enabled).toBe(true);
      expect(development.strategies).toHaveLength(1);
      expect(development.strategies[0]).toMatchObject({ name: 'flexibleRollout', parameters: { rollout: '0', stickiness: 'default', groupId: name } });
      expect(await control.getState(name)).toMatchObject({ name, enabled: true, rollout: 0 });
    }
  });

  it('ensureFlags keeps the rollout and on/off state of an existing flag', async () => {
    const flag = uniqueFlag('keep');
    created.push(flag);
    await control.ensureFlags([flag]);
    await control.setRollout(flag, 40);
    await control.disable(flag);

    await control.ensureFlags([flag]);

    expect(await control.getState(flag)).toMatchObject({ name: flag, enabled: false, rollout: 40 });
  });

  it('ensureFlags completes a flag whose creation was interrupted (created, no strategy, off)', async () => {
    const flag = uniqueFlag('repair');
    created.push(flag);
    const res = await fetch(`${unleash.url}/api/admin/projects/default/features`, {
      method: 'POST',
      headers: { authorization: unleash.adminToken, 'content-type': 'application/json' },
      body: JSON.stringify({ name: flag, type: 'release', description: 'Tideway: provisioning (ensureFlags finishes it on its next call)' }),
    });
    expect(res.status).toBe(201);
    expect(await rawDevelopment(flag)).toMatchObject({ enabled: false, strategies: [] });

    await control.ensureFlags([flag]);

    expect(await control.getState(flag)).toMatchObject({ name: flag, enabled: true, rollout: 0 });
    expect((await rawFeature(flag)).body.description).toMatch(/^Managed by Tideway/);
  });

  it('setRollout and getRollout move the ramp step; one decimal is kept; bad percentages are refused', async () => {
    const flag = uniqueFlag('rollout');
    created.push(flag);
    await control.ensureFlags([flag]);

    await control.setRollout(flag, 25);
    expect(await control.getRollout(flag)).toBe(25);
    await control.setRollout(flag, 12.5);
    expect(await control.getRollout(flag)).toBe(12.5);
    expect((await rawDevelopment(flag)).strategies[0]!.parameters).toEqual({ rollout: '12.5', stickiness: 'default', groupId: flag });
    await control.setRollout(flag, 100);
    expect(await control.getRollout(flag)).toBe(100);

    for (const bad of [-1, 100.1, 12.25, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(control.setRollout(flag, bad)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    }
    expect(await control.getRollout(flag)).toBe(100);
  });

  it('disable and enable switch the environment', async () => {
    const flag = uniqueFlag('switch');
    created.push(flag);
    await control.ensureFlags([flag]);

    await control.disable(flag);
    expect((await rawDevelopment(flag)).enabled).toBe(false);
    await control.enable(flag);
    expect((await rawDevelopment(flag)).enabled).toBe(true);
    expect((await rawDevelopment(flag)).strategies).toHaveLength(1);
  });

  it('archive removes the flag; archiving again does nothing; ensureFlags afterwards starts afresh at 0 %', async () => {
    const flag = uniqueFlag('archive');
    await control.ensureFlags([flag]);
    await control.setRollout(flag, 60);

    await control.archive(flag);
    expect((await rawFeature(flag)).status).toBe(404);
    await expect(control.getState(flag)).rejects.toMatchObject({ code: 'INTERNAL' });
    await control.archive(flag);

    created.push(flag);
    await control.ensureFlags([flag]);
    expect(await control.getState(flag)).toMatchObject({ name: flag, enabled: true, rollout: 0 });
  });

  it('ensureFlags writes the given description (provisioning first); findState and listFlags read it back', async () => {
    const migration = uniqueMigrationName('describe');
    const names = flagNames(TEST_INSTALLATION, migration);
    const marker = flagOwnerMarker({ installation: TEST_INSTALLATION, migrationId: '0b6f1c2d-1111-4222-8333-944455556666' });
    const descriptions = Object.fromEntries(Object.values(names).map((n) => [n, `Managed by Tideway, ${n.split('.').at(-1)}. ${marker}`]));
    created.push(...Object.values(names));
    await control.ensureFlags(Object.values(names), { descriptions });
    expect(await control.findState(names.readNew)).toEqual({ name: names.readNew, enabled: true, rollout: 0, description: descriptions[names.readNew] });
    expect(await control.findState(uniqueFlag('absent'))).toBeNull();

    await control.disable(names.writeNew);
    const listed = await control.listFlags(`tideway.${TEST_INSTALLATION}.${migration}.`);
    expect(listed.map((f) => [f.name, f.description, f.enabled]).sort()).toEqual(
      Object.values(names).map((n) => [n, descriptions[n], n !== names.writeNew]).sort(),
    );
    for (const f of listed) expect(Math.abs(f.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    // Prefixes are matched exactly: another migration whose name extends this one is not listed.
    expect(await control.listFlags(`tideway.${TEST_INSTALLATION}.${migration}x.`)).toEqual([]);
  });

  it("ensureFlags leaves an archived flag alone when owns says it is not the caller's: FlagConflictError, nothing changed", async () => {
    const flag = uniqueFlag('archived-foreign');
    await control.ensureFlags([flag], { descriptions: { [flag]: 'made by someone else' } });
    await control.setRollout(flag, 30);
    await control.archive(flag);

    const error = await control.ensureFlags([flag], { owns: (d) => d.includes('[tideway-owner') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FlagConflictError);
    expect(error).toMatchObject({ code: 'FLAG_CONFLICT', details: { flag, owner: null, archived: true } });
    expect(await control.findState(flag)).toBeNull();
    // Still in the archive, as it was.
    expect(await control.archivedDescription(flag)).toBe('made by someone else');
  });

  it('archivedDescription: null for a free name and for an active flag, the description for an archived one', async () => {
    const free = uniqueFlag('free');
    expect(await control.archivedDescription(free)).toBeNull();
    const active = uniqueFlag('active');
    created.push(active);
    await control.ensureFlags([active], { descriptions: { [active]: 'an active one' } });
    expect(await control.archivedDescription(active)).toBeNull();
    await control.archive(active);
    expect(await control.archivedDescription(active)).toBe('an active one');
  });

  it('pruneStaleFlags deletes the flags older than the cutoff within its prefix, archive included, and keeps the newer ones', async () => {
    const prefix = `${uniqueFlag('prune')}.`;
    const [older, newer] = [`${prefix}older`, `${prefix}newer`];
    await control.ensureFlags([older]);
    await control.ensureFlags([newer]);
    created.push(newer);
    const createdAt = async (flag: string) => Date.parse(((await rawFeature(flag)).body as unknown as { createdAt: string }).createdAt);
    const [olderAt, newerAt] = [await createdAt(older), await createdAt(newer)];
    expect(olderAt).toBeLessThan(newerAt);

    const pruned = await pruneStaleFlags(unleash, { namePrefix: prefix, olderThanMs: 0, now: newerAt });
    expect(pruned).toEqual({ deleted: [older], kept: 1 });
    expect((await rawFeature(older)).status).toBe(404);
    expect(await control.archivedDescription(older)).toBeNull(); // gone from the archive too: the name is free
    expect((await rawFeature(newer)).status).toBe(200);
    expect(await pruneStaleFlags(unleash, { namePrefix: prefix, olderThanMs: 0, now: newerAt })).toEqual({ deleted: [], kept: 1 });
  });

  it('drives the configured environment only', async () => {
    const production = new UnleashFlagControl({ url: unleash.url, adminToken: unleash.adminToken, environment: 'production' });
    const flag = uniqueFlag('production');
    created.push(flag);
    await production.ensureFlags([flag]);
    await production.setRollout(flag, 35);
    expect(await production.getState(flag)).toMatchObject({ enabled: true, rollout: 35 });
    // development keeps what Unleash gives a new flag: off, no strategy.
    expect(await rawDevelopment(flag)).toMatchObject({ enabled: false, strategies: [] });
    expect((await production.listFlags(flag))[0]?.enabled).toBe(true);
    expect((await control.listFlags(flag))[0]?.enabled).toBe(false);
  });

  it('an unknown flag is an INTERNAL error carrying the server message', async () => {
    const flag = uniqueFlag('unknown');
    const error = await control.setRollout(flag, 10).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidewayError);
    expect(error).toMatchObject({ code: 'INTERNAL', details: { flag, status: 404 } });
    await expect(control.enable(flag)).rejects.toMatchObject({ code: 'INTERNAL' });
    const disabling = await control.disable(flag).catch((e: unknown) => e);
    expect(disabling).toMatchObject({ code: 'INTERNAL', details: { status: 404 } });
    expect((disabling as Error).message).toMatch(/refused to switch off flag .*\(404\): .+/);
  });

  it('a wrong admin token is an INTERNAL error with the server message, not a dependency outage', async () => {
    const wrong = new UnleashFlagControl({ url: unleash.url, adminToken: '*:*.not-a-token' });
    const error = await wrong.ensureFlags([uniqueFlag('token')]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidewayError);
    expect(error).not.toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ code: 'INTERNAL', details: { status: 401 } });
  });
});

describe('UnleashFlagControl when Unleash is unavailable', () => {
  it('a closed port is DependencyUnavailableError, quickly', async () => {
    const dead = new UnleashFlagControl({ url: `http://127.0.0.1:${await freePort()}`, adminToken: 'x' });
    const started = Date.now();
    for (const call of [() => dead.ensureFlags(['tideway.x.y.read-new']), () => dead.setRollout('tideway.x.y.read-new', 5), () => dead.getRollout('f'), () => dead.listFlags('tideway.x.'), () => dead.findState('f'), () => dead.archivedDescription('f'), () => dead.disable('f'), () => dead.archive('f')]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyUnavailableError);
      expect(error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', details: { dependency: 'unleash' } });
      expect((error as Error).message).toMatch(/ECONNREFUSED/);
    }
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a server that never answers is DependencyUnavailableError after the request timeout', async () => {
    const silent = await startSilent();
    try {
      const hung = new UnleashFlagControl({ url: silent.url, adminToken: 'x', requestTimeoutMs: 300 });
      const started = Date.now();
      const error = await hung.getRollout('f').catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(error).toBeInstanceOf(DependencyUnavailableError);
      expect((error as Error).message).toMatch(/no answer within 300 ms/);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(2000);
    } finally {
      await silent.stop();
    }
  });

  it('a 429 answer (Unleash rate limit) is DependencyUnavailableError, to retry', async () => {
    const limited = await startFixedAnswer(429);
    try {
      const error = await new UnleashFlagControl({ url: limited.url, adminToken: 'x' }).archivedDescription('f').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyUnavailableError);
      expect((error as Error).message).toMatch(/answered 429: fixed answer 429/);
    } finally {
      await limited.stop();
    }
  });

  it('a 5xx answer is DependencyUnavailableError with the status', async () => {
    const failing = await startFixedAnswer(503);
    try {
      const control503 = new UnleashFlagControl({ url: failing.url, adminToken: 'x' });
      const error = await control503.setRollout('f', 5).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyUnavailableError);
      expect((error as Error).message).toMatch(/answered 503: fixed answer 503/);
    } finally {
      await failing.stop();
    }
  });
});
