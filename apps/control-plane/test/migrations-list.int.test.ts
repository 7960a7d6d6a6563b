import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, startHarness, type Harness } from './support/harness.js';

let h: Harness;

/**
 * Seven migrations, created m0 … m6 (so listed m6 … m0):
 * draft/active m0 m5 m6 · prepare/active m1 m2 · prepare/paused m3 · draft/aborted m4.
 */
beforeAll(async () => {
  h = await startHarness('migrations_list');
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) ids.push((await createMigration(h.app, `m${i}`)).id);
  const [, m1, m2, m3, m4] = ids as [string, string, string, string, string];
  for (const id of [m1, m2, m3]) await act(h.app, id, 'start');
  await act(h.app, m3, 'pause');
  await act(h.app, m4, 'abort');
});

afterAll(async () => {
  await h?.close();
});

async function names(query: string): Promise<{ names: string[]; nextCursor: string | null }> {
  const res = await call(h.app, { method: 'GET', url: `/v1/migrations${query}` });
  expect(res.status).toBe(200);
  return { names: (res.body.items as { name: string }[]).map((m) => m.name), nextCursor: res.body.nextCursor };
}

/** Follows `nextCursor` to the end and returns the names of every page. */
async function allPages(query: string, from: string | null = null): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | null = from;
  do {
    const sep = query ? '&' : '?';
    const page = await names(`${query}${cursor ? `${sep}cursor=${cursor}` : ''}`);
    pages.push(page.names);
    cursor = page.nextCursor;
  } while (cursor !== null && pages.length < 20);
  return pages;
}

describe('GET /v1/migrations', () => {
  it('lists every migration newest first, as full resources', async () => {
    const res = await call(h.app, { method: 'GET', url: '/v1/migrations' });

    expect(res.status).toBe(200);
    expect(res.body.nextCursor).toBeNull();
    expect(res.body.items.map((m: { name: string }) => m.name)).toEqual(['m6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    const m3 = res.body.items[3];
    expect(m3).toMatchObject({ name: 'm3', phase: 'prepare', status: 'paused', version: 3, gates: [], progress: {} });
    expect(m3.spec.source).toEqual({ datasource: 'main', schema: 'public', table: 'orders', key: ['id'] });
    const one = await call(h.app, { method: 'GET', url: `/v1/migrations/${m3.id}` });
    expect(one.body).toEqual(m3);
  });

  it('filters by phase, by status and by both', async () => {
    expect((await names('?phase=prepare')).names).toEqual(['m3', 'm2', 'm1']);
    expect((await names('?status=active')).names).toEqual(['m6', 'm5', 'm2', 'm1', 'm0']);
    expect((await names('?phase=draft&status=aborted')).names).toEqual(['m4']);
    expect((await names('?phase=prepare&status=paused')).names).toEqual(['m3']);
    expect(await names('?phase=done')).toEqual({ names: [], nextCursor: null });
  });

  it('finds one migration by name, with the other filters too; a name that is not a slug is a 400', async () => {
    expect(await names('?name=m3')).toEqual({ names: ['m3'], nextCursor: null });
    expect((await names('?name=m3&status=paused')).names).toEqual(['m3']);
    expect((await names('?name=m3&status=active')).names).toEqual([]);
    expect(await names('?name=nope')).toEqual({ names: [], nextCursor: null });
    const bad = await call(h.app, { method: 'GET', url: '/v1/migrations?name=Not%20A%20Slug' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_FAILED');
  });

  it('pages with limit and cursor without duplicates or gaps', async () => {
    expect(await allPages('?limit=3')).toEqual([
      ['m6', 'm5', 'm4'],
      ['m3', 'm2', 'm1'],
      ['m0'],
    ]);
    expect(await allPages('?limit=1')).toEqual([['m6'], ['m5'], ['m4'], ['m3'], ['m2'], ['m1'], ['m0']]);
    // A page that ends exactly at the last row says so: no empty page after it.
    expect(await allPages('?limit=7')).toEqual([['m6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']]);
    expect(await allPages('?limit=6')).toEqual([['m6', 'm5', 'm4', 'm3', 'm2', 'm1'], ['m0']]);
  });

  it('pages within a filter', async () => {
    expect(await allPages('?phase=draft&limit=2')).toEqual([
      ['m6', 'm5'],
      ['m4', 'm0'],
    ]);
    expect(await allPages('?status=active&limit=2')).toEqual([
      ['m6', 'm5'],
      ['m2', 'm1'],
      ['m0'],
    ]);
  });

  it('keeps its place when a migration is created between pages', async () => {
    const first = await names('?limit=3');
    expect(first.names).toEqual(['m6', 'm5', 'm4']);
    const late = await createMigration(h.app, 'late');
    const rest = await allPages('?limit=3', first.nextCursor);
    expect(rest).toEqual([['m3', 'm2', 'm1'], ['m0']]);
    expect((await names('?limit=1')).names).toEqual([late.name]);
    const aborted = await act(h.app, late.id, 'abort');
    expect(aborted.status).toBe('aborted');
  });

  it('answers 400 for a cursor it did not issue and for bad query values', async () => {
    for (const cursor of ['zzzz', 'djE6', Buffer.from('v1:-1').toString('base64url'), Buffer.from('v2:5').toString('base64url')]) {
      const res = await call(h.app, { method: 'GET', url: `/v1/migrations?cursor=${cursor}` });
      expect(res.status, cursor).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'querystring.cursor' } });
    }
    const cases: [string, string][] = [
      ['?cursor=a%2Bb', 'querystring.cursor'],
      ['?limit=0', 'querystring.limit'],
      ['?limit=501', 'querystring.limit'],
      ['?limit=ten', 'querystring.limit'],
      ['?phase=finished', 'querystring.phase'],
      ['?status=running', 'querystring.status'],
      ['?sort=name', 'querystring.sort'],
    ];
    for (const [query, field] of cases) {
      const res = await call(h.app, { method: 'GET', url: `/v1/migrations${query}` });
      expect(res.status, query).toBe(400);
      expect(res.body.error.code, query).toBe('VALIDATION_FAILED');
      expect((res.body.error.details.problems as { field: string }[]).map((p) => p.field), query).toContain(field);
    }
  });
});
