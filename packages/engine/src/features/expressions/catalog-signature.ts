import type { MigrationSpec, TableRef } from '@tideway/core';
import { reverseMappingOf } from '../way-back/way-back.js';
import type pg from 'pg';
import { analyzeMappingExpression } from '../mapping/mapping-validator.js';
import { TIDEWAY_SQL_MARK } from '../pace/statement-latency.js';

/** Why a column matters to a migration: an expression reads it, the migration writes it, or it is part of the key. */
export type ColumnUse = 'read' | 'written' | 'key';

/** A column of a table as the live catalog describes it (`pg_attribute`). */
export interface SignatureColumn {
  /** `attnum`: stays with the column through renames. */
  readonly attnum: number;
  readonly name: string;
  /** `atttypid`. */
  readonly typeOid: number;
  /** `atttypmod` (−1 for none). */
  readonly typmod: number;
  /** `format_type(atttypid, atttypmod)` under Tideway's `search_path` (types outside pg_catalog qualified). */
  readonly type: string;
  readonly notNull: boolean;
  /** Why the migration cares; empty for a column it does not touch. */
  readonly uses: readonly ColumnUse[];
}

/** One table of a migration as bound: its relation and every live column, in `attnum` order. */
export interface TableSignature {
  readonly datasource: string;
  readonly schema: string;
  readonly table: string;
  /** `pg_class.oid`: a table dropped and re-created under the same name gets another. */
  readonly oid: number;
  readonly columns: readonly SignatureColumn[];
}

/**
 * The source and target tables of a migration as Tideway bound its expressions to them; `null` for
 * a table that did not exist. Plain JSON (it can be stored in a `jsonb` column). Compare two with
 * {@link describeSignatureChange}: a column the migration does not use may change freely.
 */
export interface CatalogSignature {
  readonly source: TableSignature | null;
  readonly target: TableSignature | null;
}

/*
 * Inputs: schema and table name (bind parameters). Tables and partitioned tables only, like the
 * prepare check.
 */
const TABLE_SQL = `${TIDEWAY_SQL_MARK}
  SELECT c.oid::int8 AS oid
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`;
/* Inputs: the relation oid. */
const COLUMNS_SQL = `${TIDEWAY_SQL_MARK}
  SELECT a.attnum::int AS attnum, a.attname::text AS name, a.atttypid::int8 AS type_oid, a.atttypmod AS typmod,
         pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;

/**
 * Reads a table's signature on `client` (any transaction state; inside the binder's transaction the
 * tables are locked, so it is the table exactly as bound), or `null` when the table does not exist.
 *
 * @param uses - column name → why it matters (see {@link signatureUses}).
 */
export async function readTableSignature(client: pg.ClientBase, ref: TableRef, uses: ReadonlyMap<string, readonly ColumnUse[]>): Promise<TableSignature | null> {
  const table = (await client.query<{ oid: number }>(TABLE_SQL, [ref.schema, ref.table])).rows[0];
  if (!table) return null;
  const columns = await client.query<{ attnum: number; name: string; type_oid: number; typmod: number; type: string; not_null: boolean }>(COLUMNS_SQL, [table.oid]);
  return {
    datasource: ref.datasource,
    schema: ref.schema,
    table: ref.table,
    oid: table.oid,
    columns: columns.rows.map((c) => ({
      attnum: c.attnum,
      name: c.name,
      typeOid: c.type_oid,
      typmod: c.typmod,
      type: c.type,
      notNull: c.not_null,
      uses: uses.get(c.name) ?? [],
    })),
  };
}

const USE_ORDER: readonly ColumnUse[] = ['read', 'written', 'key'];

function addUse(map: Map<string, ColumnUse[]>, column: string, use: ColumnUse): void {
  const list = map.get(column) ?? [];
  if (!list.includes(use)) list.push(use);
  list.sort((a, b) => USE_ORDER.indexOf(a) - USE_ORDER.indexOf(b));
  map.set(column, list);
}

function readsOf(mapping: Readonly<Record<string, string>>): string[] {
  return Object.values(mapping).flatMap((expr) => {
    const analysis = analyzeMappingExpression(expr);
    return analysis.ok ? analysis.columns : [];
  });
}

/**
 * Which columns of the source and target matter to a migration: source columns the mapping reads,
 * target columns it writes, both keys, and for the way back (`reverseMapping`, or the one derived
 * from plain copies) the target columns it reads and the source columns it writes.
 *
 * @throws Error when the SQL parser is not loaded (`loadSqlParser`).
 */
export function signatureUses(spec: MigrationSpec): { source: Map<string, ColumnUse[]>; target: Map<string, ColumnUse[]> } {
  const source = new Map<string, ColumnUse[]>();
  const target = new Map<string, ColumnUse[]>();
  for (const c of readsOf(spec.mapping)) addUse(source, c, 'read');
  for (const c of Object.keys(spec.mapping)) addUse(target, c, 'written');
  const back = reverseMappingOf(spec);
  if (back) {
    for (const c of readsOf(back)) addUse(target, c, 'read');
    for (const c of Object.keys(back)) addUse(source, c, 'written');
  }
  for (const c of spec.source.key) addUse(source, c, 'key');
  for (const c of spec.target.key) addUse(target, c, 'key');
  return { source, target };
}

function describeTable(before: TableSignature | null, after: TableSignature | null): string[] {
  if (!before) return [];
  const name = `${before.schema}.${before.table}`;
  if (!after) return [`table ${name} was dropped or renamed`];
  if (after.oid !== before.oid) return [`table ${name} was dropped or replaced`];
  const out: string[] = [];
  const now = new Map(after.columns.map((c) => [c.attnum, c]));
  for (const column of before.columns) {
    if (column.uses.length === 0) continue;
    const current = now.get(column.attnum);
    if (!current) {
      out.push(`column ${column.name} of ${name} was dropped`);
      continue;
    }
    if (current.name !== column.name) out.push(`column ${column.name} of ${name} was renamed to ${current.name}`);
    if (current.typeOid !== column.typeOid || current.typmod !== column.typmod) {
      out.push(`column ${current.name} of ${name} changed type from ${column.type} to ${current.type}`);
    }
    if (current.notNull !== column.notNull) {
      out.push(current.notNull ? `column ${current.name} of ${name} became NOT NULL` : `column ${current.name} of ${name} now allows NULL`);
    }
  }
  return out;
}

/**
 * What changed between two signatures of a migration's tables, as sentences naming the DDL's effect
 * (for a guard that pauses a migration "with the DDL named"); empty when nothing that matters did.
 * Columns are followed by `attnum`, so a rename is a rename, not a drop and an add. Only columns the
 * migration uses (in `before`) are compared; added columns and changes to other columns do not count.
 *
 * Sentences, per table (`schema.table`), in column order:
 * - `table public.orders was dropped or renamed` (no table of that name now);
 * - `table public.orders was dropped or replaced` (a table of that name with another oid);
 * - `column name of public.orders was dropped`;
 * - `column name of public.orders was renamed to full_name`;
 * - `column total of public.orders changed type from integer to bigint` (type or modifier);
 * - `column total of public.orders now allows NULL` / `… became NOT NULL`.
 *
 * @example
 * ```ts
 * const before = (await binder.bindSpec(spec)).signature;
 * // ALTER TABLE orders ALTER COLUMN total TYPE bigint
 * describeSignatureChange(before, await binder.catalogSignature(spec));
 * // ['column total of public.orders changed type from integer to bigint']
 * ```
 */
export function describeSignatureChange(before: CatalogSignature, after: CatalogSignature): string[] {
  return [...describeTable(before.source, after.source), ...describeTable(before.target, after.target)];
}
