import { createEngine } from '@tideway/engine';
import { mappingDiff } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

// No worker runs until the budget has been checked: a worker's reconciler pumps every active
// backfill with its own budget, which would race the budget under test.
let f: BackfillFixture;

beforeAll(async () => {
  f = await createBackfillFixture('budget');
  await f.user.query(`
    create table budget_a (id bigint primary key, v int);
    create table budget_b (id bigint primary key, v int);
    insert into budget_a select g, g from generate_series(1, 20000) g;
    insert into budget_b select g, g from generate_series(1, 20000) g;
    create table budget_a2 (id bigint primary key, v int);
    create table budget_b2 (id bigint primary key, v int);`);
});

afterAll(async () => {
  await f?.close();
});

describe('per-datasource concurrency budget', () => {
  it('is shared by every migration on the datasource', async () => {
    const budgetEngine = createEngine({ db: f.orch.db, datasources: { main: f.user.url }, queue: null, datasourceConcurrency: 1 });
    try {
      // Plan with a budget of 1 for two migrations that each allow 2 chunks in flight.
      const ids: string[] = [];
      for (const t of ['a', 'b']) {
        ids.push(
          await driveToBackfill(budgetEngine, {
            name: `budget-${t}`,
            syncMode: 'trigger',
            source: { datasource: 'main', table: `budget_${t}`, key: 'id' },
            target: { datasource: 'main', table: `budget_${t}2`, key: 'id' },
            mapping: { id: 'id', v: 'v' },
            backfill: { concurrency: 2 },
          }),
        );
      }
      for (const id of ids) await budgetEngine.backfill.pump(id);
      const inFlight = await f.orch.query<{ n: number }>(
        `select count(*)::int as n from backfill_chunks where migration_id = any($1) and status in ('pending', 'running')`,
        [ids],
      );
      expect(inFlight.rows[0]?.n).toBe(1);
      // With a budget of 4 (the fixture's engine) both get their 2; a worker then finishes them.
      for (const id of ids) await f.engine.backfill.pump(id);
      const both = await f.orch.query<{ n: number }>(
        `select count(*)::int as n from backfill_chunks where migration_id = any($1) and status in ('pending', 'running')`,
        [ids],
      );
      expect(both.rows[0]?.n).toBe(4);
      await f.startWorker();
      for (const id of ids) await waitForBackfill(f.engine, id);
      for (const t of ['a', 'b']) {
        expect(await mappingDiff(f.user, { source: `budget_${t}`, target: `budget_${t}2`, mapping: { id: 'id', v: 'v' } })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
      }
    } finally {
      await budgetEngine.close();
    }
  });
});
