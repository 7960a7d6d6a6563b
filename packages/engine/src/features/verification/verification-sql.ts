import type { MigrationSpec } from '@tideway/core';
import { mappedColumns, qualified, quoteIdent, rangePredicate, SOURCE_ALIAS, type KeyShape, type KeyValue } from '../backfill/sql.js';

/*
 * SQL of verification. Inputs: identifiers (quoted), catalog type names, validated mapping
 * expressions; key values are bind parameters. Each side hashes a row as the first 64 bits of
 * md5(ROW(v1, v2, …)::text) with mapped source values cast to the target column types, so equal rows
 * hash equally; a range's fingerprint is (count, sum of hashes) — order-independent.
 */

/** The shape both sides share: target columns in order, their types, and the key on each side. */
export interface VerifyShape {
  readonly sourceKey: KeyShape;
  readonly targetKey: KeyShape;
  /** Target column → SQL type. */
  readonly targetTypes: Readonly<Record<string, string>>;
}

const HASH = (rowText: string) => `('x' || substr(md5(${rowText}), 1, 16))::bit(64)::bigint`;

function sourceRow(spec: MigrationSpec, shape: VerifyShape): string {
  return `ROW(${mappedColumns(spec).map((c) => `(${c.expression})::${shape.targetTypes[c.column] ?? 'text'}`).join(', ')})::text`;
}

function targetRow(spec: MigrationSpec): string {
  return `ROW(${mappedColumns(spec).map((c) => `t.${quoteIdent(c.column)}`).join(', ')})::text`;
}

/** `(count, sum of row hashes)` of the mapped source rows in a range. */
export function sourceFingerprintSql(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
  const range = rangePredicate(shape.sourceKey, lower, upper);
  return {
    sql: `SELECT count(*)::bigint AS n, coalesce(sum(${HASH(sourceRow(spec, shape))}::numeric), 0)::text AS h FROM ${qualified(spec.source)} AS ${SOURCE_ALIAS} WHERE ${range.sql}`,
    params: range.params,
  };
}

/** `(count, sum of row hashes)` of the target rows in the same key range. */
export function targetFingerprintSql(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
  const range = rangePredicate(shape.targetKey, lower, upper);
  return {
    sql: `SELECT count(*)::bigint AS n, coalesce(sum(${HASH(targetRow(spec))}::numeric), 0)::text AS h FROM ${qualified(spec.target)} AS t WHERE ${range.sql}`,
    params: range.params,
  };
}

/** Key (as text values) and row hash of every source row in a range, for the exact diff. */
export function sourceRowsSql(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
  const range = rangePredicate(shape.sourceKey, lower, upper);
  const key = shape.sourceKey.columns.map((c, i) => `${quoteIdent(c)}::text AS k${i}`).join(', ');
  return { sql: `SELECT ${key}, ${HASH(sourceRow(spec, shape))}::text AS h FROM ${qualified(spec.source)} AS ${SOURCE_ALIAS} WHERE ${range.sql}`, params: range.params };
}

/** Key (as text values) and row hash of every target row in a range. */
export function targetRowsSql(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
  const range = rangePredicate(shape.targetKey, lower, upper);
  const key = shape.targetKey.columns.map((c, i) => `t.${quoteIdent(c)}::text AS k${i}`).join(', ');
  return { sql: `SELECT ${key}, ${HASH(targetRow(spec))}::text AS h FROM ${qualified(spec.target)} AS t WHERE ${range.sql}`, params: range.params };
}

/** The key `offset` rows into a range of the source (or target) side, for splitting. */
export function keyAtSql(table: string, key: KeyShape, lower: KeyValue | null, upper: KeyValue | null, offset: number) {
  const range = rangePredicate(key, lower, upper);
  const cols = key.columns.map(quoteIdent);
  return {
    sql: `SELECT ${cols.map((c, i) => `${c}::text AS k${i}`).join(', ')} FROM ${table} WHERE ${range.sql} ORDER BY ${cols.join(', ')} OFFSET ${Math.max(0, Math.floor(offset))} LIMIT 1`,
    params: range.params,
  };
}
