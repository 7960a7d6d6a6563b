import { fileURLToPath } from 'node:url';
import { freePort, mappingDiff, startPrivateRedis, startTsProcess, waitFor, type PrivateRedis, type TsProcess } from '@tideway/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const WORKER_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const SERVER = fileURLToPath(new URL('../../control-plane/src/server.ts', import.meta.url));
const ROWS = 300_000;
const mapping = { id: 'id', total_cents: 'total * 100', note: "'n' || id::text" };

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

async function chunkStats(id: string) {
  const r = await f.orch.query<{ redone: number; done: number; max_attempts: number }>(
    `select count(*) filter (where attempts > 1)::int as redone, count(*) filter (where status = 'done')::int as done, max(attempts)::int as max_attempts
     from backfill_chunks where migration_id = $1`,
    [id],
  );
  return r.rows[0] as { redone: number; done: number; max_attempts: number };
}

describe('backfill faults', () => {
  it('SIGKILL of a worker mid-chunk: ends exact, only the killed chunk is redone', async () => {
    const { source, target } = await table();
    const a = await worker('a');
    await worker('b');
    const id = await driveToBackfill(f.engine, {
      name: `kill-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      backfill,
    });
    await waitFor('a chunk running on worker a after some progress', async () => {
      const r = await f.orch.query(`select 1 from backfill_chunks where migration_id = $1 and status = 'running' and worker = 'a' and (select count(*) from backfill_chunks where migration_id = $1 and status = 'done') >= 2`, [id]);
      return (r.rowCount ?? 0) > 0;
    }, 60_000, 5);
    await a.kill('SIGKILL');
    await waitForBackfill(f.engine, id, 90_000);
    const stats = await chunkStats(id);
    expect(stats.redone).toBeLessThanOrEqual(1);
    expect(stats.done).toBe(ROWS / 15_000 + 1); // 20 full chunks and the empty open-ended last one
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
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
    const created = await api('POST', '/v1/migrations', {
      name: `restart-${n}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      backfill,
    });
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
