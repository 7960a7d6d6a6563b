import { fileURLToPath } from 'node:url';
import { mappingDiff, startTsProcess, type TsProcess } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const WORKER_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const WRITER = fileURLToPath(new URL('./support/writer.ts', import.meta.url));
const ROWS = 200_000;
const SEEDS = process.env["SEEDS"] ? process.env["SEEDS"].split(",").map(Number) : [11, 23, 37, 41, 59];

const mapping = {
  id: 'id',
  customer_id: 'customer_id',
  subtotal_cents: '(total_cents * 0.92)::bigint',
  status: "CASE status_code WHEN 0 THEN 'placed' WHEN 1 THEN 'paid' ELSE 'other' END",
  payload: 'payload',
};

let f: BackfillFixture;
const workers: TsProcess[] = [];

beforeAll(async () => {
  f = await createBackfillFixture('concurrent');
  for (const name of ['w1', 'w2']) workers.push(await startTsProcess(WORKER_MAIN, { ...f.env, TIDEWAY_WORKER_NAME: name }));
});

afterAll(async () => {
  for (const w of workers) await w.kill('SIGTERM');
  await f?.close();
});

describe('backfill under concurrent writes (trigger sync)', () => {
  it.each(SEEDS)('ends exact with a writer inserting, updating, re-keying and deleting (seed %i)', async (seed) => {
    const source = `orders_${seed}`;
    const target = `orders_${seed}_v2`;
    await f.user.query(`
      create table ${source} (id bigint primary key, customer_id bigint, total_cents bigint, status_code int, payload text);
      insert into ${source} select g, g % 1000, g * 7 % 100000, g % 3, md5(g::text) from generate_series(1, ${ROWS}) g;
      analyze ${source};
      create table ${target} (id bigint primary key, customer_id bigint, subtotal_cents bigint, status text, payload text);`);
    const writer = await startTsProcess(WRITER, { WRITER_URL: f.user.url, WRITER_TABLE: source, WRITER_SEED: String(seed), WRITER_MAX_ID: String(ROWS) });
    try {
      const id = await driveToBackfill(f.engine, {
        name: `concurrent-${seed}`,
        syncMode: 'trigger',
        source: { datasource: 'main', table: source, key: 'id' },
        target: { datasource: 'main', table: target, key: 'id' },
        mapping,
        // A backfill test: the mapping is lossy (CASE, ×0.92), so it declares no way back after write cutover.
        rollbackAfterWriteCutover: false,
        backfill: { initialChunkRows: 2000, maxChunkRows: 10_000, targetChunkMs: 150, concurrency: 2 },
      });
      const progress = await waitForBackfill(f.engine, id, 90_000);
      expect(progress.chunksFailed).toBe(0);
    } finally {
      await writer.kill('SIGTERM');
    }
    const last = writer.output().trim().split("\n").pop() ?? "";
    if (!last.startsWith("{")) throw new Error(`writer failed:\n${writer.output()}`);
    const counts = JSON.parse(last) as Record<string, number>;
    // The writer really raced the backfill.
    expect(counts['updates']).toBeGreaterThan(100);
    expect(counts['deletes']).toBeGreaterThan(20);
    expect(counts['inserts']).toBeGreaterThan(20);
    expect(counts['keyChanges']).toBeGreaterThan(5);
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });
});
