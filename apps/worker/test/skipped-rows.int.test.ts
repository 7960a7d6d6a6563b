import { GateNotMetError } from '@tideway/core';
import { mappingDiff, waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, type BackfillFixture } from './fixture.js';

// Issue 18 §5, "no row skipped silently": a chunk that fails on the data of a few rows is bisected
// down to them; the rest is copied, the rows are listed with their errors, and the backfill gate
// refuses until each is re-driven after a fix or accepted by an admin with a reason.
let f: BackfillFixture;
const ROWS = 200_000;
/** Source rows whose v breaks the target's CHECK (v >= 0), spread over the key space and chunks. */
const BAD = [1, 2, 777, 50_001, 123_457, 199_999, 200_000];

beforeAll(async () => {
  f = await createBackfillFixture('skip');
  await f.startWorker();
});

afterAll(async () => {
  await f?.close();
});

async function finished(id: string) {
  return waitFor('every chunk finished', async () => {
    const p = await f.engine.backfillReadModel.progress(id);
    return p?.completedAt ? p : null;
  }, 120_000);
}

describe('rows that fail on their data', () => {
  it(`${BAD.length} of ${ROWS} rows break a target CHECK: the other ${ROWS - BAD.length} are copied, the ${BAD.length} listed; the gate waits until they are re-driven or accepted`, async () => {
    await f.user.query(`
      create table skip_src (id bigint primary key, v int, note text);
      insert into skip_src select g, g % 1000, 'n' || g from generate_series(1, ${ROWS}) g;
      update skip_src set v = -1 where id = any(array[${BAD.join(',')}]::bigint[]);
      analyze skip_src;
      create table skip_dst (id bigint primary key, v int constraint v_nonnegative check (v >= 0), note text);`);
    const id = await driveToBackfill(f.engine, {
      name: 'skip-check',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'skip_src', key: 'id' },
      target: { datasource: 'main', table: 'skip_dst', key: 'id' },
      mapping: { id: 'id', v: 'v', note: 'note' },
      backfill: { initialChunkRows: 4000, maxChunkRows: 8000 },
    });
    const p = await finished(id);
    expect(p).toMatchObject({ chunksFailed: 0, chunksSkipped: BAD.length, rowsCopied: ROWS - BAD.length, skippedRows: { unresolved: BAD.length, redriven: 0, accepted: 0 } });
    expect((await f.user.query<{ n: number }>(`select count(*)::int as n from skip_dst`)).rows[0]?.n).toBe(ROWS - BAD.length);

    const listed = await f.engine.backfillReadModel.skippedRows(id, { limit: 100 });
    expect(listed.items.map((r) => Number(r.key[0])).sort((a, b) => a - b)).toEqual(BAD);
    for (const row of listed.items) {
      expect(row).toMatchObject({ sqlstate: '23514', constraint: 'v_nonnegative', resolution: null });
      expect(row.error).toContain('v_nonnegative');
    }
    const gate = (await f.engine.migrations.describe(id)).gates.find((g) => g.name === 'backfill-complete');
    expect(gate).toMatchObject({ passed: false, observed: expect.objectContaining({ skippedRowsUnresolved: BAD.length }) });
    expect(gate?.message).toContain(`${BAD.length} row(s) skipped on their data`);
    expect(await f.engine.migrations.act(id, 'advance', { actor: 'test' }).catch((e: unknown) => e)).toBeInstanceOf(GateNotMetError);

    // Four are fixed at the source (the trigger sync copies them at once); the re-drive resolves
    // them and lists the three still broken with their error.
    const fixed = BAD.slice(0, 4);
    await f.user.query(`update skip_src set v = 5 where id = any(array[${fixed.join(',')}]::bigint[])`);
    const migration = (await f.engine.migrations.describe(id)).migration;
    const redrive = await f.engine.backfill.redriveSkippedRows(migration, 'olga-operator');
    expect(redrive.redriven.map((k) => Number(k[0])).sort((a, b) => a - b)).toEqual(fixed);
    expect(redrive.stillFailing.map((s) => Number(s.key[0])).sort((a, b) => a - b)).toEqual(BAD.slice(4));
    expect(redrive.stillFailing[0]?.error).toContain('v_nonnegative');
    expect((await f.engine.backfillReadModel.progress(id))?.skippedRows).toEqual({ unresolved: 3, redriven: 4, accepted: 0 });
    expect(await f.engine.migrations.act(id, 'advance', { actor: 'test' }).catch((e: unknown) => e)).toBeInstanceOf(GateNotMetError);

    // An admin accepts the other three, with a reason: audited, and the gate passes.
    const accepted = await f.engine.backfill.acceptSkippedRows(migration, { actor: 'ada-admin', reason: 'negative balances of closed test accounts' });
    expect(accepted.map((k) => Number(k[0])).sort((a, b) => a - b)).toEqual(BAD.slice(4));
    const events = await f.engine.migrationReadModel.allEvents(id);
    expect(events.filter((e) => e.action.startsWith('backfill.skipped_rows_'))).toEqual([
      expect.objectContaining({ action: 'backfill.skipped_rows_redriven', actor: 'olga-operator', details: expect.objectContaining({ rows: 4, stillFailing: 3 }) }),
      expect.objectContaining({ action: 'backfill.skipped_rows_accepted', actor: 'ada-admin', reason: 'negative balances of closed test accounts', details: expect.objectContaining({ rows: 3 }) }),
    ]);
    // The application goes on writing an accepted row: its sync fails into the ledger, as any
    // write the target refuses, but an accepted row holds no gate.
    await f.user.query(`update skip_src set note = 'still written' where id = ${BAD[5]}`);
    await waitFor('the refused sync in the ledger', async () => {
      const r = await f.orch.query<{ n: number }>(`select count(*)::int as n from divergences where migration_id = $1 and kind = 'dual_write_failure' and key = $2`, [id, JSON.stringify([String(BAD[5])])]);
      return (r.rows[0]?.n ?? 0) > 0 ? true : null;
    }, 30_000);
    expect((await f.engine.backfillReadModel.progress(id))?.writeFailuresPending).toBe(0);
    const advanced = await f.engine.migrations.act(id, 'advance', { actor: 'test' });
    expect(advanced.phase).toBe('shadow_read');
    // The target is the mapping of the source, but for the three rows accepted out of it.
    expect(await mappingDiff(f.user, { source: 'skip_src', target: 'skip_dst', mapping: { id: 'id', v: 'v', note: 'note' } })).toEqual({ missingOrDifferent: 3, extraOrDifferent: 0 });
    // Verification does not count them as missing (they are out on purpose); anything else it does.
    await f.user.query(`delete from skip_dst where id = 100`);
    const started = await f.engine.verification.start(advanced, 'test');
    const verified = await waitFor('verification finished', async () => {
      const v = await f.engine.verification.view(started.id);
      return v.status === 'running' ? null : v;
    }, 120_000);
    expect(verified).toMatchObject({ status: 'failed', missingInTarget: 1, extraInTarget: 0, different: 0 });
  }, 240_000);

  it('an error on every row (the mapping divides by zero) fails the migration within a bounded number of splits instead of bisecting the table', async () => {
    await f.user.query(`
      create table skip_all_src (id bigint primary key, v int);
      insert into skip_all_src select g, 0 from generate_series(1, 4000) g;
      analyze skip_all_src;
      create table skip_all_dst (id bigint primary key, v int);`);
    const id = await driveToBackfill(f.engine, {
      name: 'skip-all',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'skip_all_src', key: 'id' },
      target: { datasource: 'main', table: 'skip_all_dst', key: 'id' },
      mapping: { id: 'id', v: '1 / v' },
      rollbackAfterWriteCutover: false,
      backfill: { initialChunkRows: 1000, maxChunkRows: 1000, maxSkippedRows: 5 },
    });
    const failed = await waitFor('the migration failed', async () => {
      const m = await f.engine.migrationReadModel.get(id);
      return m?.status === 'failed' ? m : null;
    }, 60_000);
    expect(failed.phase).toBe('backfill');
    const [event] = (await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.action === 'fail');
    // Chunks are halved a level at a time across the table: the split budget (6 × 2 × 10 levels)
    // ends it long before 4,000 one-row chunks would have been reached.
    expect(event?.reason).toContain('chunk splits on data errors, more than 120 (backfill.maxSkippedRows 5)');
    expect(event?.details).toMatchObject({ splitBudget: 120, maxSkippedRows: 5, sqlstate: '22012' });
    const chunks = await f.engine.backfillReadModel.chunks(id, { limit: 1000 });
    expect(chunks.items.filter((c) => c.status === 'split').length).toBeLessThanOrEqual(121 + 2);
    expect((await f.user.query<{ n: number }>(`select count(*)::int as n from skip_all_dst`)).rows[0]?.n).toBe(0);

    // The data is fixed but for two rows; a resume gives bisection a fresh budget, which isolates them.
    await f.user.query(`update skip_all_src set v = 1 where id not in (10, 3999)`);
    await f.engine.migrations.act(id, 'resume', { actor: 'test' });
    const p = await finished(id);
    expect(p).toMatchObject({ chunksFailed: 0, rowsCopied: 3998, skippedRows: { unresolved: 2 } });
    expect((await f.engine.backfillReadModel.skippedRows(id, {})).items.map((r) => r.key[0]).sort()).toEqual(['10', '3999']);
    expect((await f.engine.migrationReadModel.get(id))?.status).toBe('active');
  }, 120_000);

  it('a key whose unique index orders its columns otherwise: rows are listed, re-driven and accepted by spec.source.key', async () => {
    await f.user.query(`
      create table skip_multi_src (tenant text not null, id int not null, v int, primary key (id, tenant));
      insert into skip_multi_src select 't' || (g % 3), g, g from generate_series(1, 3000) g;
      update skip_multi_src set v = -id where id in (5, 2500);
      create table skip_multi_dst (tenant text not null, id int not null, v int check (v >= 0), primary key (id, tenant));`);
    const id = await driveToBackfill(f.engine, {
      name: 'skip-multi',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'skip_multi_src', key: ['tenant', 'id'] },
      target: { datasource: 'main', table: 'skip_multi_dst', key: ['tenant', 'id'] },
      mapping: { tenant: 'tenant', id: 'id', v: 'v' },
      backfill: { initialChunkRows: 1000, maxChunkRows: 1000 },
    });
    await finished(id);
    const listed = (await f.engine.backfillReadModel.skippedRows(id, {})).items.map((r) => r.key);
    expect(listed.sort()).toEqual([['t1', '2500'], ['t2', '5']]);
    // The one fixed is re-driven by its spec-order key; the other is accepted by it.
    await f.user.query(`update skip_multi_src set v = 1 where id = 5`);
    await f.user.query(`delete from skip_multi_dst where id = 5`); // the sync copied it; the re-drive must do it again
    const migration = (await f.engine.migrations.describe(id)).migration;
    const redrive = await f.engine.backfill.redriveSkippedRows(migration, 'test', [['t2', '5']]);
    expect(redrive).toEqual({ redriven: [['t2', '5']], stillFailing: [] });
    expect((await f.user.query(`select tenant, id, v from skip_multi_dst where id = 5`)).rows).toEqual([{ tenant: 't2', id: 5, v: 1 }]);
    expect(await f.engine.backfill.acceptSkippedRows(migration, { actor: 'test', reason: 'r', keys: [['t1', '2500']] })).toEqual([['t1', '2500']]);
    expect((await f.engine.backfillReadModel.progress(id))?.skippedRows).toEqual({ unresolved: 0, redriven: 1, accepted: 1 });
  }, 120_000);
});
