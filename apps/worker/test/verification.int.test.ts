import { buildApp, loadConfig } from '@tideway/control-plane';
import { mappingDiff, waitFor, unguarded } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, waitForBackfill, type BackfillFixture } from './fixture.js';

const ADMIN = 'verification-admin-token-0123456789';
const ROWS = 500_000;
const mapping = { id: 'id', total_cents: 'total * 100', label: "'L' || (id % 97)::text" };
// The way back of the mapping (issue 12 §1): every source column the mapping reads comes back.
const reverseMapping = { total: 'total_cents / 100' };

let f: BackfillFixture;
let app: FastifyInstance;

beforeAll(async () => {
  f = await createBackfillFixture('verify');
  await f.user.query(`
    create table src (id bigint primary key, total int not null);
    insert into src select g, g % 1000 from generate_series(1, ${ROWS}) g;
    analyze src;
    create table dst (id bigint primary key, total_cents bigint, label text);`);
  // Concurrency 1 each (the default): two range jobs waiting at once are on two workers.
  await f.startWorker({ TIDEWAY_WORKER_NAME: 'w1' });
  await f.startWorker({ TIDEWAY_WORKER_NAME: 'w2' });
  app = await buildApp(loadConfig({ ...f.env, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent' }));
});

afterAll(async () => {
  await app?.close();
  await f?.close();
});

const api = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
};

/** The migration's audit events of `action` about verification `vid`, oldest first. */
async function eventsOf(id: string, action: string, vid: string) {
  const r = await f.orch.query<{ actor: string; details: Record<string, unknown>; to_phase: string }>(
    `select actor, details, to_phase from migration_events where migration_id = $1 and action = $2 and details->>'verificationId' = $3 order by seq`,
    [id, action, vid],
  );
  return r.rows;
}

const gateOf = async (id: string) =>
  ((await api('GET', `/v1/migrations/${id}`)).body['gates'] as { name: string; passed: boolean; message: string; observed: Record<string, unknown> }[]).find((g) => g.name === 'verification-passed');

async function verify(id: string): Promise<Record<string, unknown>> {
  const started = await api('POST', `/v1/migrations/${id}/verifications`);
  expect(started.status).toBe(202);
  const vid = started.body['id'] as string;
  return waitFor('verification finished', async () => {
    const v = await api('GET', `/v1/migrations/${id}/verifications/${vid}`);
    return v.body['status'] === 'running' ? null : v.body;
  }, 120_000, 100);
}

describe('verification (checksummed key ranges, split down to keys)', () => {
  it('finds exactly the planted differences, repair fixes them, the next verification is clean and the gate holds', async () => {
    const created = await api('POST', '/v1/migrations', unguarded({
      name: 'verify-orders',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: 'dst', key: 'id' },
      mapping,
      reverseMapping,
      backfill: { initialChunkRows: 20_000, maxChunkRows: 50_000 },
    }));
    const id = created.body['id'] as string;
    for (const action of ['start', 'advance', 'advance']) await api('POST', `/v1/migrations/${id}/${action}`, {});
    await waitForBackfill(f.engine, id, 120_000);
    expect((await api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('shadow_read');

    // Plant differences straight in the target (no trigger there): first and last keys included.
    await f.user.query(`
      delete from dst where id in (1, 250000, ${ROWS});
      insert into dst values (0, 1, 'x'), (${ROWS + 100}, 2, 'y');
      update dst set total_cents = total_cents + 1 where id in (2, 123457);
      update dst set label = 'changed' where id = ${ROWS - 1};`);

    const first = await verify(id);
    const found = { status: 'failed', missingInTarget: 3, extraInTarget: 2, different: 3 };
    expect(first).toMatchObject({ ...found, outcome: 'failed', repaired: 0, unrepaired: 8, repairs: [], createdBy: 'bootstrap-admin', rowsCompared: expect.any(Number) });
    expect(first['rowsCompared']).toBeGreaterThanOrEqual(ROWS);
    const planted = ['different:123457', 'different:2', `different:${ROWS - 1}`, 'extra:0', `extra:${ROWS + 100}`, 'missing:1', 'missing:250000', `missing:${ROWS}`].sort();
    const sample = (first['sampleKeys'] as { key: string[]; kind: string; repairedBy: string | null }[]).map((s) => `${s.kind}:${s.key[0]}:${s.repairedBy}`).sort();
    expect(sample).toEqual(planted.map((k) => `${k}:null`));
    expect(first['rangesTotal']).toBeGreaterThan(ROWS / 20_000);
    const gate = await gateOf(id);
    expect(gate).toMatchObject({ passed: false, observed: { verificationId: first['id'], outcome: 'failed', findings: 8, unrepaired: 8, repairId: null } });

    // Audited: started (who, ranges planned) and finished (with the numbers), once each.
    const vid = first['id'] as string;
    const planned = await f.orch.query<{ n: number }>(`select count(*)::int as n from verification_ranges where verification_id = $1 and depth = 0`, [vid]);
    expect(await eventsOf(id, 'verification.started', vid)).toEqual([
      { actor: 'bootstrap-admin', to_phase: 'shadow_read', details: { verificationId: vid, rangesPlanned: planned.rows[0]?.n, keyColumns: ['id'] } },
    ]);
    const finished = await eventsOf(id, 'verification.finished', vid);
    expect(finished).toHaveLength(1);
    expect(finished[0]).toMatchObject({ actor: 'tideway:verification', details: { ...found, verificationId: vid, startedBy: 'bootstrap-admin', rowsCompared: first['rowsCompared'], rangesChecked: first['rangesChecked'] } });
    const durationMs = finished[0]?.details['durationMs'] as number;
    expect(durationMs).toBeGreaterThanOrEqual(0);
    expect(durationMs).toBeLessThanOrEqual(Date.parse(first['finishedAt'] as string) - Date.parse(first['startedAt'] as string) + 1);

    // The repair is its own record; the verification keeps what it found.
    const repaired = await api('POST', `/v1/migrations/${id}/verifications/${vid}/repair`);
    expect(repaired.status).toBe(200);
    const repairId = repaired.body['id'] as string;
    expect(repaired.body).toMatchObject({
      verificationId: vid,
      actor: 'bootstrap-admin',
      status: 'finished',
      keysAttempted: 8,
      upserted: 6,
      deleted: 2,
      fixed: 8,
      stillDifferent: 0,
      error: null,
      finishedAt: expect.any(String),
      verification: { ...found, id: vid, outcome: 'repaired', repaired: 8, unrepaired: 0, rowsCompared: first['rowsCompared'], finishedAt: first['finishedAt'] },
    });
    expect((repaired.body['sampleKeys'] as { key: string[]; kind: string; outcome: string }[]).map((k) => `${k.kind}:${k.key[0]}:${k.outcome}`).sort()).toEqual(planted.map((k) => `${k}:fixed`));
    expect(await mappingDiff(f.user, { source: 'src', target: 'dst', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });

    const after = (await api('GET', `/v1/migrations/${id}/verifications/${vid}`)).body;
    const { verification: _nested, ...record } = repaired.body;
    expect(after).toMatchObject({ ...found, outcome: 'repaired', repaired: 8, unrepaired: 0, repairs: [record] });
    expect((after['sampleKeys'] as { key: string[]; kind: string; repairedBy: string | null }[]).map((s) => `${s.kind}:${s.key[0]}:${s.repairedBy}`).sort()).toEqual(planted.map((k) => `${k}:${repairId}`));
    expect(await eventsOf(id, 'verification.repaired', vid)).toEqual([
      {
        actor: 'bootstrap-admin',
        to_phase: 'shadow_read',
        details: { verificationId: vid, repairId, keysAttempted: 8, upserted: 6, deleted: 2, fixed: 8, stillDifferent: 0, durationMs: expect.any(Number) },
      },
    ]);
    // The gate accepts a verification whose every finding a repair fixed and re-checked, and names the repair.
    const reliedOn = await gateOf(id);
    expect(reliedOn).toMatchObject({ passed: true, observed: { verificationId: vid, status: 'failed', outcome: 'repaired', findings: 8, unrepaired: 0, repairId } });
    expect(reliedOn?.message).toContain(`repair ${repairId}`);

    // A second repair has nothing left to attempt; the gate still relies on the one that fixed the findings.
    const again = await api('POST', `/v1/migrations/${id}/verifications/${vid}/repair`);
    expect(again.body).toMatchObject({ status: 'finished', keysAttempted: 0, fixed: 0, stillDifferent: 0, sampleKeys: [], verification: { outcome: 'repaired', repaired: 8 } });
    expect(((again.body['verification'] as Record<string, unknown>)['repairs'] as { id: string }[]).map((r) => r.id)).toEqual([repairId, again.body['id']]);
    expect((await gateOf(id))?.observed).toMatchObject({ outcome: 'repaired', repairId });
    expect(await eventsOf(id, 'verification.repaired', vid)).toHaveLength(2);
    expect(await eventsOf(id, 'verification.finished', vid)).toHaveLength(1);

    const second = await verify(id);
    expect(second).toMatchObject({ status: 'passed', outcome: 'passed', missingInTarget: 0, extraInTarget: 0, different: 0, sampleKeys: [], repairs: [] });
    expect(second['rowsCompared']).toBe(ROWS);
    expect(await gateOf(id)).toMatchObject({ passed: true, observed: { verificationId: second['id'], outcome: 'passed', repairId: null } });

    // The list: newest first, one per page with limit=1, the same resources as GET by id.
    const all = await api('GET', `/v1/migrations/${id}/verifications`);
    expect(all.status).toBe(200);
    expect((all.body['items'] as { id: string }[]).map((v) => v.id)).toEqual([second['id'], first['id']]);
    expect(all.body['nextCursor']).toBeNull();
    const page1 = await api('GET', `/v1/migrations/${id}/verifications?limit=1`);
    expect(page1.body['items']).toEqual([second]);
    const page2 = await api('GET', `/v1/migrations/${id}/verifications?limit=1&cursor=${page1.body['nextCursor'] as string}`);
    expect((page2.body['items'] as { id: string; status: string; outcome: string }[]).map((v) => [v.id, v.status, v.outcome])).toEqual([[first['id'], 'failed', 'repaired']]);
    expect(page2.body['nextCursor']).toBeNull();
    const bad = await api('GET', `/v1/migrations/${id}/verifications?cursor=bm9wZQ`);
    expect(bad.status).toBe(400);
  });
  it('two workers finishing the last ranges of one verification at the same moment write one verification.finished', async () => {
    await f.user.query(`
      create table race_src (id bigint primary key, v int not null);
      insert into race_src select g, g % 7 from generate_series(1, 30000) g;
      analyze race_src;
      create table race_dst (id bigint primary key, v int);`);
    const created = await api('POST', '/v1/migrations', unguarded({
      name: 'verify-race',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'race_src', key: 'id' },
      target: { datasource: 'main', table: 'race_dst', key: 'id' },
      mapping: { id: 'id', v: 'v' },
    }));
    const id = created.body['id'] as string;
    for (const action of ['start', 'advance', 'advance']) expect((await api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);
    await waitForBackfill(f.engine, id, 60_000);

    // Range jobs wait in the paused queue while this session takes the migration's row lock.
    await f.queue.pause();
    const holder = new pg.Client({ connectionString: f.orch.url });
    await holder.connect();
    try {
      const started = await api('POST', `/v1/migrations/${id}/verifications`);
      expect(started.body).toMatchObject({ status: 'running', rangesTotal: 2 });
      const vid = started.body['id'] as string;
      await holder.query('begin');
      await holder.query('select 1 from migrations where id = $1 for update', [id]);
      await f.queue.resume();
      // Both ranges checked, each on its own worker, both completions waiting for the lock.
      const waiting = await waitFor(
        'both range completions waiting on the migration lock',
        async () => {
          const ranges = await f.orch.query<{ worker: string; status: string }>(`select worker, status from verification_ranges where verification_id = $1 order by id`, [vid]);
          // Waiting for the lock this session holds (the second waiter queues behind the first).
          const blocked = await f.orch.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity
              where application_name = 'tideway-worker' and wait_event_type = 'Lock' and query = 'select * from "migrations" where "id" = $1 for update'`,
          );
          return ranges.rows.every((r) => r.status === 'running') && (blocked.rows[0]?.n ?? 0) >= 2 ? ranges.rows : null;
        },
        30_000,
        20,
      );
      expect(waiting.map((r) => r.worker).sort()).toEqual(['w1', 'w2']);
      // A repair of a running verification is refused and records nothing.
      const early = await api('POST', `/v1/migrations/${id}/verifications/${vid}/repair`);
      expect(early.status).toBe(409);
      expect((early.body['error'] as { code: string }).code).toBe('INVALID_TRANSITION');
      await holder.query('commit');

      const v = await waitFor('verification finished', async () => {
        const r = await api('GET', `/v1/migrations/${id}/verifications/${vid}`);
        return r.body['status'] === 'running' ? null : r.body;
      }, 30_000, 20);
      expect(v).toMatchObject({ status: 'passed', outcome: 'passed', rangesChecked: 2, rowsCompared: 30_000, repairs: [] });
      // Both range jobs have returned (anything they would still write is written), then count.
      await waitFor('both range jobs returned', async () => {
        const c = await f.queue.getJobCounts('active', 'wait', 'prioritized', 'delayed');
        return Object.values(c).every((n) => n === 0) || null;
      }, 30_000, 20);
      // The first completion to get the lock saw the other range running; the second finished it.
      const events = await eventsOf(id, 'verification.finished', vid);
      expect(events).toHaveLength(1);
      expect(events[0]?.details).toMatchObject({ status: 'passed', rowsCompared: 30_000, rangesChecked: 2, missingInTarget: 0, extraInTarget: 0, different: 0 });
      expect((await f.orch.query(`select 1 from verification_repairs r join verifications v on v.id = r.verification_id where v.migration_id = $1`, [id])).rowCount).toBe(0);
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
      await f.queue.resume();
    }
  });
});
