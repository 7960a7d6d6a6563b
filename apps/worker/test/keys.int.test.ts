import { InvalidSpecError } from '@tideway/core';
import { syncTriggerName } from '@tideway/engine';
import { mappingDiff, unguarded } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

let f: BackfillFixture;

beforeAll(async () => {
  f = await createBackfillFixture('keys');
  await f.user.query(`
    create table by_uuid (id uuid primary key default gen_random_uuid(), v int not null);
    insert into by_uuid (v) select g from generate_series(1, 5000) g;
    create table by_uuid_v2 (id uuid primary key, v2 int);
    create table by_text (code text primary key, v int);
    insert into by_text select 'k' || lpad(g::text, 6, '0') || (case when g % 2 = 0 then 'é' else 'Z' end), g from generate_series(1, 4000) g;
    create table by_text_v2 (code text primary key, v int);
    create table by_pair (tenant int not null, seq bigint not null, label text, primary key (tenant, seq));
    insert into by_pair select g % 13, g, 'l' || g from generate_series(1, 6000) g;
    create table by_pair_v2 (tenant int not null, seq bigint not null, label text, primary key (tenant, seq));
    create table empty_src (id bigint primary key, v int);
    create table empty_dst (id bigint primary key, v int);
    create table synced (id bigint primary key, v int);
    insert into synced select g, g from generate_series(1, 100) g;
    create table synced_v2 (id bigint primary key, v int);`);
  await f.startWorker();
});

afterAll(async () => {
  await f?.close();
});

const small = { initialChunkRows: 300, minChunkRows: 100, maxChunkRows: 700, concurrency: 2 };

interface KeyCase {
  name: string;
  source: string;
  target: string;
  key: string | string[];
  mapping: Record<string, string>;
  /** The way back, where the mapping does not copy every column it reads. */
  reverseMapping?: Record<string, string>;
  rows: number;
}

describe.each<KeyCase>([
  { name: 'uuid', source: 'by_uuid', target: 'by_uuid_v2', key: 'id', mapping: { id: 'id', v2: 'v * 2' }, reverseMapping: { v: 'v2 / 2' }, rows: 5000 },
  { name: 'text', source: 'by_text', target: 'by_text_v2', key: 'code', mapping: { code: 'code', v: 'v' }, rows: 4000 },
  { name: 'composite', source: 'by_pair', target: 'by_pair_v2', key: ['seq', 'tenant'], mapping: { tenant: 'tenant', seq: 'seq', label: 'upper(label)' }, reverseMapping: { label: 'lower(label)' }, rows: 6000 },
  { name: 'empty', source: 'empty_src', target: 'empty_dst', key: 'id', mapping: { id: 'id', v: 'v' }, rows: 0 },
])('$name key', ({ name, source, target, key, mapping, reverseMapping, rows }) => {
  it('copies every row exactly in keyset chunks', async () => {
    const id = await driveToBackfill(f.engine, {
      name: `keys-${name}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: source, key },
      target: { datasource: 'main', table: target, key },
      mapping,
      ...(reverseMapping ? { reverseMapping } : {}),
      backfill: small,
    });
    const p = await waitForBackfill(f.engine, id);
    expect(p.rowsCopied).toBe(rows);
    expect(await mappingDiff(f.user, { source, target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    // Chunks tile the key space: each lower bound is the previous upper bound, first and last open.
    const chunks = await f.orch.query<{ lower_key: string[] | null; upper_key: string[] | null }>(
      `select lower_key, upper_key from backfill_chunks where migration_id = $1 order by id`,
      [id],
    );
    expect(chunks.rows[0]?.lower_key).toBeNull();
    expect(chunks.rows.at(-1)?.upper_key).toBeNull();
    chunks.rows.slice(1).forEach((c, i) => expect(c.lower_key).toEqual(chunks.rows[i]?.upper_key));
    if (rows > 0) expect(chunks.rows.length).toBeGreaterThan(rows / 700);
  });
});

describe('sync trigger', () => {
  it('is converged from the state: three statement triggers, idempotently; syncs inserts/updates/deletes; rollback removes every object', async () => {
    const spec = {
      name: 'sync-trigger',
      syncMode: 'trigger' as const,
      source: { datasource: 'main', table: 'synced', key: 'id' },
      target: { datasource: 'main', table: 'synced_v2', key: 'id' },
      mapping: { id: 'id', v: 'v + 1000' },
      reverseMapping: { v: 'v - 1000' },
    };
    const m = await f.engine.migrations.create(unguarded(spec), { actor: 'test' });
    await f.engine.migrations.act(m.id, 'start', { actor: 'test' });
    const advanced = await f.engine.migrations.act(m.id, 'advance', { actor: 'test' });
    const base = syncTriggerName(m.id);
    const triggers = await f.user.query<{ tgname: string; comment: string }>(
      `select tgname, obj_description(oid, 'pg_trigger') as comment from pg_trigger where tgrelid = 'synced'::regclass and not tgisinternal order by tgname`,
    );
    expect(triggers.rows.map((r) => r.tgname)).toEqual([`${base}_del`, `${base}_ins`, `${base}_upd`]);
    for (const t of triggers.rows) expect(t.comment).toMatch(new RegExp(`^tideway:[a-z0-9]+:${m.id}:forward:trigger-`));
    // Converging again changes nothing; the transition's event lists what it created.
    expect(await f.engine.desiredState.converge({ migration: advanced, db: f.engine.db })).toEqual([]);
    const events = await f.engine.migrationReadModel.allEvents(m.id);
    const converged = (events.at(-1)?.details['converged'] ?? []) as { object: string; action: string }[];
    expect(converged.map((c) => c.action)).toEqual(['created', 'created', 'created', 'created', 'created', 'created']);

    await f.user.query(`insert into synced values (1000, 5); update synced set v = 7 where id = 1; delete from synced where id = 2; update synced set id = 5000 where id = 3`);
    const rows = await f.user.query(`select id, v from synced_v2 order by id`);
    expect(rows.rows).toEqual([{ id: '1', v: 1007 }, { id: '1000', v: 1005 }, { id: '5000', v: 1003 }]);

    await f.engine.migrations.act(m.id, 'rollback', { actor: 'test' });
    const left = await f.user.query(
      `select relname as name from pg_class where relname like $1 union all select proname from pg_proc where proname like $1 union all select tgname from pg_trigger where tgname like $1`,
      [`tideway%${m.id.replace(/-/g, '').slice(0, 12)}%`],
    );
    expect(left.rows).toEqual([]);
    await f.user.query(`update synced set v = 8 where id = 1`);
    expect((await f.user.query(`select v from synced_v2 where id = 1`)).rows).toEqual([{ v: 1007 }]);
  });
});

describe('mapping expressions are rejected at create with the construct named', () => {
  it.each([
    ['subquery', '(select max(v) from synced)', 'subquery'],
    ['DML / multiple statements', 'v; delete from synced', 'mapping.v'],
    ['volatile function', 'random()', 'function:random'],
    ['clock function', 'now()', 'function:now'],
    ['unknown function', 'my_udf(v)', 'function:my_udf'],
    ['other table', 'other.v', 'qualified-column:other.v'],
    ['aggregate', 'count(*)', 'aggregate'],
  ])('%s', async (_label, expression, expected) => {
    const error = await f.engine.migrations
      .create(
        {
          name: `bad-${Math.random().toString(36).slice(2, 8)}`,
          syncMode: 'trigger',
          source: { datasource: 'main', table: 'synced', key: 'id' },
          target: { datasource: 'main', table: 'synced_v2', key: 'id' },
          mapping: { id: 'id', v: expression },
        },
        { actor: 'test' },
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidSpecError);
    const problems = (error as InvalidSpecError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]?.field).toBe('mapping.v');
    expect(`${problems[0]?.field} ${problems[0]?.problem}`).toContain(expected);
    expect((await f.orch.query(`select count(*)::int as n from migrations where name like 'bad-%'`)).rows[0]).toEqual({ n: 0 });
  });
});
