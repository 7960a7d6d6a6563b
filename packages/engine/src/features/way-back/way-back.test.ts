import { resolveSpec, type MigrationSpecInput } from '@tideway/core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CatalogColumn, CatalogTable } from '../datasources/catalog-inspector.js';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import { reverseMappingOf, wayBackColumns, wayBackProblems } from './way-back.js';

beforeAll(async () => {
  await loadSqlParser();
});

const base: MigrationSpecInput = {
  name: 'accounts-v2',
  syncMode: 'trigger',
  source: { datasource: 'main', table: 'pgbench_accounts', key: 'aid' },
  target: { datasource: 'main', table: 'accounts_v2', key: 'aid' },
  mapping: { aid: 'aid::bigint', branch_id: 'bid', balance_cents: 'abalance::bigint * 100' },
};

function column(name: string, over: Partial<CatalogColumn> = {}): [string, CatalogColumn] {
  return [name, { name, type: 'integer', notNull: false, hasDefault: false, generated: false, identityAlways: false, ...over }];
}
const accounts: CatalogTable = {
  columns: new Map([column('aid', { notNull: true }), column('bid'), column('abalance'), column('filler', { type: 'character(84)' })]),
  uniqueKeys: [['aid']],
  estimatedRows: 1000,
};

describe('reverseMappingOf', () => {
  it('derives copies (a column, a cast of one) and lets the given entries win', () => {
    const spec = resolveSpec({ ...base, reverseMapping: { abalance: '(balance_cents / 100)::int' } });
    expect(reverseMappingOf(spec)).toEqual({ aid: 'aid', bid: 'branch_id', abalance: '(balance_cents / 100)::int' });
    expect(reverseMappingOf(resolveSpec({ ...base, mapping: { aid: 'CAST(aid AS numeric)', "Note": '"Memo"' } }))).toEqual({ aid: 'aid', Memo: '"Note"' });
  });

  it('is null without the source key, or when the spec declares no way back', () => {
    expect(reverseMappingOf(resolveSpec({ ...base, mapping: { aid: 'aid + 0', branch_id: 'bid' } }))).toBeNull();
    expect(reverseMappingOf(resolveSpec({ ...base, rollbackAfterWriteCutover: false }))).toBeNull();
  });
});

describe('wayBackProblems', () => {
  it('names every old column the mapping reads that the way back does not produce, and the key', () => {
    const problems = wayBackProblems(resolveSpec({ ...base, mapping: { aid: 'aid + 0', branch_id: 'bid', balance_cents: 'abalance * 100' } }));
    expect(problems.map((p) => p.field)).toEqual(['reverseMapping.aid', 'reverseMapping.abalance']);
    expect(problems[1]?.problem).toMatch(/is read by mapping.balance_cents but the way back does not produce it/);
  });

  it('against the live table: NOT NULL without a default, columns that do not exist, generated and identity-always columns', () => {
    const table: CatalogTable = {
      ...accounts,
      columns: new Map([
        ...accounts.columns,
        column('created', { notNull: true }),
        column('seq', { notNull: true, hasDefault: true }),
        column('total', { generated: true, notNull: true }),
        column('rid', { notNull: true, hasDefault: true, identityAlways: true }),
      ]),
    };
    const spec = resolveSpec({ ...base, reverseMapping: { abalance: 'balance_cents / 100', total: '0', rid: '1', gone: '1' } });
    expect(wayBackProblems(spec, table).map((p) => p.field)).toEqual(['reverseMapping.created', 'reverseMapping.total', 'reverseMapping.rid', 'reverseMapping.gone']);
  });

  it('asks nothing of a spec that declares no way back', () => {
    expect(wayBackProblems(resolveSpec({ ...base, mapping: { aid: 'aid + 1' }, rollbackAfterWriteCutover: false }), accounts)).toEqual([]);
  });
});

describe('wayBackColumns', () => {
  it('lists every old column: given, derived, or not preserved', () => {
    const spec = resolveSpec({ ...base, reverseMapping: { abalance: '(balance_cents / 100)::int' } });
    expect(wayBackColumns(spec, accounts)).toEqual([
      { column: 'aid', how: 'derived', expression: 'aid' },
      { column: 'bid', how: 'derived', expression: 'branch_id' },
      { column: 'abalance', how: 'reverse-mapped', expression: '(balance_cents / 100)::int' },
      { column: 'filler', how: 'not-preserved', expression: null },
    ]);
  });
});
