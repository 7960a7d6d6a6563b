import { ensureLocalUnleash } from '@tideway/flags/testing';
import { waitFor, unguarded } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverFixture, driveToCutover, type CutoverFixture } from './cutover-fixture.js';
import { waitForBackfill } from './fixture.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * PATCH means what it says (issue 12 point 5): a setting that lives on the flag server or in the
 * current hold takes effect in the PATCH's own transaction, audited in its event, or the PATCH is
 * refused and changes nothing. The control plane and the worker reach the real Unleash through a
 * proxy, so a test can take it away.
 */
let f: CutoverFixture;
let proxy: TcpProxy;

const mapping = { id: 'id', total_cents: 'total * 100' };
const reverseMapping = { id: 'id', total: 'total_cents / 100' };
let targets = 0;

async function freshSpec(name: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  targets++;
  await f.user.query(`create table dst_${targets} (id bigint primary key, total_cents bigint)`);
  return {
    name,
    syncMode: 'trigger',
    source: { datasource: 'main', table: 'src', key: 'id' },
    target: { datasource: 'main', table: `dst_${targets}`, key: 'id' },
    mapping,
    reverseMapping,
    ...extra,
  };
}

async function resource(id: string): Promise<Record<string, unknown>> {
  const r = await f.api('GET', `/v1/migrations/${id}`);
  expect(r.status).toBe(200);
  return r.body;
}

beforeAll(async () => {
  const unleash = await ensureLocalUnleash();
  proxy = new TcpProxy(unleash.url);
  await proxy.start();
  f = await createCutoverFixture('flag_patch', { TIDEWAY_UNLEASH_URL: proxy.url }, { TIDEWAY_UNLEASH_URL: proxy.url });
  await f.user.query(`create table src (id bigint primary key, total bigint); insert into src select g, g from generate_series(1, 1000) g;`);
});

afterAll(async () => {
  await f?.close();
  await proxy?.stop();
});

describe('PATCH of shadowRead.samplePercent', () => {
  it('before shadow_read it is stored for later; during shadow_read it moves the rollout in the same request; with Unleash down it is 503 and nothing changes', async () => {
    const created = await f.api('POST', '/v1/migrations', unguarded({ ...(await freshSpec(`sample-${f.suffix}`)), shadowRead: { samplePercent: 10, minWindowSeconds: 0 } }));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body['id'] as string;
    const shadowRead = (created.body['flags'] as { shadowRead: string }).shadowRead;
    for (const action of ['start', 'advance', 'advance']) expect((await f.api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);

    // In backfill shadow reads are off: the new percent is kept for shadow_read, no flag moves.
    const early = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { shadowRead: { samplePercent: 20 } } });
    expect(early.status, JSON.stringify(early.body)).toBe(200);
    expect(await f.flags.getRollout(shadowRead)).toBe(0);
    expect((await f.engine.migrationReadModel.allEvents(id)).at(-1)?.details).toEqual({ changed: ['shadowRead.samplePercent'], version: early.body['version'] });

    await waitForBackfill(f.engine, id, 60_000);
    expect((await f.api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('shadow_read');
    expect(await f.flags.getRollout(shadowRead)).toBe(20);

    // During shadow_read: the flag has the new rollout when the PATCH answers, and the event says so.
    const live = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { shadowRead: { samplePercent: 35 } }, reason: 'more samples' });
    expect(live.status, JSON.stringify(live.body)).toBe(200);
    expect(await f.flags.getRollout(shadowRead)).toBe(35);
    const patched = (await f.engine.migrationReadModel.allEvents(id)).at(-1);
    expect(patched).toMatchObject({ action: 'patch', reason: 'more samples', details: { changed: ['shadowRead.samplePercent'], version: live.body['version'] } });
    expect(patched?.details['converged']).toEqual([{ kind: 'flags', action: 'updated', object: `flag ${shadowRead}`, detail: 'rollout 20 → 35 %' }]);

    // Unleash away: the same kind of PATCH is 503 and changes nothing; one that needs no flag goes through.
    await proxy.stop();
    try {
      const before = await resource(id);
      const eventsBefore = await f.engine.migrationReadModel.allEvents(id);
      const refused = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { shadowRead: { samplePercent: 50 } } });
      expect(refused.status, JSON.stringify(refused.body)).toBe(503);
      expect(refused.body['error']).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', details: { dependency: 'unleash' } });
      const after = await resource(id);
      expect({ version: after['version'], spec: after['spec'] }).toEqual({ version: before['version'], spec: before['spec'] });
      expect(await f.engine.migrationReadModel.allEvents(id)).toEqual(eventsBefore);
      expect(await f.flags.getRollout(shadowRead)).toBe(35); // the real server, not through the proxy

      const pace = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { backfill: { maxRowsPerSecond: 5000 } } });
      expect(pace.status, JSON.stringify(pace.body)).toBe(200);
      expect((pace.body['spec'] as { backfill: { maxRowsPerSecond: number } }).backfill.maxRowsPerSecond).toBe(5000);
    } finally {
      await proxy.start();
    }
  });
});

describe('PATCH of the ramp during cutover', () => {
  it('holdSeconds reschedules the current hold; steps is refused while the ramp runs; samplePercent moves the shadow-read rollout', async () => {
    const name = `ramp-${f.suffix}`;
    const id = await driveToCutover(f, { ...(await freshSpec(name)), ramp: { steps: [10, 100], holdSeconds: 600 } });
    const names = (await resource(id))['flags'] as { shadowRead: string; readNew: string };
    const held = await waitFor('step 0 holding', async () => {
      const r = (await resource(id))['progress'] as { ramp?: { step: number; status: string; nextAt: string | null; history: { step: number; event: string; at: string }[] } };
      return r.ramp?.step === 0 && r.ramp.status === 'holding' ? r.ramp : null;
    }, 10_000, 50);
    const startedAt = Date.parse(held.history.find((h) => h.step === 0 && h.event === 'step')?.at ?? '');
    expect(Date.parse(held.nextAt ?? '')).toBe(startedAt + 600_000);

    // steps while the ramp runs: 409 naming when it can change, nothing changed.
    const version = (await resource(id))['version'];
    const refused = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { ramp: { steps: [10, 50, 100] } } });
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body['error']).toMatchObject({
      code: 'INVALID_TRANSITION',
      details: { action: 'patch', field: 'ramp.steps', canApply: 'before cutover, after the write cutover, or after a rollback', ramp: { step: 0, percent: 10, status: 'holding' } },
    });
    expect((await resource(id))['version']).toBe(version);

    // samplePercent during cutover: the shadow-read rollout follows at once.
    expect((await f.api('PATCH', `/v1/migrations/${id}`, { spec: { shadowRead: { samplePercent: 15 } } })).status).toBe(200);
    expect(await f.flags.getRollout(names.shadowRead)).toBe(15);

    // holdSeconds: the current hold now ends at its start + 3 s, so the step comes then (not in 10 minutes).
    const patched = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { ramp: { holdSeconds: 3 } } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const newEnd = startedAt + 3000;
    expect(((patched.body['progress'] as { ramp: { nextAt: string } }).ramp.nextAt)).toBe(new Date(newEnd).toISOString());
    const event = (await f.engine.migrationReadModel.allEvents(id)).at(-1);
    expect(event?.details).toMatchObject({ changed: ['ramp.holdSeconds'], ramp: { holdRescheduled: { step: 0, from: new Date(startedAt + 600_000).toISOString(), to: new Date(newEnd).toISOString() } } });
    const timers = await f.orch.query<{ due_at: Date }>(`select due_at from timers where migration_id = $1 and kind = 'ramp_hold' and fired_at is null and cancelled_at is null`, [id]);
    expect(timers.rows.map((t) => t.due_at.getTime())).toEqual([newEnd]);
    await waitFor('step 1 after the shortened hold', async () => ((await resource(id))['progress'] as { ramp: { step: number } }).ramp.step === 1, Math.max(0, newEnd - Date.now()) + 10_000, 50);
    const step = (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'ramp.step');
    expect(step?.at.getTime()).toBeGreaterThanOrEqual(newEnd);
    expect(step?.at.getTime()).toBeLessThanOrEqual(newEnd + 3000);
    expect(await f.flags.getRollout(names.readNew)).toBe(100);
  });
});
