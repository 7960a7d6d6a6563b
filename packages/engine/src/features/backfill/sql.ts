import type { MigrationSpec, TableRef } from '@tideway/core';
import { copiedColumn } from '../mapping/mapping-validator.js';

/**
 * SQL text for user tables. Inputs: identifiers (validated against IDENTIFIER_PATTERN and always
 * quoted here), SQL type names read from the live catalog (`format_type`), and mapping expressions
 * that passed the libpg-query allowlist. Key values never enter the text: they are bind parameters
 * (`$n::text::<type>`), except in COPY, which cannot take parameters and gets `escapeLiteral` text.
 */

/** `"name"` with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."table"`. */
export function qualified(ref: Pick<TableRef, 'schema' | 'table'>): string {
  return `${quoteIdent(ref.schema)}.${quoteIdent(ref.table)}`;
}

/** The alias source rows get in generated SQL; mapping expressions refer to bare column names. */
export const SOURCE_ALIAS = '__tideway_source';

/** The key of a backfill: columns in index order and their SQL types. */
export interface KeyShape {
  readonly columns: readonly string[];
  readonly types: readonly string[];
}

/** A key value as stored in chunk bounds: one text value per key column. */
export type KeyValue = readonly string[];

function row(parts: readonly string[]): string {
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(', ')})`;
}

/**
 * `WHERE` predicate of a keyset range (lower exclusive, upper inclusive; `null` = unbounded) using
 * row-value comparison for composite keys, with bind parameters starting at `$firstParam`.
 */
export function rangePredicate(
  key: KeyShape,
  lower: KeyValue | null,
  upper: KeyValue | null,
  firstParam = 1,
): { sql: string; params: string[] } {
  const cols = row(key.columns.map(quoteIdent));
  const parts: string[] = [];
  const params: string[] = [];
  const bound = (value: KeyValue) => row(value.map((v, i) => {
    params.push(v);
    return `$${firstParam + params.length - 1}::text::${key.types[i]}`;
  }));
  if (lower) parts.push(`${cols} > ${bound(lower)}`);
  if (upper) parts.push(`${cols} <= ${bound(upper)}`);
  return { sql: parts.length ? parts.join(' AND ') : 'true', params };
}

/** The same predicate with literal values (for COPY, which takes no parameters). */
export function rangePredicateLiteral(key: KeyShape, lower: KeyValue | null, upper: KeyValue | null, escapeLiteral: (v: string) => string): string {
  const cols = row(key.columns.map(quoteIdent));
  const lit = (value: KeyValue) => row(value.map((v, i) => `${escapeLiteral(v)}::${key.types[i]}`));
  const parts: string[] = [];
  if (lower) parts.push(`${cols} > ${lit(lower)}`);
  if (upper) parts.push(`${cols} <= ${lit(upper)}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

/** Target columns in a stable order, with their mapping expressions. */
export function mappedColumns(spec: MigrationSpec): { column: string; expression: string }[] {
  return Object.keys(spec.mapping)
    .sort()
    .map((column) => ({ column, expression: spec.mapping[column] as string }));
}

/** `ON CONFLICT (target key)`, the arbiter of every upsert into the target. */
function onConflict(spec: MigrationSpec): string {
  return `ON CONFLICT (${spec.target.key.map(quoteIdent).join(', ')})`;
}

/** `ON CONFLICT (target key) DO UPDATE SET …` (or `DO NOTHING` when every column is a key). */
export function upsertClause(spec: MigrationSpec): string {
  const keys = new Set(spec.target.key);
  const others = mappedColumns(spec).filter((c) => !keys.has(c.column));
  const conflict = onConflict(spec);
  if (others.length === 0) return `${conflict} DO NOTHING`;
  return `${conflict} DO UPDATE SET ${others.map((c) => `${quoteIdent(c.column)} = EXCLUDED.${quoteIdent(c.column)}`).join(', ')}`;
}

/**
 * How a same-datasource chunk keeps a concurrent sync write from being overwritten (ADR 005):
 * - `share`: `FOR SHARE` locks the chunk's source rows until the chunk commits, so a concurrent
 *   write either committed before (and the chunk copies its value) or waits for the chunk (and the
 *   sync writes the newer value after). Used with application sync and for re-drives.
 * - `none`: no source row locks. With trigger sync every write reaches the target in the writer's
 *   own transaction and always wins against the chunk (the chunk never updates an existing target
 *   row, `ON CONFLICT DO NOTHING`); the only stale rows a chunk can leave are rows deleted (or
 *   re-keyed) while it ran, which the trigger records as tombstones and the run sweeps at the end.
 */
export type ChunkLocking = 'share' | 'none';

/**
 * The chunk as a plain insert (no ON CONFLICT): cheaper when the target holds none of the chunk's
 * rows, which is the common case on a first pass. The copier runs it in a savepoint and falls back
 * to {@link chunkUpsertSql} on a unique violation.
 */
export function chunkInsertSql(spec: MigrationSpec, key: KeyShape, lower: KeyValue | null, upper: KeyValue | null, locking: ChunkLocking = 'share'): { sql: string; params: string[] } {
  const names = mappedColumns(spec).map((c) => quoteIdent(c.column)).join(', ');
  const range = rangePredicate(key, lower, upper);
  return { sql: `INSERT INTO ${qualified(spec.target)} (${names}) ${mappedSelectSql(spec, range.sql, locking === 'share')}`, params: range.params };
}

/**
 * One chunk on one datasource when some of its rows may already be in the target: with `share`
 * locking `INSERT … SELECT <mapping> … FOR SHARE … ON CONFLICT DO UPDATE` (the locked value is the
 * newest, so it may overwrite; the row count is the rows written); with `none`, `… ON CONFLICT DO
 * NOTHING` (a target row that exists was written by the sync or an earlier attempt and is at least
 * as new as this chunk's snapshot), as a statement returning `n`, the rows of the range.
 */
export function chunkUpsertSql(spec: MigrationSpec, key: KeyShape, lower: KeyValue | null, upper: KeyValue | null, locking: ChunkLocking = 'share'): { sql: string; params: string[] } {
  if (locking === 'share') {
    const insert = chunkInsertSql(spec, key, lower, upper, locking);
    return { sql: `${insert.sql} ${upsertClause(spec)}`, params: insert.params };
  }
  // Lock-free: the statement returns one row, `n` = rows of the range now in the target (inserted
  // here or already written by the sync), so progress counts a synced row as copied.
  const names = mappedColumns(spec).map((c) => quoteIdent(c.column)).join(', ');
  const range = rangePredicate(key, lower, upper);
  const sql =
    `WITH src AS (${mappedSelectSql(spec, range.sql, false)}), ` +
    `ins AS (INSERT INTO ${qualified(spec.target)} (${names}) SELECT ${names} FROM src ${onConflict(spec)} DO NOTHING RETURNING 1) ` +
    `SELECT count(*)::int AS n FROM src`;
  return { sql, params: range.params };
}

/** The SELECT that produces mapped rows of a range (cross-datasource COPY out, verification). */
export function mappedSelectSql(spec: MigrationSpec, where: string, lock: boolean): string {
  const cols = mappedColumns(spec);
  return (
    `SELECT ${cols.map((c) => `(${c.expression}) AS ${quoteIdent(c.column)}`).join(', ')} ` +
    `FROM ${qualified(spec.source)} AS ${SOURCE_ALIAS} WHERE ${where}${lock ? ' FOR SHARE' : ''}`
  );
}

/** The first 12 hex digits of a migration id: the suffix of the objects Tideway creates for it. */
export function idTag(migrationId: string): string {
  return migrationId.replace(/-/g, '').slice(0, 12);
}

/** Unqualified name of a migration's tombstone table: `tideway_tomb_<first 12 hex of the id>`. */
export function tombstoneTableName(migrationId: string): string {
  return `tideway_tomb_${idTag(migrationId)}`;
}

/** A migration's tombstone table, beside the source: `"<source schema>"."tideway_tomb_<first 12 hex of the id>"` (ADR 005). */
export function tombstoneTable(spec: MigrationSpec, migrationId: string): string {
  return qualified({ schema: spec.source.schema, table: tombstoneTableName(migrationId) });
}

/**
 * The sweep of one batch of tombstones, run in one READ COMMITTED transaction, statement by
 * statement: `lock` takes the row locks of the batch's target rows (waiting for any sync write in
 * flight on them), `remove` then deletes — with a snapshot taken after the locks — those whose key
 * no source row maps to any more, and `forget` drops the batch's tombstones. Taking the locks in an
 * earlier statement is what makes `remove` safe: a writer that re-inserts a key meanwhile waits on
 * the lock and re-creates the target row after the sweep commits, instead of the sweep's re-check
 * deleting the row it just wrote.
 *
 * @param keys - target key values of the batch (text, in `spec.target.key` order), at most 1000.
 * @param keyTypes - SQL types of the target key columns.
 */
export function sweepBatchSql(spec: MigrationSpec, migrationId: string, keyTypes: readonly string[], keys: readonly KeyValue[]): { lock: string; remove: string; forget: string; params: string[] } {
  const { tuples, params } = keyTuples({ columns: spec.target.key, types: keyTypes }, keys);
  const target = qualified(spec.target);
  const tomb = tombstoneTable(spec, migrationId);
  const tk = (alias: string) => row(spec.target.key.map((k) => `${alias}${quoteIdent(k)}`));
  const inBatch = (alias: string) => `${tk(alias)} IN (${tuples.join(', ')})`;
  const mappedKey = row(spec.target.key.map((k) => `(${spec.mapping[k] as string})`));
  return {
    lock: `SELECT 1 FROM ${target} t WHERE ${inBatch('t.')} FOR UPDATE`,
    remove:
      `DELETE FROM ${target} t WHERE ${inBatch('t.')} AND NOT EXISTS ` +
      `(SELECT 1 FROM ${qualified(spec.source)} AS ${SOURCE_ALIAS} WHERE ${mappedKey} = ${tk('t.')})`,
    forget: `DELETE FROM ${tomb} WHERE ${inBatch('')}`,
    params,
  };
}

/** The next batch of tombstones after `after` (keyset order), as text values. */
export function tombstoneBatchSql(spec: MigrationSpec, migrationId: string, keyTypes: readonly string[], after: KeyValue | null, limit: number): { sql: string; params: string[] } {
  const tomb = tombstoneTable(spec, migrationId);
  const range = rangePredicate({ columns: spec.target.key, types: keyTypes }, after, null);
  const cols = spec.target.key.map(quoteIdent);
  return {
    sql: `SELECT ${cols.map((c, i) => `${c}::text AS k${i}`).join(', ')} FROM ${tomb} WHERE ${range.sql} ORDER BY ${cols.join(', ')} LIMIT ${Math.floor(limit)}`,
    params: range.params,
  };
}

/**
 * The spec of reverse sync: the target becomes the table written, the source the table kept
 * current, through `reverseMapping` (source column → expression over the target row).
 */
export function reverseSpec(spec: MigrationSpec, reverseMapping: Readonly<Record<string, string>>): MigrationSpec {
  return { ...spec, source: spec.target, target: spec.source, mapping: reverseMapping, reverseMapping: null };
}

/**
 * Re-drive of specific keys (application sync): upsert the mapped source rows of `keys`, locking
 * them like a chunk does. Keys are in `key.columns` order, one bind parameter per value.
 */
export function redriveUpsertSql(spec: MigrationSpec, key: KeyShape, keys: readonly KeyValue[]): { sql: string; params: string[] } {
  const cols = mappedColumns(spec);
  const params: string[] = [];
  const tuples = keys.map((k) => row(k.map((v, i) => {
    params.push(v);
    return `$${params.length}::text::${key.types[i]}`;
  })));
  const sql =
    `INSERT INTO ${qualified(spec.target)} (${cols.map((c) => quoteIdent(c.column)).join(', ')}) ` +
    `SELECT ${cols.map((c) => `(${c.expression})`).join(', ')} FROM ${qualified(spec.source)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${row(key.columns.map(quoteIdent))} IN (${tuples.join(', ')}) FOR SHARE ${upsertClause(spec)}`;
  return { sql, params };
}

/**
 * Deletes target rows of `keys` whose source row no longer exists. Only possible when each target
 * key column copies the source key column at the same position (`id: "id"`, or a cast of it);
 * returns `null` otherwise.
 */
export function redriveDeleteSql(spec: MigrationSpec, key: KeyShape, keys: readonly KeyValue[]): { sql: string; params: string[] } | null {
  const sourceKey = [...key.columns];
  const targetKey = sourceKey.map((column) => spec.target.key.find((t) => copiedColumn(spec.mapping[t] ?? '') === column));
  if (targetKey.some((t) => t === undefined) || targetKey.length !== spec.target.key.length) return null;
  const params: string[] = [];
  const tuples = keys.map((k) => row(k.map((v, i) => {
    params.push(v);
    return `$${params.length}::text::${key.types[i]}`;
  })));
  const sql =
    `DELETE FROM ${qualified(spec.target)} t WHERE ${row((targetKey as string[]).map((c) => `t.${quoteIdent(c)}`))} IN (${tuples.join(', ')}) ` +
    `AND NOT EXISTS (SELECT 1 FROM ${qualified(spec.source)} s WHERE ${sourceKey.map((c, i) => `s.${quoteIdent(c)} = t.${quoteIdent(targetKey[i] as string)}`).join(' AND ')})`;
  return { sql, params };
}

function keyTuples(key: KeyShape, keys: readonly KeyValue[]): { tuples: string[]; params: string[] } {
  const params: string[] = [];
  const tuples = keys.map((k) => row(k.map((v, i) => {
    params.push(v);
    return `$${params.length}::text::${key.types[i]}`;
  })));
  return { tuples, params };
}

/** The mapped source rows of `keys` as JSON objects, locked `FOR SHARE` (cross-datasource re-drive). */
export function redriveSelectSql(spec: MigrationSpec, key: KeyShape, keys: readonly KeyValue[]): { sql: string; params: string[] } {
  const { tuples, params } = keyTuples(key, keys);
  const where = `${row(key.columns.map(quoteIdent))} IN (${tuples.join(', ')})`;
  return { sql: `SELECT to_jsonb(m) AS row FROM (${mappedSelectSql(spec, where, true)}) m`, params };
}

/**
 * Which of `keys` have no source row: `SELECT i` (the key's index in `keys`) for each. Compared in
 * SQL with the key's own types, so `'1.0'` against a numeric key or an upper-case UUID match as
 * PostgreSQL matches them (cross-datasource re-drive deletes the target rows of these keys).
 */
export function redriveGoneKeysSql(spec: MigrationSpec, key: KeyShape, keys: readonly KeyValue[]): { sql: string; params: string[] } {
  const params: string[] = [];
  const rows = keys.map((k, i) => `(${i}, ${k.map((v, c) => {
    params.push(v);
    return `$${params.length}::text::${key.types[c]}`;
  }).join(', ')})`);
  const names = key.columns.map((_, c) => `k${c}`);
  const sql =
    `SELECT v.i FROM (VALUES ${rows.join(', ')}) AS v(i, ${names.join(', ')}) ` +
    `WHERE NOT EXISTS (SELECT 1 FROM ${qualified(spec.source)} s WHERE ${key.columns.map((c, n) => `s.${quoteIdent(c)} = v.${names[n]}`).join(' AND ')})`;
  return { sql, params };
}

/**
 * Deletes target rows by key values, when each target key column copies (bare or cast) the
 * source key column at the same position; `null` otherwise (cross-datasource re-drive of deletes).
 */
export function redriveDeleteByKeySql(spec: MigrationSpec, key: KeyShape, keys: readonly KeyValue[]): { sql: string; params: string[] } | null {
  const targetKey = key.columns.map((column) => spec.target.key.find((t) => copiedColumn(spec.mapping[t] ?? '') === column));
  if (targetKey.some((t) => t === undefined) || targetKey.length !== spec.target.key.length) return null;
  const { tuples, params } = keyTuples(key, keys);
  return { sql: `DELETE FROM ${qualified(spec.target)} WHERE ${row((targetKey as string[]).map(quoteIdent))} IN (${tuples.join(', ')})`, params };
}

/**
 * A key read in `indexColumns` order (a run's or a verification's key: its unique index's column
 * order) given in `specKey` order (`spec.source.key`: what re-drive, the API and the skipped-row
 * list take).
 */
export function toSpecKeyOrder(specKey: readonly string[], indexColumns: readonly string[], key: KeyValue): string[] {
  return specKey.map((c) => key[indexColumns.indexOf(c)] as string);
}
