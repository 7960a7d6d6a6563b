import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, mappingDiff, startPrivateRedis, startTsProcess, waitFor, type PrivateRedis, type TsProcess, unguarded } from '@tideway/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const WORKER_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const SERVER = fileURLToPath(new URL('../../control-plane/src/server.ts', import.meta.url));
const ROWS = 300_000;
const mapping = { id: 'id', total_cents: 'total * 100', note: "'n' || id::text" };
// The way back of the mapping (issue 12 §1): every source column the mapping reads comes back.
const reverseMapping = { total: 'total_cents / 100' };

let f: BackfillFixture;
// A Redis of its own: the FLUSHALL below must not take other packages' queues with it.
let redis: PrivateRedis;
let processes: TsProcess[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startPrivateRedis();
  f = await createBackfillFixture('faults', { redisUrl: redis.url });
});
afterEach(async () => {
  for (const p of processes) await p.kill();
  processes = [];
});
afterAll(async () => {
  await f?.close();
  await redis?.stop();
});

async function table(): Promise<{ source: string; target: string }> {
  n++;
  const source = `src_${n}`;
  const target = `dst_${n}`;
  await f.user.query(`
    create table ${source} (id bigint primary key, total int);
    insert into ${source} select g, g % 1000 from generate_series(1, ${ROWS}) g;
    analyze ${source};
    create table ${target} (id bigint primary key, total_cents bigint, note text);`);
  return { source, target };
}

async function worker(name: string): Promise<TsProcess> {
  const p = await startTsProcess(WORKER_MAIN, { ...f.env, TIDEWAY_WORKER_NAME: name });
  processes.push(p);
  return p;
}

// Fixed-size chunks that take a while, so a fault lands while chunks are in flight.
const backfill = { initialChunkRows: 15_000, minChunkRows: 15_000, maxChunkRows: 15_000, concurrency: 2, chunkTimeoutMs: 2000 };

/** An ACCESS EXCLUSIVE lock on `name` in an open transaction: statements on it wait until release(). */
async function holdTable(name: string): Promise<{ since: Date; release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: f.user.url });
  client.on('error', () => undefined);
  await client.connect();
  await client.query(`begin; lock table ${name} in access exclusive mode`);
  // The server's clock (orchestrator and user databases share the test server).
  const since = (await client.query<{ t: Date }>('select clock_timestamp() as t')).rows[0]?.t as Date;
  return {
    since,
    release: async () => {
      await client.query('rollback');
      await client.end();
    },
  };
}

async function chunkStats(id: string) {
  const r = await f.orch.query<{ redone: number; done: number; max_attempts: number }>(
    `select count(*) filter (where attempts - timeouts > 1)::int as redone, count(*) filter (where status = 'done')::int as done, max(attempts)::int as max_attempts
     from backfill_chunks where migration_id = $1`,
    [id],
  );
  return r.rows[0] as { redone: number; done: number; max_attempts: number };
}

describe('backfill faults', () => {
  it('SIGKILL of a worker mid-chunk: the chunk is re-leased and done within 15 s, ends exact, only the killed chunks are redone', async () => {
    const { source, target } = await table();
    const a = await worker('a');
    await worker('b');
    const id = await driveToBackfill(f.engine, {
      name: `kill-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      backfill,
    });
    await waitFor('some chunks done', async () => (await chunkStats(id)).done >= 2, 60_000, 5);
    // Hold the target so the copies in flight wait: the kill then lands mid-chunk for sure.
    const lock = await holdTable(target);
    // Leased after the lock was taken, so its copy waits on the lock: killed mid-chunk, not after.
    const killed = await waitFor('a chunk leased by worker a', async () => {
      const r = await f.orch.query<{ id: number }>(`select id from backfill_chunks where migration_id = $1 and status = 'running' and worker = 'a' and started_at > $2`, [id, lock.since]);
      return r.rows[0]?.id;
    }, 60_000, 5);
    // Worker a runs two chunks at a time: every chunk it holds now dies with it.
    const inFlight = await f.orch.query<{ n: number }>(`select count(*)::int as n from backfill_chunks where migration_id = $1 and status = 'running' and worker = 'a'`, [id]);
    await a.kill('SIGKILL');
    const t0 = Date.now();
    await lock.release();
    const relet = await waitFor('the killed chunk re-leased', async () => {
      const r = await f.orch.query<{ status: string; worker: string | null }>(`select status, worker from backfill_chunks where id = $1`, [killed]);
      const c = r.rows[0];
      return c && (c.status === 'done' || (c.status === 'running' && c.worker !== 'a')) ? Date.now() - t0 : null;
    }, 20_000, 10);
    await waitFor('the killed chunk done', async () => (await f.orch.query(`select 1 from backfill_chunks where id = $1 and status = 'done'`, [killed])).rowCount, 20_000, 10);
    const doneMs = Date.now() - t0;
    console.info(`faults: chunk of a SIGKILLed worker re-leased after ${relet} ms, done after ${doneMs} ms`);
    expect(doneMs).toBeLessThan(15_000);
    await waitForBackfill(f.engine, id, 90_000);
    const stats = await chunkStats(id);
    // Redone: the chunks the kill interrupted, no other (attempts lost to a statement timeout while
    // the test held the lock copied nothing and are not counted).
    expect(stats.redone).toBeLessThanOrEqual(Math.max(1, inFlight.rows[0]?.n ?? 0));
    expect(stats.done).toBe(ROWS / 15_000 + 1); // 20 full chunks and the empty open-ended last one
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });

  it('SIGKILL of a worker mid-range: the verification range is re-leased and done within 15 s, the verification passes', async () => {
    const { source, target } = await table();
    const g = await worker('g');
    await worker('h');
    const id = await driveToBackfill(f.engine, {
      name: `kill-range-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      backfill: { ...backfill, initialChunkRows: 50_000, maxChunkRows: 50_000, minChunkRows: 50_000 },
    });
    await waitForBackfill(f.engine, id, 90_000);
    await f.engine.migrations.act(id, 'advance', { actor: 'test' });
    // Hold the target so the range checks in flight wait; the kill lands mid-range.
    const lock = await holdTable(target);
    const v = await f.engine.verification.start((await f.engine.migrations.describeLite(id)).migration, 'test');
    const killed = await waitFor('a range running on worker g', async () => {
      const r = await f.orch.query<{ id: number }>(`select id from verification_ranges where verification_id = $1 and status = 'running' and worker = 'g'`, [v.id]);
      return r.rows[0]?.id;
    }, 30_000, 5);
    await g.kill('SIGKILL');
    const t0 = Date.now();
    await lock.release();
    await waitFor('the killed range done', async () => (await f.orch.query(`select 1 from verification_ranges where id = $1 and status = 'done'`, [killed])).rowCount, 20_000, 10);
    const doneMs = Date.now() - t0;
    console.info(`faults: verification range of a SIGKILLed worker done after ${doneMs} ms`);
    expect(doneMs).toBeLessThan(15_000);
    const final = await waitFor('verification finished', async () => {
      const view = await f.engine.verification.view(v.id);
      return view.status === 'running' ? null : view;
    }, 30_000, 50);
    expect(final).toMatchObject({ status: 'passed', missingInTarget: 0, extraInTarget: 0, different: 0 });
    const redone = await f.orch.query<{ n: number }>(`select count(*)::int as n from verification_ranges where verification_id = $1 and attempts > 1`, [v.id]);
    expect(redone.rows[0]?.n).toBe(1);
  });

  it('FLUSHALL on Redis mid-backfill: jobs are re-created from PostgreSQL, nothing is redone', async () => {
    const { source, target } = await table();
    await worker('c');
    await worker('d');
    const id = await driveToBackfill(f.engine, {
      name: `flush-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      backfill,
    });
    await waitFor('some chunks done', async () => (await chunkStats(id)).done >= 3, 60_000, 5);
    // Flush and look in one MULTI: the running workers write new keys right after the flush.
    const flushed = await f.redis.multi().flushall().keys(`${f.prefix}*`).exec();
    expect(flushed?.[1]).toEqual([null, []]);
    await waitForBackfill(f.engine, id, 90_000);
    const stats = await chunkStats(id);
    expect(stats.redone).toBeLessThanOrEqual(2);
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });

  it('control-plane restart mid-backfill: the backfill goes on, driven and watched through the API', async () => {
    const { source, target } = await table();
    await worker('e');
    await worker('f');
    const port = await freePort();
    const env = { ...f.env, TIDEWAY_PORT: String(port), TIDEWAY_ADMIN_TOKEN: 'faults-admin-token-0123456789' };
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        headers: { authorization: `Bearer ${env.TIDEWAY_ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    let server = await startTsProcess(SERVER, env);
    processes.push(server);
    const created = await api('POST', '/v1/migrations', unguarded({
      name: `restart-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      backfill,
    }));
    const id = created['id'] as string;
    for (const action of ['start', 'advance', 'advance']) await api('POST', `/v1/migrations/${id}/${action}`, {});
    await waitFor('some chunks done', async () => (((await api('GET', `/v1/migrations/${id}`))['progress'] as { chunksDone?: number }).chunksDone ?? 0) >= 3, 60_000, 10);
    await server.kill('SIGKILL');
    server = await startTsProcess(SERVER, env);
    processes.push(server);
    const final = await waitFor('backfill complete through the API', async () => {
      const m = await api('GET', `/v1/migrations/${id}`);
      const p = m['progress'] as { completedAt?: string | null; rowsCopied?: number };
      return p.completedAt ? m : null;
    }, 90_000, 50);
    expect((final['progress'] as { rowsCopied: number }).rowsCopied).toBe(ROWS);
    const gates = final['gates'] as { name: string; passed: boolean }[];
    expect(gates).toContainEqual(expect.objectContaining({ name: 'backfill-complete', passed: true }));
    expect((await chunkStats(id)).redone).toBe(0);
    // The same figures as Prometheus metrics.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain(`tideway_backfill_rows_copied{migration="restart-${n}"} ${ROWS}`);
    expect(metrics).toContain(`tideway_backfill_chunks_done{migration="restart-${n}"} ${ROWS / 15_000 + 1}`);
    expect(metrics).toContain(`tideway_backfill_chunks_failed{migration="restart-${n}"} 0`);
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    expect((await api('POST', `/v1/migrations/${id}/advance`, {}))['phase']).toBe('shadow_read');
  });
});
