import { InvalidSpecError } from '@tideway/core';
import { mappingDiff, waitFor } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

// Issue 11 §5: a schema change to a table under migration never becomes an application outage, and
// the migration pauses with the DDL named.
let f: BackfillFixture;
const ROWS = 60_000;

beforeAll(async () => {
  f = await createBackfillFixture('ddl');
  await f.startWorker();
});

afterAll(async () => {
  await f?.close();
});

let n = 0;
async function tables(): Promise<{ source: string; target: string }> {
  n++;
  const source = `ddl_src_${n}`;
  const target = `ddl_dst_${n}`;
  await f.user.query(`
    create table ${source} (id bigint primary key, name text, v int);
    insert into ${source} select g, 'n' || g, g % 100 from generate_series(1, ${ROWS}) g;
    analyze ${source};
    create table ${target} (id bigint primary key, name text, v bigint);`);
  return { source, target };
}

/** An application writing the source through plain SQL until stopped; every error is kept. */
function writer(source: string, columns: () => 'all' | 'without-name') {
  let stop = false;
  const errors: string[] = [];
  let writes = 0;
  const done = (async () => {
    const c = new pg.Client({ connectionString: f.user.url });
    c.on('error', () => undefined);
    await c.connect();
    let i = 0;
    while (!stop) {
      i++;
      try {
        if (i % 3 === 0) {
          await (columns() === 'all'
            ? c.query(`insert into ${source} (id, name, v) values ($1, 'w', 1) on conflict (id) do update set v = excluded.v`, [ROWS + i])
            : c.query(`insert into ${source} (id, v) values ($1, 1) on conflict (id) do update set v = excluded.v`, [ROWS + i]));
        } else {
          await c.query(`update ${source} set v = v + 1 where id = $1`, [1 + ((i * 7919) % ROWS)]);
        }
        writes++;
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
    await c.end();
  })();
  return {
    errors,
    writes: () => writes,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

async function ddlEvents(id: string) {
  return (await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.actor === 'tideway:ddl-guard');
}

describe('DDL on a table under migration', () => {
  it('DROP COLUMN of a mapped source column mid-backfill: the application keeps writing, the migration pauses with the DDL named, resume is refused', async () => {
    const { source, target } = await tables();
    const id = await driveToBackfill(f.engine, {
      name: 'ddl-drop',
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping: { id: 'id', name: 'name', v: 'v' },
      backfill: { initialChunkRows: 2000, maxChunkRows: 2000, maxRowsPerSecond: 10_000 },
    });
    let dropped = false;
    const app = writer(source, () => (dropped ? 'without-name' : 'all'));
    await waitFor('the backfill under way', async () => ((await f.engine.backfillReadModel.progress(id))?.rowsCopied ?? 0) >= 4000, 30_000);
    dropped = true; // the application stops writing the column first (its writes without it are valid before and after)
    // A statement sent before the flag flipped may not be parsed yet when the DROP commits; the DROP
    // waits until the writer has finished a write begun after the flip.
    const writesAtFlip = app.writes();
    await waitFor('a write without the column', async () => (app.writes() >= writesAtFlip + 2 ? true : null), 15_000);
    await f.user.query(`alter table ${source} drop column name`);
    const writesAtDrop = app.writes();

    const paused = await waitFor('paused by the DDL guard', async () => {
      const m = await f.engine.migrationReadModel.get(id);
      return m?.status === 'paused' ? m : null;
    }, 15_000);
    expect(paused.phase).toBe('backfill');
    const [event] = await ddlEvents(id);
    expect(event).toMatchObject({ action: 'pause', reason: `DDL on the migration's tables: column name of public.${source} was dropped`, details: { ddl: [`column name of public.${source} was dropped`] } });
    const view = await f.engine.migrations.describe(id);
    expect(view.progress['ddl']).toMatchObject({ changes: [`column name of public.${source} was dropped`] });

    // The application's writes keep succeeding after the drop (the sync records what it cannot apply).
    await waitFor('writes after the drop', async () => (app.writes() >= writesAtDrop + 50 ? true : null), 15_000);
    await app.stop();
    expect(app.errors).toEqual([]);
    const failures = await waitFor('unsynced writes in the ledger', async () => {
      const r = await f.orch.query<{ n: number }>(`select count(*)::int as n from divergences where migration_id = $1 and kind = 'dual_write_failure'`, [id]);
      return (r.rows[0]?.n ?? 0) > 0 ? r.rows[0]?.n : null;
    }, 15_000);
    expect(failures).toBeGreaterThan(0);

    // The mapping reads a column that is gone: resume is refused with the problem, and changes nothing.
    const refused = await f.engine.migrations.act(id, 'resume', { actor: 'test' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidSpecError);
    expect((refused as InvalidSpecError).problems.map((p) => p.field)).toContain('mapping.name');
    expect((await f.engine.migrationReadModel.get(id))?.status).toBe('paused');
  });

  it('a change the mapping still binds to (a widened type): pauses, and resume re-binds and completes exactly', async () => {
    const { source, target } = await tables();
    const mapping = { id: 'id', name: 'name', v: 'v' };
    const id = await driveToBackfill(f.engine, {
      name: 'ddl-widen',
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      backfill: { initialChunkRows: 2000, maxChunkRows: 2000, maxRowsPerSecond: 10_000 },
    });
    await waitFor('the backfill under way', async () => ((await f.engine.backfillReadModel.progress(id))?.rowsCopied ?? 0) >= 2000, 30_000);
    await f.user.query(`alter table ${source} alter column v type bigint`);
    await waitFor('paused by the DDL guard', async () => ((await f.engine.migrationReadModel.get(id))?.status === 'paused' ? true : null), 15_000);
    expect((await ddlEvents(id))[0]?.details['ddl']).toEqual([`column v of public.${source} changed type from integer to bigint`]);
    await f.user.query(`update ${source} set v = 5000000000 where id = 7`);

    const resumed = await f.engine.migrations.act(id, 'resume', { actor: 'test' });
    expect(resumed.status).toBe('active');
    expect((await f.engine.migrations.describe(id)).progress['ddl']).toBeUndefined();
    await waitForBackfill(f.engine, id, 90_000);
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    // Accepted once: no further pause.
    expect(await f.engine.ddlGuard.changes(resumed)).toEqual([]);
    await f.engine.ddlGuard.checkAll();
    expect((await f.engine.migrationReadModel.get(id))?.status).toBe('active');
  });
});
