import { UnleashFlagReader } from '@tideway/flags';
import { ensureLocalUnleash } from '@tideway/flags/testing';
import { createMigrationClient, type SdkErrorEvent } from '@tideway/sdk';
import { startPrivateRedis, waitFor, type PrivateRedis } from '@tideway/testing';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createCutoverFixture, driveToCutover, flagsOf, keysOn, waitForShare, type CutoverFixture } from './cutover-fixture.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** Hold of every ramp step here, seconds. */
const HOLD_SECONDS = 3;
/** How late a step may come after its hold ended: the worker polls timers every 250 ms. */
const SLACK_MS = 2000;

const mapping = { id: 'id', total_cents: 'total * 100', note: 'note' };
const reverseMapping = { id: 'id', total: 'total_cents / 100', note: 'note' };

interface RampResource {
  step: number;
  percent: number;
  status: string;
  waitsFor: string | null;
  waiting: { since: string; reason: string } | null;
  nextAt: string | null;
  history: { step: number; percent: number; at: string; event: string }[];
}

/** The ramp without what it waits for: what a hold that could not take its step leaves unchanged. */
function rampRow(r: RampResource): Omit<RampResource, 'waitsFor' | 'waiting'> {
  const { waitsFor: _waitsFor, waiting: _waiting, ...rest } = r;
  return rest;
}

/** The ramp on the resource, history included. */
async function rampOf(f: CutoverFixture, id: string): Promise<RampResource> {
  const m = await f.api('GET', `/v1/migrations/${id}`);
  expect(m.status, JSON.stringify(m.body)).toBe(200);
  return (m.body['progress'] as { ramp: RampResource }).ramp;
}

async function seed(f: CutoverFixture): Promise<void> {
  await f.user.query(`
    create table src (id bigint primary key, total bigint, note text);
    insert into src select g, g % 1000, 'n' || g from generate_series(1, 2000) g;
    analyze src;`);
}

let targets = 0;
async function migrationToCutover(f: CutoverFixture, name: string, steps: number[], holdSeconds: number, extra: Record<string, unknown> = {}): Promise<string> {
  targets++;
  const target = `dst_${targets}`;
  await f.user.query(`create table ${target} (id bigint primary key, total_cents bigint, note text)`);
  return driveToCutover(f, {
    name,
    syncMode: 'trigger',
    source: { datasource: 'main', table: 'src', key: 'id' },
    target: { datasource: 'main', table: target, key: 'id' },
    mapping,
    reverseMapping,
    ramp: { steps, holdSeconds },
    ...extra,
  });
}

/** Waits until step 0 holds; checks its nextAt is the step's time plus the hold. */
async function firstHold(f: CutoverFixture, id: string, holdSeconds: number): Promise<RampResource & { nextAt: string }> {
  const held = await waitFor('step 0 holding', async () => {
    const r = await rampOf(f, id);
    return r.step === 0 && r.status === 'holding' && r.nextAt ? (r as RampResource & { nextAt: string }) : null;
  }, 10_000);
  const applied = held.history.find((h) => h.event === 'step' && h.step === 0);
  expect(applied).toBeDefined();
  expect(Date.parse(held.nextAt) - Date.parse(applied?.at ?? '')).toBe(holdSeconds * 1000);
  return held;
}

interface TimerRowView {
  due_at: Date;
  fired_at: Date | null;
  lease_until: Date | null;
  payload: { step: number };
}

async function holdTimers(f: CutoverFixture, id: string): Promise<TimerRowView[]> {
  const r = await f.orch.query<TimerRowView>(`select due_at, fired_at, lease_until, payload from timers where migration_id = $1 and kind = 'ramp_hold' order by id`, [id]);
  return r.rows;
}

/**
 * Waits for step 1 (applied, audited, its hold timer marked fired) and checks it came no earlier
 * than the end of step 0's hold and at most `SLACK_MS` after `due` (the hold's end, or when Unleash
 * came back): on the ramp's history, in the audit log, on the flag server, and in the timers (one
 * per step, the first fired when the step was applied).
 */
async function expectStepOne(f: CutoverFixture, id: string, name: string, held: RampResource & { nextAt: string }, due = Date.parse(held.nextAt)): Promise<void> {
  const nextAt = Date.parse(held.nextAt);
  const holdMs = nextAt - Date.parse(held.history.find((h) => h.event === 'step' && h.step === 0)?.at ?? '');
  // The step, its audit event and the timer's mark are three commits in that order: wait for all.
  const { after, steps, timers } = await waitFor('step 1 applied, audited, its timer fired', async () => {
    const r = await rampOf(f, id);
    if (r.step < 1) return null;
    const events = (await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.action === 'ramp.step');
    const rows = await holdTimers(f, id);
    return events.length > 0 && rows[0]?.fired_at ? { after: r, steps: events, timers: rows } : null;
  }, Math.max(0, due - Date.now()) + 10_000, 25);
  expect(after).toMatchObject({ step: 1, percent: 100, status: 'holding' });
  const applied = after.history.filter((h) => h.event === 'step' && h.step === 1);
  expect(applied).toHaveLength(1);
  const at = Date.parse(applied[0]?.at ?? '');
  expect(at).toBeGreaterThanOrEqual(nextAt);
  expect(at).toBeLessThanOrEqual(due + SLACK_MS);
  expect(Date.parse(after.nextAt ?? '')).toBe(at + holdMs);

  expect(steps).toHaveLength(1);
  expect(steps[0]?.actor).toBe('tideway:ramp');
  expect(steps[0]?.details).toMatchObject({ step: 1, percent: 100 });
  expect(steps[0]?.at.getTime()).toBeGreaterThanOrEqual(nextAt);
  expect(steps[0]?.at.getTime()).toBeLessThanOrEqual(due + SLACK_MS);

  expect(await f.flags.getRollout((await flagsOf(f, name)).readNew)).toBe(100);
  expect(timers.map((t) => t.payload.step)).toEqual([0, 1]);
  expect(timers[0]?.due_at.getTime()).toBe(nextAt);
  expect(timers[0]?.fired_at?.getTime()).toBe(at);
  expect(timers[1]?.due_at.getTime()).toBe(at + holdMs);
  expect(timers[1]?.fired_at).toBeNull();
}

describe('ramp holds are durable timers', () => {
  let f: CutoverFixture;
  // A Redis of its own: the FLUSHALL below must not take other packages' queues with it.
  let redis: PrivateRedis;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    f = await createCutoverFixture('cutover_faults', {}, {}, { redisUrl: redis.url });
    await seed(f);
  });

  afterAll(async () => {
    await f?.close();
    await redis?.stop();
  });

  it('Redis FLUSHALL during a hold: the next step comes at the end of the hold', async () => {
    const name = `flush-${f.suffix}`;
    const id = await migrationToCutover(f, name, [10, 100], HOLD_SECONDS);
    const held = await firstHold(f, id, HOLD_SECONDS);
    await f.redis.flushall();
    // The flush landed inside the hold, with nothing applied early.
    expect(Date.now()).toBeLessThan(Date.parse(held.nextAt));
    expect(await rampOf(f, id)).toMatchObject({ step: 0, percent: 10, status: 'holding', nextAt: held.nextAt });
    expect(await f.flags.getRollout((await flagsOf(f, name)).readNew)).toBe(10);
    await expectStepOne(f, id, name, held);
  });

  it('control-plane restart during a hold: the resource shows the ramp and the next step comes on time', async () => {
    const name = `restart-${f.suffix}`;
    const id = await migrationToCutover(f, name, [10, 100], HOLD_SECONDS);
    const held = await firstHold(f, id, HOLD_SECONDS);
    await f.restartApp();
    expect(Date.now()).toBeLessThan(Date.parse(held.nextAt));
    const shown = await rampOf(f, id);
    expect(shown).toMatchObject({ step: 0, percent: 10, status: 'holding', nextAt: held.nextAt });
    expect(shown.history).toEqual(held.history);
    const dry = await f.api('POST', `/v1/migrations/${id}/cutover/dry-run`);
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ current: { step: 0, percent: 10, status: 'holding' }, next: { kind: 'ramp-step', step: 1, percent: 100 }, waitsFor: 'hold', nextAt: held.nextAt });
    await expectStepOne(f, id, name, held);
  });
});

describe('Unleash unreachable mid-ramp', () => {
  /** Long enough to see the reader fail (unleash-client retries a fetch for ~3 s), check the SDK and a refused rollback before the hold ends. */
  const OUTAGE_HOLD_SECONDS = 8;
  let g: CutoverFixture;
  let proxy: TcpProxy;
  /** What the worker logged. */
  const logged: { msg: string; extra: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    const unleash = await ensureLocalUnleash();
    proxy = new TcpProxy(unleash.url);
    await proxy.start();
    // The control plane and the worker of this test reach Unleash only through the proxy.
    g = await createCutoverFixture('cutover_outage', { TIDEWAY_UNLEASH_URL: proxy.url }, { TIDEWAY_UNLEASH_URL: proxy.url }, {
      workerLog: (msg, extra) => logged.push({ msg, extra: (extra ?? {}) as Record<string, unknown> }),
    });
    await seed(g);
  });

  afterAll(async () => {
    await g?.close();
    await proxy?.stop();
  });

  it('the SDK keeps serving, flag actions answer 503 and change nothing, the due hold waits for Unleash (waitsFor flag-server, audited and logged once each way)', async () => {
    const name = `outage-${g.suffix}`;
    const flag = (await flagsOf(g, name)).readNew;
    const id = await migrationToCutover(g, name, [20, 100], OUTAGE_HOLD_SECONDS);
    const held = await firstHold(g, id, OUTAGE_HOLD_SECONDS);
    const nextAt = Date.parse(held.nextAt);

    // The application: an UnleashFlagReader through the proxy and the SDK on top. It shadows no
    // reads: a few hundred clean samples would breach the abort criteria (minSamples 0 here) and
    // pause the migration, which is not what this test is about.
    await g.app.listen({ port: 0, host: '127.0.0.1' });
    const readerErrors: Error[] = [];
    const sdkReader = new UnleashFlagReader({ url: proxy.url, clientToken: g.unleash.clientToken, appName: `sdk-${g.suffix}`, refreshIntervalMs: 500, onError: (e) => readerErrors.push(e) });
    await sdkReader.start();
    const sdkErrors: SdkErrorEvent[] = [];
    const sdk = createMigrationClient({
      baseUrl: `http://127.0.0.1:${(g.app.server.address() as AddressInfo).port}`,
      token: ADMIN,
      migration: { id, name, installation: await g.engine.installation.id() },
      flags: sdkReader,
      shadowSamplePercent: 0,
      onError: (e) => sdkErrors.push(e),
    });
    const KEYS = 1000;
    const readAll = async () => {
      const served: string[] = [];
      for (let k = 1; k <= KEYS; k++) {
        served.push(await sdk.read({ key: k, readOld: () => `old:${k}`, readNew: () => `new:${k}` }));
      }
      return served;
    };
    try {
      await waitForShare(sdkReader, flag, 20);
      const before = await readAll();
      const newBefore = before.filter((v) => v.startsWith('new:')).length;
      expect(Math.abs(newBefore / KEYS - 0.2)).toBeLessThanOrEqual(0.05);
      before.forEach((v, i) => expect(v).toBe(sdkReader.isEnabled(flag, { key: String(i + 1) }) ? `new:${i + 1}` : `old:${i + 1}`));
      const keysBefore = keysOn(sdkReader, flag);

      await proxy.stop();
      await waitFor('the reader fails to reach Unleash', () => readerErrors.length > 0, 10_000, 20);
      // Reads go on, each key on the side it had: the reader keeps the last state it fetched.
      expect(await readAll()).toEqual(before);
      expect(keysOn(sdkReader, flag)).toEqual(keysBefore);
      expect(sdkErrors.filter((e) => e.kind === 'flags')).toEqual([]);

      // A flag action on the control plane is refused and changes nothing.
      const migrationBefore = await g.engine.migrationReadModel.get(id);
      const eventsBefore = await g.engine.migrationReadModel.allEvents(id);
      const rolled = await g.api('POST', `/v1/migrations/${id}/rollback`, {});
      expect(rolled.status, JSON.stringify(rolled.body)).toBe(503);
      expect((rolled.body['error'] as { code: string }).code).toBe('DEPENDENCY_UNAVAILABLE');
      const migrationAfter = await g.engine.migrationReadModel.get(id);
      expect({ phase: migrationAfter?.phase, status: migrationAfter?.status, version: migrationAfter?.version }).toEqual({ phase: 'cutover', status: 'active', version: migrationBefore?.version });
      expect(await g.engine.migrationReadModel.allEvents(id)).toEqual(eventsBefore);
      expect(await rampOf(g, id)).toEqual(held);
      expect(await g.flags.getRollout(flag)).toBe(20); // the real server, not through the proxy
      expect(Date.now()).toBeLessThan(nextAt); // all of that inside the hold

      // The hold comes due while Unleash is away. What is awaited is the timer's due time passing,
      // plus four worker polls (250 ms each) that try it and must leave it for later.
      expect(held.waitsFor).toBe('hold');
      await waitFor('the hold due for four polls', () => Date.now() >= nextAt + 1000, OUTAGE_HOLD_SECONDS * 1000 + 5000, 50);
      const waiting = await rampOf(g, id);
      expect(rampRow(waiting)).toEqual(rampRow(held));
      expect(waiting.waitsFor).toBe('flag-server');
      expect(waiting.waiting?.reason).toMatch(/^unleash is unavailable: .*ECONNREFUSED/);
      const since = Date.parse(waiting.waiting?.since ?? '');
      expect(since).toBeGreaterThanOrEqual(nextAt);
      expect(since).toBeLessThanOrEqual(nextAt + SLACK_MS);
      const dryWaiting = await g.api('POST', `/v1/migrations/${id}/cutover/dry-run`);
      expect(dryWaiting.body).toMatchObject({ current: { step: 0, percent: 20, status: 'holding' }, next: { kind: 'ramp-step', step: 1, percent: 100 }, waitsFor: 'flag-server' });
      expect((await g.engine.migrationReadModel.get(id))?.status).toBe('active');
      const pending = await holdTimers(g, id);
      expect(pending).toHaveLength(1);
      expect(pending[0]).toMatchObject({ fired_at: null, payload: { step: 0 } });
      expect(pending[0]?.due_at.getTime()).toBe(nextAt);
      // One event when the wait started, however many polls failed since.
      const duringOutage = await g.engine.migrationReadModel.allEvents(id);
      expect(duringOutage.map((e) => e.action)).toEqual([...eventsBefore.map((e) => e.action), 'ramp.waiting']);
      expect(duringOutage.at(-1)).toMatchObject({ actor: 'tideway:ramp', details: { waitsFor: 'flag-server', dependency: 'unleash' } });
      expect(logged.filter((l) => l.msg === 'ramp step waits for the flag server' && l.extra['migrationId'] === id)).toMatchObject([{ extra: { name, since: new Date(since).toISOString() } }]);
      expect(await g.flags.getRollout(flag)).toBe(20);
      expect(await readAll()).toEqual(before);

      // Unleash reachable again: the next poll applies the step, and the wait ends (one event, one log line).
      await proxy.start();
      const back = Date.now();
      await expectStepOne(g, id, name, held, back);
      const actions = (await g.engine.migrationReadModel.allEvents(id)).map((e) => e.action);
      expect(actions.slice(eventsBefore.length)).toEqual(['ramp.waiting', 'ramp.step', 'ramp.wait_cleared']);
      expect(await rampOf(g, id)).toMatchObject({ step: 1, waitsFor: 'hold', waiting: null });
      expect(logged.filter((l) => l.msg.startsWith('ramp step') && l.extra['migrationId'] === id).map((l) => l.msg)).toEqual(['ramp step waits for the flag server', 'ramp step no longer waits for the flag server']);
      const after = await waitForShare(sdkReader, flag, 100);
      expect(after.size).toBe(10_000);
      expect((await readAll()).every((v) => v.startsWith('new:'))).toBe(true);
      expect(sdk.stats()).toMatchObject({ shadowReads: 0, sendFailures: 0 });
    } finally {
      await sdk.close();
      sdkReader.close();
      await proxy.start();
    }
  });

  it('a breach judged at the end of a hold while Unleash is down keeps the hold; once it clears and Unleash is back, the ramp goes on', async () => {
    const name = `breach-${g.suffix}`;
    const id = await migrationToCutover(g, name, [20, 100], HOLD_SECONDS, { abortCriteria: { minSamples: 0, action: 'rollback' } });
    const held = await firstHold(g, id, HOLD_SECONDS);
    const nextAt = Date.parse(held.nextAt);
    const clean = (count: number) => {
      const at = new Date().toISOString();
      return Array.from({ length: count }, (_, i) => ({ key: String(i + 1), outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at }));
    };
    try {
      await proxy.stop();
      // 200 clean samples: the upper bound of the divergence rate (≈ 0.019) is over 0.001, so the
      // end of the hold judges a breach, and its rollback cannot reach Unleash.
      expect((await g.api('POST', `/v1/migrations/${id}/shadow-results`, { results: clean(200) })).status).toBe(202);
      expect(Date.now()).toBeLessThan(nextAt);
      await waitFor('the hold due for four polls', () => Date.now() >= nextAt + 1000, HOLD_SECONDS * 1000 + 5000, 50);
      expect((await g.engine.migrationReadModel.get(id))?.phase).toBe('cutover');
      expect(rampRow(await rampOf(g, id))).toEqual(rampRow(held));
      const pending = await holdTimers(g, id);
      expect(pending).toHaveLength(1);
      expect(pending[0]).toMatchObject({ fired_at: null, payload: { step: 0 } });
      // 10,000 more clean samples bring the bound under 0.001: the breach is gone.
      for (let b = 0; b < 10; b++) expect((await g.api('POST', `/v1/migrations/${id}/shadow-results`, { results: clean(1000) })).status).toBe(202);
      const gates = (await g.api('GET', `/v1/migrations/${id}`)).body['gates'] as { name: string; passed: boolean }[];
      expect(gates.find((x) => x.name === 'divergence-within-criteria')?.passed ?? true).toBe(true);
    } finally {
      await proxy.start();
    }
    const back = Date.now();
    await expectStepOne(g, id, name, held, back);
    expect((await g.engine.migrationReadModel.get(id))?.status).toBe('active');
  });
});
