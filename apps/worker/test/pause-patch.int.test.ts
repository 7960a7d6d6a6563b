import { mappingDiff, waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 200_000;
const mapping = { id: 'id', v: 'v * 2' };
// The way back of the mapping (issue 12 §1): every source column the mapping reads comes back.
const reverseMapping = { v: 'v / 2' };
let f: BackfillFixture;

beforeAll(async () => {
  f = await createBackfillFixture('pause');
  await f.user.query(`
    create table src (id bigint primary key, v int);
    insert into src select g, g from generate_series(1, ${ROWS}) g;
    analyze src;
    create table dst (id bigint primary key, v int);`);
  await f.startWorker();
  await f.startWorker();
});

afterAll(async () => {
  await f?.close();
});

const q = async <T>(text: string, values: unknown[]) => (await f.orch.query(text, values)).rows as T[];

describe('pause, resume and live PATCH', () => {
  it('pause stops new chunks within one chunk time, resume completes exactly, PATCH of chunk size applies to the next chunk', async () => {
    const targetChunkMs = 500;
    const id = await driveToBackfill(f.engine, {
      name: 'pause-patch',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: 'dst', key: 'id' },
      mapping,
      reverseMapping,
      backfill: { initialChunkRows: 4000, minChunkRows: 4000, maxChunkRows: 4000, concurrency: 2, targetChunkMs },
    });
    const done = async () => (await q<{ n: number }>(`select count(*)::int as n from backfill_chunks where migration_id = $1 and status = 'done'`, [id]))[0]?.n ?? 0;
    await waitFor('3 chunks done', async () => (await done()) >= 3, 60_000, 5);

    const paused = await f.engine.migrations.act(id, 'pause', { actor: 'test' });
    expect(paused.status).toBe('paused');
    await waitFor('in-flight chunks finished', async () => {
      const r = await q<{ n: number }>(`select count(*)::int as n from backfill_chunks where migration_id = $1 and status = 'running'`, [id]);
      return r[0]?.n === 0;
    }, 10_000, 10);
    const doneWhenPaused = await done();
    // Hold the pause for a while (several reconcile rounds of 250 ms), then look at what started.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await done()).toBe(doneWhenPaused);
    const late = await q<{ n: number }>(
      `select count(*)::int as n from backfill_chunks c, migration_events e
       where c.migration_id = $1 and e.migration_id = $1 and e.action = 'pause'
         and c.started_at > e.at + make_interval(secs => $2)`,
      [id, targetChunkMs / 1000],
    );
    expect(late[0]?.n).toBe(0);
    expect(doneWhenPaused).toBeLessThan(ROWS / 4000);

    await f.engine.migrations.act(id, 'resume', { actor: 'test' });
    await waitFor('2 more chunks done', async () => (await done()) >= doneWhenPaused + 2, 60_000, 5);
    await f.engine.migrations.patch(id, { backfill: { initialChunkRows: 700, minChunkRows: 700, maxChunkRows: 700 } }, { actor: 'test', role: 'operator' });
    const p = await waitForBackfill(f.engine, id, 90_000);
    expect(p.rowsCopied).toBe(ROWS);

    // Every chunk planned after the PATCH committed holds at most 700 rows; before it, 4000.
    const sizes = await q<{ after: boolean; rows: number }>(
      `select c.created_at > e.at + interval '100 milliseconds' as after, c.rows_copied as rows
       from backfill_chunks c, migration_events e
       where c.migration_id = $1 and e.migration_id = $1 and e.action = 'patch' and c.status = 'done' order by c.id`,
      [id],
    );
    const after = sizes.filter((s) => s.after);
    expect(after.length).toBeGreaterThan(10);
    expect(Math.max(...after.map((s) => s.rows))).toBeLessThanOrEqual(700);
    expect(sizes.filter((s) => !s.after).some((s) => s.rows === 4000)).toBe(true);
    const patchEvent = (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'patch');
    expect(patchEvent?.details['changed']).toEqual(['backfill.initialChunkRows', 'backfill.minChunkRows', 'backfill.maxChunkRows']);
    expect(await mappingDiff(f.user, { source: 'src', target: 'dst', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });
});
