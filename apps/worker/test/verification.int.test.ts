import { buildApp, loadConfig } from '@tideway/control-plane';
import { mappingDiff, waitFor } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
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
  await f.startWorker();
  await f.startWorker();
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
    const created = await api('POST', '/v1/migrations', {
      name: 'verify-orders',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: 'dst', key: 'id' },
      mapping,
      reverseMapping,
      backfill: { initialChunkRows: 20_000, maxChunkRows: 50_000 },
    });
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
    expect(first).toMatchObject({ status: 'failed', missingInTarget: 3, extraInTarget: 2, different: 3, repaired: 0, rowsCompared: expect.any(Number) });
    expect(first['rowsCompared']).toBeGreaterThanOrEqual(ROWS);
    const sample = (first['sampleKeys'] as { key: string[]; kind: string }[]).map((s) => `${s.kind}:${s.key[0]}`).sort();
    expect(sample).toEqual(['different:123457', 'different:2', `different:${ROWS - 1}`, 'extra:0', `extra:${ROWS + 100}`, 'missing:1', 'missing:250000', `missing:${ROWS}`].sort());
    expect(first['rangesTotal']).toBeGreaterThan(ROWS / 20_000);
    const gate = ((await api('GET', `/v1/migrations/${id}`)).body['gates'] as { name: string; passed: boolean }[]).find((g) => g.name === 'verification-passed');
    expect(gate?.passed).toBe(false);

    const repaired = await api('POST', `/v1/migrations/${id}/verifications/${first['id'] as string}/repair`);
    expect(repaired.body).toMatchObject({ status: 'passed', missingInTarget: 0, extraInTarget: 0, different: 0, repaired: 8 });
    expect(await mappingDiff(f.user, { source: 'src', target: 'dst', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });

    const second = await verify(id);
    expect(second).toMatchObject({ status: 'passed', missingInTarget: 0, extraInTarget: 0, different: 0, sampleKeys: [] });
    expect(second['rowsCompared']).toBe(ROWS);
    const gates = (await api('GET', `/v1/migrations/${id}`)).body['gates'] as { name: string; passed: boolean }[];
    expect(gates.find((g) => g.name === 'verification-passed')?.passed).toBe(true);

    // The list: newest first, one per page with limit=1, the same resources as GET by id.
    const all = await api('GET', `/v1/migrations/${id}/verifications`);
    expect(all.status).toBe(200);
    expect((all.body['items'] as { id: string }[]).map((v) => v.id)).toEqual([second['id'], first['id']]);
    expect(all.body['nextCursor']).toBeNull();
    const page1 = await api('GET', `/v1/migrations/${id}/verifications?limit=1`);
    expect(page1.body['items']).toEqual([second]);
    const page2 = await api('GET', `/v1/migrations/${id}/verifications?limit=1&cursor=${page1.body['nextCursor'] as string}`);
    expect((page2.body['items'] as { id: string; status: string }[]).map((v) => [v.id, v.status])).toEqual([[first['id'], 'passed']]);
    expect(page2.body['nextCursor']).toBeNull();
    const bad = await api('GET', `/v1/migrations/${id}/verifications?cursor=bm9wZQ`);
    expect(bad.status).toBe(400);
  });
});
