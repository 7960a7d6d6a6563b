import { resolveSpec } from '@tideway/core';
import { createTestDatabase, mappingDiff, type TestDatabase } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CatalogInspector, ChunkCopier, DatasourceRegistry, LeaseLostError, TombstoneSweeper, syncObjects } from '../src/index.js';

const MIGRATION_ID = '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';
const TOMB = 'tideway_tomb_0b1c2d3e4f50';

let db: TestDatabase;
let datasources: DatasourceRegistry;
const clients: pg.Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase('lock_free');
  await db.query(`
    create table items (id bigint primary key, qty int, label text);
    insert into items select g, g % 7, 'l' || g from generate_series(1, 2000) g;
    create table items_v2 (id bigint primary key, qty2 int, label text);`);
  datasources = new DatasourceRegistry({ main: db.url });
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await datasources?.close();
  await db?.drop();
});

async function session(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

const mapping = { id: 'id', qty2: 'qty * 2', label: 'label' };
const spec = resolveSpec({
  name: 'lock-free',
  syncMode: 'trigger',
  source: { datasource: 'main', table: 'items', key: 'id' },
  target: { datasource: 'main', table: 'items_v2', key: 'id' },
  mapping,
});
const key = { columns: ['id'], types: ['bigint'] };
const forward = () => syncObjects({ spec, migrationId: MIGRATION_ID, installation: 'test', direction: 'forward', mapping, writtenKeyTypes: ['bigint'] });
async function install(): Promise<void> {
  for (const o of forward()) for (const statement of o.create) await db.query(statement);
}
async function uninstall(): Promise<void> {
  for (const o of forward().reverse()) await db.query(o.drop);
}
const hasTombstones = async () => (await db.query(`select to_regclass('${TOMB}') is not null as ok`)).rows[0]?.ok === true;
const tombstones = async () => (await db.query<{ k: string }>(`select id::text as k from ${TOMB} order by id`)).rows.map((r) => r.k);

describe('lock-free chunks with trigger sync', () => {
  it('installs the tombstone table with the trigger, idempotently, and the trigger records deletes and re-keys', async () => {
    await install();
    await install();
    expect(await hasTombstones()).toBe(true);
    await db.query(`delete from items where id = 10; update items set id = 5000 where id = 20; update items set qty = 1 where id = 30`);
    expect(await tombstones()).toEqual(['10', '20']);
    // The sync wrote the re-keyed and updated rows (the target held none of these keys before).
    expect((await db.query(`select id::text, qty2 from items_v2 order by id`)).rows).toEqual([
      { id: '30', qty2: 2 },
      { id: '5000', qty2: (20 % 7) * 2 },
    ]);
  });

  it('copies without locks and leaves a row the sync wrote (ON CONFLICT DO NOTHING), so a chunk never overwrites a newer value', async () => {
    // A chunk that read id 30 before its update committed would carry the old qty; the target keeps the synced one.
    const copier = new ChunkCopier(datasources);
    const r = await copier.copy(spec, key, null, ['100'], { timeoutMs: 30_000, locking: 'none' });
    // ids 1..100 less 10 and 20 (gone from the source); 30 was already there, written by the sync.
    expect(r.rows).toBe(98);
    expect((await db.query(`select count(*)::int as n from items_v2 where id <= 100`)).rows[0]).toEqual({ n: 98 });
    expect((await db.query(`select qty2 from items_v2 where id = 30`)).rows[0]).toEqual({ qty2: 2 });
    // A lost lease rolls the copy back.
    await expect(copier.copy(spec, key, ['100'], ['200'], { timeoutMs: 30_000, locking: 'none', stillLeased: async () => false })).rejects.toBeInstanceOf(LeaseLostError);
    expect((await db.query(`select count(*)::int as n from items_v2 where id > 100 and id <= 200`)).rows[0]).toEqual({ n: 0 });
  });

  it('sweeps a row a chunk copied from a snapshot taken before its source row was deleted, after older transactions end', async () => {
    // The race, made deterministic: a chunk's transaction copies id 150 (uncommitted); a writer
    // deletes it meanwhile — its trigger cannot see the uncommitted target row — and commits.
    const chunk = await session();
    await chunk.query('begin');
    await chunk.query(`insert into items_v2 (id, qty2, label) select id, qty * 2, label from items where id > 100 and id <= 200`);
    await db.query(`delete from items where id = 150`);
    const sweeper = new TombstoneSweeper(datasources, new CatalogInspector(datasources));
    // The chunk's transaction is older than the fence: the sweep waits for it.
    const waiting = await sweeper.sweep(spec, MIGRATION_ID, 100);
    expect(waiting.kind).toBe('waiting');
    const chunkPid = Number((await chunk.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid);
    expect(waiting.kind === 'waiting' ? waiting.pids : []).toContain(chunkPid);
    await chunk.query('commit');
    expect((await db.query(`select count(*)::int as n from items_v2 where id = 150`)).rows[0]).toEqual({ n: 1 });
    // A key deleted and inserted again keeps its target row.
    await db.query(`delete from items where id = 40; insert into items values (40, 3, 'back')`);
    expect(await tombstones()).toEqual(['10', '20', '40', '150']);

    const swept = await sweeper.sweep(spec, MIGRATION_ID, 5000);
    expect(swept).toEqual({ kind: 'swept', rowsRemoved: 1, tombstones: 4 });
    expect(await tombstones()).toEqual([]);
    expect((await db.query(`select label from items_v2 where id = 40`)).rows[0]).toEqual({ label: 'back' });
    // Copy the rest and the target equals the mapped source exactly.
    await new ChunkCopier(datasources).copy(spec, key, ['200'], null, { timeoutMs: 30_000, locking: 'none' });
    expect(await mappingDiff(db, { source: 'items', target: 'items_v2', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });

  it('sweeps one migration at a time and drops the tombstones with the trigger', async () => {
    const holder = await session();
    await holder.query(`select pg_advisory_lock(hashtext($1))`, [`tideway:sweep:${MIGRATION_ID}`]);
    expect(await new TombstoneSweeper(datasources, new CatalogInspector(datasources)).sweep(spec, MIGRATION_ID, 100)).toEqual({ kind: 'busy' });
    await holder.query(`select pg_advisory_unlock(hashtext($1))`, [`tideway:sweep:${MIGRATION_ID}`]);
    await uninstall();
    await uninstall();
    expect(await hasTombstones()).toBe(false);
  });
});
