import { describe, expect, it } from 'vitest';
import { describeSignatureChange, type CatalogSignature, type SignatureColumn, type TableSignature } from './catalog-signature.js';

const col = (attnum: number, name: string, type: string, typeOid: number, uses: SignatureColumn['uses'], extra: Partial<SignatureColumn> = {}): SignatureColumn => ({
  attnum,
  name,
  type,
  typeOid,
  typmod: -1,
  notNull: false,
  uses,
  ...extra,
});

const orders: TableSignature = {
  datasource: 'main',
  schema: 'public',
  table: 'orders',
  oid: 100,
  columns: [col(1, 'id', 'bigint', 20, ['read', 'key'], { notNull: true }), col(2, 'name', 'text', 25, ['read']), col(3, 'total', 'integer', 23, ['read']), col(4, 'note', 'text', 25, [])],
};
const ordersV2: TableSignature = { datasource: 'main', schema: 'public', table: 'orders_v2', oid: 200, columns: [col(1, 'id', 'bigint', 20, ['written', 'key'], { notNull: true })] };
const before: CatalogSignature = { source: orders, target: ordersV2 };
const withSource = (columns: SignatureColumn[], oid = 100): CatalogSignature => ({ source: { ...orders, oid, columns }, target: ordersV2 });

describe('describeSignatureChange', () => {
  it('is empty when nothing changed, or only columns the migration does not use', () => {
    expect(describeSignatureChange(before, before)).toEqual([]);
    const [id, name, total] = orders.columns as [SignatureColumn, SignatureColumn, SignatureColumn];
    expect(describeSignatureChange(before, withSource([id, name, total, col(5, 'added', 'int', 23, [])]))).toEqual([]);
    expect(describeSignatureChange(before, withSource([id, name, total]))).toEqual([]);
  });

  it('follows columns by attnum: a rename is a rename, a drop a drop', () => {
    const [id, name] = orders.columns as [SignatureColumn, SignatureColumn];
    expect(describeSignatureChange(before, withSource([id, { ...name, name: 'full_name' }]))).toEqual([
      'column name of public.orders was renamed to full_name',
      'column total of public.orders was dropped',
    ]);
  });

  it('names type, modifier and nullability changes', () => {
    const [id, name, total, note] = orders.columns as [SignatureColumn, SignatureColumn, SignatureColumn, SignatureColumn];
    expect(
      describeSignatureChange(before, withSource([{ ...id, notNull: false }, { ...name, typeOid: 1043, typmod: 14, type: 'character varying(10)' }, { ...total, typeOid: 20, type: 'bigint', notNull: true }, note])),
    ).toEqual([
      'column id of public.orders now allows NULL',
      'column name of public.orders changed type from text to character varying(10)',
      'column total of public.orders changed type from integer to bigint',
      'column total of public.orders became NOT NULL',
    ]);
  });

  it('says when a table was replaced or is gone, and nothing about a table never bound', () => {
    expect(describeSignatureChange(before, withSource([...orders.columns], 101))).toEqual(['table public.orders was dropped or replaced']);
    expect(describeSignatureChange(before, { source: orders, target: null })).toEqual(['table public.orders_v2 was dropped or renamed']);
    expect(describeSignatureChange({ source: null, target: null }, before)).toEqual([]);
  });
});
