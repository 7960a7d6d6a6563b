import type { MigrationSpec, SpecProblem, TableRef } from '@tideway/core';
import { ExpressionBinder, type SpecBinding } from '../expressions/expression-binder.js';
import { loadSqlParser, validateMapping } from '../mapping/mapping-validator.js';
import { wayBackProblems } from '../way-back/way-back.js';
import { checkProbeSqlLive } from '../pace/probe-sql.js';
import { checkPrometheusLive } from '../pace/prometheus-signal.js';
import type { DatasourceRegistry } from './datasource-registry.js';

/** A column as the live catalog describes it. */
export interface CatalogColumn {
  readonly name: string;
  readonly type: string;
  readonly notNull: boolean;
  /** A default, or an identity column (which has one). */
  readonly hasDefault: boolean;
  /** A generated column: PostgreSQL computes it, nothing writes it. */
  readonly generated: boolean;
  /** `GENERATED ALWAYS AS IDENTITY`: an insert may not give it a value. */
  readonly identityAlways: boolean;
}

/** A table as the live catalog describes it; `null` from {@link CatalogInspector.describe} when absent. */
export interface CatalogTable {
  readonly columns: ReadonlyMap<string, CatalogColumn>;
  /** Column lists of the primary key and of every plain (non-partial, non-expression) unique index. */
  readonly uniqueKeys: readonly (readonly string[])[];
  /** `pg_class.reltuples`, the planner's row estimate; −1 when never analysed. */
  readonly estimatedRows: number;
}

const TABLE_SQL = `
  SELECT c.oid, c.reltuples::float8 AS reltuples
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`;
const COLUMNS_SQL = `
  SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
         (a.atthasdef OR a.attidentity <> '') AS has_default, a.attgenerated <> '' AS generated, a.attidentity = 'a' AS identity_always
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;
const UNIQUE_SQL = `
  SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               ORDER BY k.ord)::text[] AS columns
  FROM pg_catalog.pg_index i
  WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisunique) AND i.indpred IS NULL AND i.indexprs IS NULL`;

/** What {@link CatalogInspector.inspectSpec} found: every problem, and the binding when both tables exist. */
export interface SpecInspection {
  readonly problems: SpecProblem[];
  /** The expressions and tables as bound; `null` when the source or the target table is missing. */
  readonly binding: SpecBinding | null;
}

/** Reads tables, columns and unique keys of user databases from the live PostgreSQL catalog. */
export class CatalogInspector {
  readonly #binder: ExpressionBinder;

  /**
   * @param binder - binds the spec's expressions at start. @defaultValue an {@link ExpressionBinder} on `datasources`
   */
  constructor(
    private readonly datasources: DatasourceRegistry,
    binder?: ExpressionBinder,
  ) {
    this.#binder = binder ?? new ExpressionBinder(datasources);
  }

  /**
   * Describes a table, or returns `null` when it does not exist (tables and partitioned tables only).
   * @throws DependencyUnavailableError when the datasource cannot be reached.
   */
  async describe(ref: TableRef): Promise<CatalogTable | null> {
    return this.datasources.withClient(ref.datasource, async (client) => {
      const table = await client.query<{ oid: number; reltuples: number }>(TABLE_SQL, [ref.schema, ref.table]);
      const row = table.rows[0];
      if (!row) return null;
      const columns = await client.query<{ name: string; type: string; not_null: boolean; has_default: boolean; generated: boolean; identity_always: boolean }>(COLUMNS_SQL, [row.oid]);
      const unique = await client.query<{ columns: string[] }>(UNIQUE_SQL, [row.oid]);
      return {
        columns: new Map(
          columns.rows.map((c) => [c.name, { name: c.name, type: c.type, notNull: c.not_null, hasDefault: c.has_default, generated: c.generated, identityAlways: c.identity_always }]),
        ),
        uniqueKeys: unique.rows.map((u) => u.columns),
        estimatedRows: row.reltuples,
      };
    });
  }

  /**
   * SQL types (`format_type`) of `columns` of a table, in the order given.
   * @throws Error when the table or one of the columns does not exist; DependencyUnavailableError
   *   when the datasource cannot be reached.
   */
  async columnTypes(ref: TableRef, columns: readonly string[]): Promise<string[]> {
    const table = await this.describe(ref);
    if (!table) throw new Error(`table ${ref.schema}.${ref.table} not found on ${ref.datasource}`);
    return columns.map((name) => {
      const column = table.columns.get(name);
      if (!column) throw new Error(`column ${name} of ${ref.schema}.${ref.table} not found`);
      return column.type;
    });
  }

  /**
   * The prepare-phase check: both tables exist, each key is the primary key or a unique index over
   * NOT NULL columns, and — bound against the live catalog by the {@link ExpressionBinder} — every
   * `mapping` and `reverseMapping` expression passes the allowlist, reads only existing columns,
   * writes an existing column, and binds to nothing but built-ins and safe types (key casts too).
   * Returns every problem at once.
   * @throws DependencyUnavailableError when a datasource cannot be reached.
   */
  async checkSpec(spec: MigrationSpec): Promise<SpecProblem[]> {
    return (await this.inspectSpec(spec)).problems;
  }

  /**
   * {@link checkSpec} with what was bound (result types, columns read, the tables' signature).
   * @throws DependencyUnavailableError when a datasource cannot be reached.
   */
  async inspectSpec(spec: MigrationSpec): Promise<SpecInspection> {
    const problems: SpecProblem[] = [];
    const [source, target] = await Promise.all([this.describe(spec.source), this.describe(spec.target)]);
    checkTable('source', spec.source, source, problems);
    checkTable('target', spec.target, target, problems);
    if (source) {
      // The way back against the live table: NOT NULL columns without a default, columns that exist.
      await loadSqlParser();
      const known = new Set(problems.map((p) => `${p.field}|${p.problem}`));
      for (const p of wayBackProblems(spec, source)) if (!known.has(`${p.field}|${p.problem}`)) problems.push(p);
    }
    const probeSql = spec.throttle.latencyGuard.probeSql;
    if (probeSql !== null && source) problems.push(...(await this.datasources.withClient(spec.source.datasource, (client) => checkProbeSqlLive(client, probeSql))));
    // Not the catalog, but live too: the Prometheus signal must give a number now.
    const prometheus = spec.throttle.latencyGuard.prometheus;
    if (prometheus !== null) problems.push(...(await checkPrometheusLive(prometheus)));
    if (source && target) {
      const binding = await this.#binder.bindSpec(spec);
      problems.push(...binding.problems);
      return { problems, binding };
    }
    // Without both tables nothing can be bound; say what can be said of the side that exists.
    if (source) {
      await loadSqlParser();
      problems.push(...validateMapping({ ...spec.mapping }, new Set(source.columns.keys())));
    }
    if (target) {
      for (const column of Object.keys(spec.mapping)) {
        if (!target.columns.has(column)) {
          problems.push({ field: `mapping.${column}`, problem: `column "${column}" does not exist in target table ${spec.target.schema}.${spec.target.table}` });
        }
      }
    }
    return { problems, binding: null };
  }
}

function checkTable(side: 'source' | 'target', ref: TableRef, table: CatalogTable | null, problems: SpecProblem[]): void {
  if (!table) {
    problems.push({ field: `${side}.table`, problem: `table ${ref.schema}.${ref.table} does not exist in datasource "${ref.datasource}"` });
    return;
  }
  const missing = ref.key.filter((k) => !table.columns.has(k));
  if (missing.length > 0) {
    problems.push({ field: `${side}.key`, problem: `column(s) ${missing.join(', ')} do not exist in ${ref.schema}.${ref.table}` });
    return;
  }
  const wanted = [...ref.key].sort().join(',');
  const isUnique = table.uniqueKeys.some((cols) => [...cols].sort().join(',') === wanted);
  const nullable = ref.key.filter((k) => !table.columns.get(k)?.notNull);
  if (!isUnique) problems.push({ field: `${side}.key`, problem: `(${ref.key.join(', ')}) is neither the primary key nor a unique index of ${ref.schema}.${ref.table}` });
  else if (nullable.length > 0) problems.push({ field: `${side}.key`, problem: `key column(s) ${nullable.join(', ')} allow NULL` });
}
