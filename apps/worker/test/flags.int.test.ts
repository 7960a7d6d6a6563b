import { randomUUID } from 'node:crypto';
import { buildApp, loadConfig } from '@tideway/control-plane';
import { flagDescription, flagNames, flagOwnerOf, type FlagControl, type FlagNames } from '@tideway/core';
import { FlagsKind, Installation, createEngine, type Engine } from '@tideway/engine';
import { createOrchestratorTestDatabase, waitFor, type OrchestratorTestDatabase, unguarded } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createCutoverFixture, type CutoverFixture } from './cutover-fixture.js';

/**
 * Flags as desired state (ADR 008) on a real Unleash: two installations (two orchestrator
 * databases) share the flag server; names carry the installation; Tideway never changes a flag it
 * did not create; abort archives; drift made by hand is put back by the periodic pass.
 */
let a: CutoverFixture;
let bOrch: OrchestratorTestDatabase;
let b: FastifyInstance;

const spec = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  syncMode: 'application',
  source: { datasource: 'main', table: 'src', key: 'id' },
  target: { datasource: 'main', table: 'dst', key: 'id' },
  mapping: { id: 'id', total: 'total' },
  ...extra,
});

async function bApi(method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await b.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

/** Unleash's admin API, bypassing the code under test. */
async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${a.unleash.url}${path}`, {
    method,
    headers: { authorization: a.unleash.adminToken, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

/** Whether an archived flag holds `flag` (Unleash's name check; no search, which Unleash rate-limits). */
async function archived(flag: string): Promise<boolean> {
  const answer = await admin('POST', '/api/admin/features/validate', { name: flag });
  return answer.status === 409 && /archived/.test(JSON.stringify(answer.body));
}

/** A flag made by hand (not by Tideway): on, with a gradual rollout. */
async function handMade(flag: string, description: string, rollout: number): Promise<void> {
  expect((await admin('POST', '/api/admin/projects/default/features', { name: flag, type: 'release', description })).status).toBe(201);
  const strategy = await admin('POST', `/api/admin/projects/default/features/${flag}/environments/development/strategies`, { name: 'flexibleRollout', parameters: { rollout: String(rollout), stickiness: 'default', groupId: flag } });
  expect(strategy.status).toBe(200);
  expect((await admin('POST', `/api/admin/projects/default/features/${flag}/environments/development/on`)).status).toBe(200);
}

/** Rollout of each flag (or `null` when there is none or it is archived) and whether it is on. */
async function states(names: FlagNames): Promise<Record<string, { rollout: number | null; enabled: boolean } | null>> {
  const out: Record<string, { rollout: number | null; enabled: boolean } | null> = {};
  for (const [key, flag] of Object.entries(names)) {
    const s = await a.flags.findState(flag);
    out[key] = s ? { rollout: s.rollout, enabled: s.enabled } : null;
  }
  return out;
}

const on = (rollout: number) => ({ rollout, enabled: true });

/** An engine of installation A with flags through a counting FlagControl, to run one pass by hand. */
function countingEngine(db: CutoverFixture['orch']['db']): { engine: Engine; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const real = a.flags as unknown as Record<string, (...args: unknown[]) => unknown>;
  const counted = new Proxy(a.flags, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]) => {
        calls.set(prop, (calls.get(prop) ?? 0) + 1);
        return (real[prop] as (...x: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as FlagControl;
  return { engine: createEngine({ db, datasources: { main: a.user.url }, flags: counted }), calls };
}

beforeAll(async () => {
  a = await createCutoverFixture('flags_a');
  await a.user.query(`create table src (id bigint primary key, total bigint); create table dst (id bigint primary key, total bigint);
    insert into src select g, g from generate_series(1, 200) g;`);
  bOrch = await createOrchestratorTestDatabase('flags_b');
  b = await buildApp(loadConfig({ ...a.env, TIDEWAY_DATABASE_URL: bOrch.url, TIDEWAY_UNLEASH_URL: a.unleash.url, TIDEWAY_UNLEASH_ADMIN_TOKEN: a.unleash.adminToken, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent' }));
});

afterAll(async () => {
  await b?.close();
  await bOrch?.drop();
  await a?.close();
});

describe('two installations on one Unleash', () => {
  it('a migration of the same name gets distinct flags in each, and neither changes the other’s', async () => {
    const name = `same-${a.suffix}`;
    const inA = await a.api('POST', '/v1/migrations', unguarded(spec(name)));
    const inB = await bApi('POST', '/v1/migrations', unguarded(spec(name)));
    expect(inA.status, JSON.stringify(inA.body)).toBe(201);
    expect(inB.status, JSON.stringify(inB.body)).toBe(201);
    const instA = inA.body['installation'] as string;
    const instB = inB.body['installation'] as string;
    expect(instA).toMatch(/^[a-z0-9]{8}$/);
    expect(instB).toMatch(/^[a-z0-9]{8}$/);
    expect(instA).not.toBe(instB);
    const namesA = flagNames(instA, name);
    const namesB = flagNames(instB, name);
    expect(inA.body['flags']).toEqual(namesA);
    expect(inB.body['flags']).toEqual(namesB);
    expect((await a.api('GET', `/v1/migrations/${inA.body['id'] as string}`)).body['flags']).toEqual(namesA);

    // All eight exist at 0 %, each marked with its own installation and migration.
    const zero = { dualWrite: on(0), shadowRead: on(0), readNew: on(0), writeNew: on(0) };
    expect(await states(namesA)).toEqual(zero);
    expect(await states(namesB)).toEqual(zero);
    for (const [names, inst, id] of [[namesA, instA, inA.body['id']], [namesB, instB, inB.body['id']]] as const) {
      for (const flag of Object.values(names)) expect(flagOwnerOf((await a.flags.getState(flag)).description)).toEqual({ installation: inst, migrationId: id });
    }

    // A enters dual_write (application mode: dual-write 100); B's flags do not move.
    const idA = inA.body['id'] as string;
    const idB = inB.body['id'] as string;
    for (const action of ['start', 'advance']) expect((await a.api('POST', `/v1/migrations/${idA}/${action}`, {})).status).toBe(200);
    expect(await states(namesA)).toEqual({ ...zero, dualWrite: on(100) });
    expect(await states(namesB)).toEqual(zero);
    // B's periodic pass does not touch A's flags, nor A's pass B's.
    for (const passOf of [bOrch.db, a.orch.db]) {
      const { engine } = countingEngine(passOf);
      const report = await engine.desiredState.reconcileAll({ driftCheckSeconds: 0 });
      expect(report.failures).toEqual([]);
      expect(report.changes).toEqual([]);
      await engine.close();
    }
    expect(await states(namesB)).toEqual(zero);

    // A aborts: its four flags are archived; B's stay as they are, and B goes on.
    expect((await a.api('POST', `/v1/migrations/${idA}/abort`, {})).body['status']).toBe('aborted');
    expect(await states(namesA)).toEqual({ dualWrite: null, shadowRead: null, readNew: null, writeNew: null });
    expect(await states(namesB)).toEqual(zero);
    for (const action of ['start', 'advance']) expect((await bApi('POST', `/v1/migrations/${idB}/${action}`, {})).status).toBe(200);
    expect(await states(namesB)).toEqual({ ...zero, dualWrite: on(100) });
    expect(await states(namesA)).toEqual({ dualWrite: null, shadowRead: null, readNew: null, writeNew: null });
  });
});

describe('ownership', () => {
  it('a name clash with a flag Tideway did not create is 409 FLAG_CONFLICT and nothing is created', async () => {
    const inst = await a.engine.installation.id();
    const name = `clash-${a.suffix}`;
    const names = flagNames(inst, name);
    await handMade(names.readNew, 'a flag someone made by hand', 33);
    const before = await a.flags.getState(names.readNew);

    const refused = await a.api('POST', '/v1/migrations', unguarded(spec(name)));
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body['error']).toMatchObject({ code: 'FLAG_CONFLICT', details: { field: 'name', flag: names.readNew, owner: null, archived: false } });
    expect(((await a.api('GET', `/v1/migrations?name=${name}`)).body['items'] as unknown[])).toEqual([]);
    expect(await a.flags.getState(names.readNew)).toEqual(before);
    expect(await a.flags.findState(names.dualWrite)).toBeNull();
    expect(await a.flags.findState(names.shadowRead)).toBeNull();
    expect(await a.flags.findState(names.writeNew)).toBeNull();
    for (const flag of Object.values(names)) expect(await archived(flag)).toBe(false);
    expect((await a.orch.query<{ n: number }>(`select count(*)::int as n from converge_intents`)).rows[0]?.n).toBe(0);
  });

  it('a clash with an archived flag Tideway did not create is refused the same way, before any flag is made', async () => {
    const inst = await a.engine.installation.id();
    const name = `clash-archived-${a.suffix}`;
    const names = flagNames(inst, name);
    await handMade(names.writeNew, 'archived by hand', 10);
    expect((await admin('DELETE', `/api/admin/projects/default/features/${names.writeNew}`)).status).toBe(202);

    const refused = await a.api('POST', '/v1/migrations', unguarded(spec(name)));
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body['error']).toMatchObject({ code: 'FLAG_CONFLICT', details: { flag: names.writeNew, archived: true } });
    for (const flag of [names.dualWrite, names.shadowRead, names.readNew, names.writeNew]) expect(await a.flags.findState(flag)).toBeNull();
    expect(await a.flags.archivedDescription(names.writeNew)).toBe('archived by hand');
    for (const flag of [names.dualWrite, names.shadowRead, names.readNew]) expect(await archived(flag)).toBe(false);
  });

  it('a flag of this installation left by a migration that does not exist (a crashed create) is taken over afresh at create; the sweep archives such orphans', async () => {
    const inst = await a.engine.installation.id();
    const name = `orphan-${a.suffix}`;
    const names = flagNames(inst, name);
    const ghost = randomUUID();
    await handMade(names.readNew, flagDescription({ installation: inst, migrationId: ghost }, 'read-new'), 70);

    const created = await a.api('POST', '/v1/migrations', unguarded(spec(name)));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body['id'] as string;
    expect(await states(names)).toEqual({ dualWrite: on(0), shadowRead: on(0), readNew: on(0), writeNew: on(0) });
    expect(flagOwnerOf((await a.flags.getState(names.readNew)).description)).toEqual({ installation: inst, migrationId: id });
    const [create] = await a.engine.migrationReadModel.allEvents(id);
    expect((create?.details['converged'] as { action: string; object: string }[]).filter((c) => c.object === `flag ${names.readNew}`).map((c) => c.action)).toEqual(['removed', 'created']);

    // An orphan nobody creates again: the orphan sweep (grace 0 here, 60 s by default) archives it; a flag of another installation it leaves alone.
    const stray = flagNames(inst, `stray-${a.suffix}`).shadowRead;
    const foreign = flagNames('otherinst', `stray-${a.suffix}`).shadowRead;
    await handMade(stray, flagDescription({ installation: inst, migrationId: randomUUID() }, 'shadow-read'), 5);
    await handMade(foreign, flagDescription({ installation: 'otherinst', migrationId: randomUUID() }, 'shadow-read'), 5);
    const kind = new FlagsKind({ db: a.orch.db, flags: a.flags, installation: new Installation(a.orch.db), orphanGraceSeconds: 0 });
    const known = new Set((await a.orch.query<{ id: string }>(`select id from migrations`)).rows.map((r) => r.id));
    const swept = await kind.sweepOrphans(known);
    expect(swept.map((c) => c.object)).toEqual([`flag ${stray}`]);
    expect(await a.flags.findState(stray)).toBeNull();
    expect(await a.flags.findState(foreign)).not.toBeNull();
    await a.flags.archive(foreign);
  });
});

describe('desired state on the flag server', () => {
  it('abort archives the four flags (dual-write was on), in the abort’s own transaction', async () => {
    const name = `abort-${a.suffix}`;
    const created = await a.api('POST', '/v1/migrations', unguarded(spec(name)));
    const id = created.body['id'] as string;
    const names = created.body['flags'] as FlagNames;
    for (const action of ['start', 'advance']) expect((await a.api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);
    expect((await states(names)).dualWrite).toEqual(on(100));

    const aborted = await a.api('POST', `/v1/migrations/${id}/abort`, {});
    expect(aborted.status, JSON.stringify(aborted.body)).toBe(200);
    expect(await states(names)).toEqual({ dualWrite: null, shadowRead: null, readNew: null, writeNew: null });
    for (const flag of Object.values(names)) expect(await archived(flag), flag).toBe(true);
    expect(flagOwnerOf(await a.flags.archivedDescription(names.readNew))?.migrationId).toBe(id);
    const event = (await a.engine.migrationReadModel.allEvents(id)).at(-1);
    expect(event).toMatchObject({ action: 'abort', toStatus: 'aborted' });
    expect((event?.details['converged'] as { action: string; object: string; detail: string }[]).map((c) => [c.action, c.object, c.detail])).toEqual(
      [names.readNew, names.writeNew, names.shadowRead, names.dualWrite].map((f) => ['removed', `flag ${f}`, 'archived']),
    );
  });

  it('a change made by hand in Unleash is put back by the next periodic pass and audited; a pass in step makes one list request', async () => {
    const name = `drift-${a.suffix}`;
    const created = await a.api('POST', '/v1/migrations', unguarded(spec(name)));
    const id = created.body['id'] as string;
    const names = created.body['flags'] as FlagNames;
    for (const action of ['start', 'advance']) expect((await a.api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);

    // A pass with everything in step: one list request, no per-flag read or write (the hourly drift
    // check keeps this pass to the cheap look, whatever the age of the file's other migrations).
    const { engine, calls } = countingEngine(a.orch.db);
    const report = await engine.desiredState.reconcileAll({ driftCheckSeconds: 3600 });
    expect(report.changes).toEqual([]);
    expect(Object.fromEntries(calls)).toEqual({ listFlags: 1 });
    await engine.close();

    // By hand: dual-write switched off. The worker's pass (every 250 ms) switches it on again.
    expect((await admin('POST', `/api/admin/projects/default/features/${names.dualWrite}/environments/development/off`)).status).toBe(200);
    const changedAt = Date.now();
    await waitFor('dual-write on again', async () => (await a.flags.getState(names.dualWrite)).enabled, 5000, 25);
    expect(Date.now() - changedAt).toBeLessThan(2000);
    const converge = await waitFor('converge event', async () => (await a.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'converge') ?? null, 5000, 25);
    expect(converge).toMatchObject({ actor: 'tideway:reconciler', fromPhase: 'dual_write', toPhase: 'dual_write' });
    expect(converge.details['changes']).toEqual([{ kind: 'flags', action: 'updated', object: `flag ${names.dualWrite}`, detail: 'switched on (it was off)' }]);
    expect(await states(names)).toEqual({ dualWrite: on(100), shadowRead: on(0), readNew: on(0), writeNew: on(0) });
  });
});
