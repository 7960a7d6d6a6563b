import { resolveSpec } from '@tideway/core';
import { createTestDatabase, mappingDiff, type TestDatabase } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkCopier, DatasourceRegistry } from '../src/index.js';

let source: TestDatabase;
let target: TestDatabase;
let datasources: DatasourceRegistry;

beforeAll(async () => {
  source = await createTestDatabase('copier_src');
  target = await createTestDatabase('copier_dst');
  await source.query(`create table items (id bigint primary key, qty int, label text); insert into items select g, g % 7, 'l' || g from generate_series(1, 5000) g`);
  await target.query(`create table items_v2 (id bigint primary key, qty2 int, label text)`);
  datasources = new DatasourceRegistry({ src: source.url, dst: target.url });
});

afterAll(async () => {
  await datasources?.close();
  await source?.drop();
  await target?.drop();
});

const spec = resolveSpec({
  name: 'copier',
  syncMode: 'application',
  source: { datasource: 'src', table: 'items', key: 'id' },
  target: { datasource: 'dst', table: 'items_v2', key: 'id' },
  mapping: { id: 'id', qty2: 'qty * 2', label: 'label' },
});
const key = { columns: ['id'], types: ['bigint'] };

async function targetRows(): Promise<{ id: string; qty2: number; label: string }[]> {
  return (await target.query<{ id: string; qty2: number; label: string }>('select id, qty2, label from items_v2 order by id')).rows;
}

describe('ChunkCopier across datasources', () => {
  it('copies a range with COPY straight into an empty target range', async () => {
    const r = await new ChunkCopier(datasources).copy(spec, key, ['1000'], ['3000'], { timeoutMs: 30_000 });
    expect(r.rows).toBe(2000);
    const rows = await targetRows();
    expect(rows).toHaveLength(2000);
    expect(rows[0]).toEqual({ id: '1001', qty2: (1001 % 7) * 2, label: 'l1001' });
  });

  it('falls back to staging and upsert when the range overlaps rows already in the target', async () => {
    await source.query(`update items set qty = 100, label = 'changed' where id in (1500, 2500)`);
    const r = await new ChunkCopier(datasources).copy(spec, key, null, null, { timeoutMs: 30_000 });
    expect(r.rows).toBe(5000);
    const rows = await targetRows();
    expect(rows).toHaveLength(5000);
    expect(rows.find((x) => x.id === '2500')).toEqual({ id: '2500', qty2: 200, label: 'changed' });
    // Source and target in different databases: compare the mapped source against the target here.
    const mapped = (await source.query<{ id: string; qty2: number; label: string }>('select id, qty * 2 as qty2, label from items order by id')).rows;
    expect(rows).toEqual(mapped);
    expect(mappingDiff).toBeTypeOf('function');
  });
});
