import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrivatePostgres, startTsProcess, waitFor, type PrivatePostgres } from '../src/index.js';

let server: PrivatePostgres;

beforeAll(async () => {
  server = await startPrivatePostgres({ walLevel: 'logical', sharedPreloadLibraries: ['pg_stat_statements'], settings: { max_connections: 40 } });
});
afterAll(async () => {
  await server?.stop();
});

async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

describe('startPrivatePostgres', () => {
  it('runs a cluster of its own with the settings asked for', async () => {
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/postgres`);
    expect(server.port).not.toBe(5432);
    const rows = await query<{ wal_level: string; libs: string; max: string }>(
      server.url,
      `select current_setting('wal_level') as wal_level, current_setting('shared_preload_libraries') as libs, current_setting('max_connections') as max`,
    );
    expect(rows).toEqual([{ wal_level: 'logical', libs: 'pg_stat_statements', max: '40' }]);
    const url = await server.createDatabase('app');
    await query(url, 'create table t (id int primary key); insert into t values (1)');
  });

  it('restarts, stops for a while and recovers from a crash, keeping committed data', async () => {
    const url = server.urlFor('app');
    await server.restart();
    expect(await query(url, 'select id from t')).toEqual([{ id: 1 }]);

    const t0 = Date.now();
    const down = server.stopFor(1500);
    // While it is down a connection is refused, not hung.
    await expect
      .poll(async () => query(url, 'select 1').then(() => 'up', (e: { code?: string }) => e.code ?? 'error'), { timeout: 5000, interval: 50 })
      .toBe('ECONNREFUSED');
    await down;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(await query(url, 'select id from t')).toEqual([{ id: 1 }]);

    await query(url, 'insert into t values (2)');
    await server.halt('immediate');
    expect(server.running()).toBe(false);
    await server.start();
    expect(server.running()).toBe(true);
    expect(await query(url, 'select id from t order by id')).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('stop() ends the server and removes its directory', async () => {
    const other = await startPrivatePostgres();
    expect(existsSync(other.dir)).toBe(true);
    await other.stop();
    expect(existsSync(other.dir)).toBe(false);
    await expect(query(other.url, 'select 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await other.stop();
  });

  it('reaps the cluster of a test process that was killed before it could clean up', async () => {
    const child = await startTsProcess(fileURLToPath(new URL('./support/orphan-cluster.ts', import.meta.url)), {});
    const line = await waitFor('the orphan cluster reported', () => /ORPHAN (\{.*\})/.exec(child.output())?.[1], 10_000);
    const info = JSON.parse(line) as { dir: string; url: string };
    await child.kill('SIGKILL');
    expect(existsSync(info.dir)).toBe(true);
    expect(await query(info.url, 'select 1 as one')).toEqual([{ one: 1 }]);
    const next = await startPrivatePostgres();
    try {
      expect(existsSync(info.dir)).toBe(false);
      await expect(query(info.url, 'select 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await next.stop();
    }
  });
});
