import { fileURLToPath } from 'node:url';
import { buildApp, loadConfig } from '@tideway/control-plane';
import { UnleashFlagControl } from '@tideway/flags';
import { ensureLocalUnleash } from '@tideway/flags/testing';
import { startTsProcess, waitFor, type TsProcess, unguarded } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, waitForBackfill, type BackfillFixture } from './fixture.js';

/**
 * A ramp step is "update the ramps row, then converge the flags" in one orchestrator transaction
 * (ADR 008). SIGKILL of the worker at the named crash points between them (TIDEWAY_FAULT_CRASH_AT):
 * the flag server matches the committed state after the first reconcile pass of the next worker
 * (the one it runs as it starts), and the step is then taken exactly once.
 */
const WORKER_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const ADMIN = 'flag-crash-admin-token-0123456789';
const HOLD_SECONDS = 4;
const RECONCILE_MS = 1000;
/** The interval of the worker whose first pass must converge: longer than that pass can take, so a converge seen before it ends was the first pass's. */
const FIRST_PASS_INTERVAL_MS = 10_000;

let f: BackfillFixture;
let app: FastifyInstance;
let flags: UnleashFlagControl;
const workers: TsProcess[] = [];

async function api(method: 'GET' | 'POST', url: string, payload?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

async function worker(crashAt?: string, reconcileMs = RECONCILE_MS): Promise<TsProcess> {
  const p = await startTsProcess(WORKER_MAIN, {
    ...f.env,
    TIDEWAY_RECONCILE_INTERVAL_MS: String(reconcileMs),
    TIDEWAY_WORKER_NAME: `crash-${workers.length}`,
    ...(crashAt ? { TIDEWAY_FAULT_CRASH_AT: crashAt } : {}),
  });
  workers.push(p);
  return p;
}

interface RampRow {
  step: number;
  percent: number;
  status: string;
}

async function rampRow(id: string): Promise<RampRow> {
  return (await f.orch.query<RampRow>(`select step, percent, status from ramps where migration_id = $1`, [id])).rows[0] as RampRow;
}

async function intents(id: string): Promise<number> {
  return (await f.orch.query<{ n: number }>(`select count(*)::int as n from converge_intents where migration_id = $1`, [id])).rows[0]?.n ?? -1;
}

/** The killed worker's claim on the hold timer lasts TIMER_LEASE_SECONDS (120 s); the test lets it expire now. */
async function expireTimerClaims(id: string): Promise<void> {
  await f.orch.query(`update timers set lease_until = now() - interval '1 second' where migration_id = $1 and fired_at is null and cancelled_at is null and lease_until is not null`, [id]);
}

beforeAll(async () => {
  f = await createBackfillFixture('flag_crash');
  const unleash = await ensureLocalUnleash();
  flags = new UnleashFlagControl({ url: unleash.url, adminToken: unleash.adminToken });
  app = await buildApp(loadConfig({ ...f.env, TIDEWAY_UNLEASH_URL: unleash.url, TIDEWAY_UNLEASH_ADMIN_TOKEN: unleash.adminToken, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent' }));
  await f.user.query(`
    create table src (id bigint primary key, total bigint);
    insert into src select g, g from generate_series(1, 500) g;
    create table dst (id bigint primary key, total_cents bigint);`);
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  await app?.close();
  await f?.close();
});

describe('crash between a ramp step and its flags', () => {
  it('SIGKILL after the flag change (before the commit) is undone within one interval; after the row update (before the flag change) leaves both as they were; each step is then taken once', async () => {
    let w = await worker();
    const created = await api('POST', '/v1/migrations', unguarded({
      name: `crash-${Date.now().toString(36)}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: 'dst', key: 'id' },
      mapping: { id: 'id', total_cents: 'total * 100' },
      reverseMapping: { id: 'id', total: 'total_cents / 100' },
      shadowRead: { minWindowSeconds: 0 },
      abortCriteria: { minSamples: 0 },
      ramp: { steps: [10, 50, 100], holdSeconds: HOLD_SECONDS },
    }));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body['id'] as string;
    const readNew = (created.body['flags'] as { readNew: string }).readNew;
    for (const action of ['start', 'advance', 'advance']) expect((await api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);
    await waitForBackfill(f.engine, id, 60_000);
    expect((await api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('shadow_read');
    const v = await api('POST', `/v1/migrations/${id}/verifications`);
    await waitFor('verification passed', async () => (await api('GET', `/v1/migrations/${id}/verifications/${v.body['id'] as string}`)).body['status'] === 'passed', 60_000, 50);
    // The step to cutover comes from the control plane; the worker that would end its hold dies at the crash point.
    await w.kill();
    w = await worker('ramp:step:after-converge');
    expect((await api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('cutover');
    expect(await rampRow(id)).toEqual({ step: 0, percent: 10, status: 'holding' });
    expect(await flags.getRollout(readNew)).toBe(10);

    // 1. The hold ends: the worker writes step 1, sets read-new to 50, and dies before its commit.
    expect(await w.exited).toBeNull();
    expect(w.output()).toContain('crash point ramp:step:after-converge');
    expect(await rampRow(id)).toEqual({ step: 0, percent: 10, status: 'holding' });
    expect(await flags.getRollout(readNew)).toBe(50); // the world ran ahead of the state
    expect(await intents(id)).toBe(1);
    const eventsBefore = (await f.engine.migrationReadModel.allEvents(id)).map((e) => e.action);
    expect(eventsBefore.filter((a) => a === 'ramp.step')).toEqual([]);

    // The next worker's first pass (run as it starts, before its first interval) puts read-new back
    // to what the committed row says: seen before the second pass could begin.
    w = await worker('ramp:step:after-row-update', FIRST_PASS_INTERVAL_MS);
    const ready = Date.now();
    await waitFor('read-new back to 10 %', async () => (await flags.getRollout(readNew)) === 10, FIRST_PASS_INTERVAL_MS, 25);
    expect(Date.now() - ready).toBeLessThan(FIRST_PASS_INTERVAL_MS);
    // The pass commits (deleting the intent it answered) just after its flag change.
    await waitFor('the intent answered', async () => ((await intents(id)) === 0 ? true : null), 5_000, 25);
    const converge = (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'converge');
    expect(converge).toMatchObject({ actor: 'tideway:reconciler', fromPhase: 'cutover' });
    expect(converge?.details['changes']).toEqual([{ kind: 'flags', action: 'updated', object: `flag ${readNew}`, detail: 'rollout 50 → 10 %' }]);

    // 2. The killed worker's claim expires: this worker takes step 1, and dies after writing the
    //    row, before touching the flag: nothing of it is left anywhere.
    await expireTimerClaims(id);
    expect(await w.exited).toBeNull();
    expect(w.output()).toContain('crash point ramp:step:after-row-update');
    expect(await rampRow(id)).toEqual({ step: 0, percent: 10, status: 'holding' });
    expect(await flags.getRollout(readNew)).toBe(10);
    // Its intent (committed before its transaction) outlives it: the next pass answers it, changing nothing.
    expect(await intents(id)).toBe(1);

    // 3. A healthy worker: once the claim expires it takes step 1, once; nothing needed converging.
    w = await worker();
    await expireTimerClaims(id);
    await waitFor('step 1', async () => (await rampRow(id)).step === 1, 10_000, 25);
    expect(await rampRow(id)).toEqual({ step: 1, percent: 50, status: 'holding' });
    expect(await flags.getRollout(readNew)).toBe(50);
    const steps = (await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.action === 'ramp.step');
    expect(steps.map((e) => e.details)).toEqual([{ step: 1, percent: 50, awaitingApproval: false }]);
    await waitFor('the dead transition\'s intent answered', async () => ((await intents(id)) === 0 ? true : null), 10_000, 25);
    expect((await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.action === 'converge')).toHaveLength(1);
  });
});
