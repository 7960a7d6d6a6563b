import { unguarded } from '@tideway/testing';
import { buildApp, loadConfig } from '@tideway/control-plane';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, waitForBackfill, type BackfillFixture } from './fixture.js';

// Issue 11: on a database whose search_path is `public, pg_catalog`, a harmless-looking
// lower(email) used to run a shadowing public.lower(text) and write 'PWNED' into every target row.
// Tideway's sessions run with search_path = pg_catalog, pg_temp, so the real backfill (a worker
// process's chunks) binds lower to pg_catalog.lower, writes the real lower-cased emails, and the
// attack function never runs.

const ADMIN = 'search-path-admin-token-0123456789';
const ROWS = 2_001;

let f: BackfillFixture;
let app: FastifyInstance;

beforeAll(async () => {
  f = await createBackfillFixture('searchpath');
  await f.user.query(`
    create table attack_log (n int not null);
    insert into attack_log values (0);
    create function public.lower(text) returns text language plpgsql as $$
      begin update public.attack_log set n = n + 1; return 'PWNED'; end $$;
    create table people (id bigint primary key, email text not null);
    insert into people select g, 'User.' || g || '@Example.COM' from generate_series(1, ${ROWS}) g;
    analyze people;
    create table people_v2 (id bigint primary key, email text);
    alter database "${f.user.name}" set search_path = public, pg_catalog;`);
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

describe('a shadowing function on the database search_path', () => {
  it('is really there for a session with the database defaults', async () => {
    const c = new pg.Client({ connectionString: f.user.url });
    await c.connect();
    try {
      await c.query('BEGIN');
      expect((await c.query<{ v: string }>(`select lower('ABC') as v`)).rows[0]?.v).toBe('PWNED');
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
    expect((await f.user.query<{ n: number }>('select n from attack_log')).rows[0]?.n).toBe(0);
  });

  it('does not capture lower(email): the backfill writes the real lower-cased emails and the attack never runs', async () => {
    const created = await api('POST', '/v1/migrations', unguarded({
      name: 'shadowed',
      source: { datasource: 'main', table: 'people', key: 'id' },
      target: { datasource: 'main', table: 'people_v2', key: 'id' },
      mapping: { id: 'id', email: 'lower(email)' },
      reverseMapping: { email: 'email' },
      syncMode: 'trigger',
      backfill: { initialChunkRows: 500, minChunkRows: 100, maxChunkRows: 500 },
    }));
    expect(created.status).toBe(201);
    const id = created.body['id'] as string;
    for (const action of ['start', 'advance', 'advance']) {
      const res = await api('POST', `/v1/migrations/${id}/${action}`, {});
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    const progress = await waitForBackfill(f.engine, id);
    expect(progress.rowsCopied).toBe(ROWS);

    const rows = (await f.user.query<{ id: number; email: string }>('select id::int as id, email from people_v2 order by id')).rows;
    expect(rows).toHaveLength(ROWS);
    const wrong = rows.filter((r) => r.email !== `user.${r.id}@example.com`);
    expect(wrong).toEqual([]);
    expect((await f.user.query<{ n: number }>('select n from attack_log')).rows[0]?.n).toBe(0);
  });
});
