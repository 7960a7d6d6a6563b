import { reverseMappingOf } from '../way-back/way-back.js';
import { DependencyUnavailableError, type MigrationSpec, type SpecProblem, type TableRef } from '@tideway/core';
import type pg from 'pg';
import { qualified, quoteIdent } from '../backfill/sql.js';
import { DATASOURCE_SEARCH_PATH, type DatasourceRegistry } from '../datasources/datasource-registry.js';
import { analyzeMappingExpression, loadSqlParser } from '../mapping/mapping-validator.js';
import { readTableSignature, signatureUses, type CatalogSignature, type ColumnUse, type TableSignature } from './catalog-signature.js';
import { DependencyJudge, type Refusal } from './dependency-judge.js';

/** How long binding waits for a lock on a table (an ALTER TABLE in progress), milliseconds. */
export const BIND_LOCK_TIMEOUT_MS = 5_000;

/** How long one binding statement may take, milliseconds. */
export const BIND_STATEMENT_TIMEOUT_MS = 30_000;

/** The alias of the row an expression reads, as in the generated SQL. */
const SOURCE_ALIAS = '__tideway_source';

/** One mapping entry as PostgreSQL bound it. */
export interface BoundExpression {
  /** The column the entry writes (a target column of `mapping`, a source column of `reverseMapping`). */
  readonly column: string;
  /** The columns of the table read that PostgreSQL bound the expression to, in column order. */
  readonly reads: readonly string[];
  /**
   * The expression's own type (`format_type`, qualified outside pg_catalog), before the assignment
   * to {@link column}: `bigint`, `numeric(10,2)`, `public.mood`; `record` for an anonymous `ROW(...)`.
   */
  readonly resultType: string;
  /** `pg_type.oid` of {@link resultType} on the datasource of the table read. */
  readonly resultTypeOid: number;
}

/** What {@link ExpressionBinder.bindMapping} found: every problem, and what bound without one. */
export interface MappingBinding {
  /** Every problem at once, each under `<field>.<column>` (`mapping.total_cents`). */
  readonly problems: readonly SpecProblem[];
  /** The entries that bound and passed every check, in column order. */
  readonly bound: readonly BoundExpression[];
  /** The table read and the table written, as bound (`null` when absent). */
  readonly from: TableSignature | null;
  readonly into: TableSignature | null;
}

/** What {@link ExpressionBinder.bindSpec} found for a whole spec. */
export interface SpecBinding {
  /** Every problem of the mapping, the reverse mapping and the keys, at once. */
  readonly problems: readonly SpecProblem[];
  /** `mapping` as bound (source row → target columns). */
  readonly mapping: readonly BoundExpression[];
  /** `reverseMapping` as bound (target row → source columns); `null` when the spec has none. */
  readonly reverseMapping: readonly BoundExpression[] | null;
  /** Source and target as bound (the tables were locked against DDL while binding). */
  readonly signature: CatalogSignature;
}

/** How {@link ExpressionBinder.bindMapping} names what it reports. */
export interface BindOptions {
  /** Prefix of every problem's field. @defaultValue 'mapping' */
  readonly field?: string;
  /** What the table read is called in messages. @defaultValue 'source' */
  readonly fromRole?: string;
  /** What the table written is called in messages. @defaultValue 'target' */
  readonly intoRole?: string;
}

/** One rolled-back transaction on a datasource in which expressions are analysed. */
class BindSession {
  readonly judge: DependencyJudge;
  #next = 0;

  private constructor(
    readonly datasource: string,
    readonly client: pg.ClientBase,
  ) {
    this.judge = new DependencyJudge(client);
  }

  /**
   * Opens the transaction with the fixed search_path (again, whatever the pool set: `pg_temp` last,
   * so a temporary object can never shadow a built-in) and the timeouts, in one round trip.
   */
  static async begin(datasource: string, client: pg.ClientBase, lockTimeoutMs: number): Promise<BindSession> {
    await client.query(
      `BEGIN; SET LOCAL search_path = ${DATASOURCE_SEARCH_PATH}; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}; ` +
        `SET LOCAL statement_timeout = ${BIND_STATEMENT_TIMEOUT_MS}; SET LOCAL check_function_bodies = on`,
    );
    return new BindSession(datasource, client);
  }

  /** A fresh name for a temporary object of this transaction. */
  name(): string {
    this.#next += 1;
    return `tideway_bind_${this.#next}`;
  }

  /**
   * Locks the table against DDL (`ACCESS SHARE` conflicts only with `ACCESS EXCLUSIVE`, which
   * ALTER TABLE … TYPE / DROP / RENAME take) and reads its signature; `null` when it does not exist.
   */
  async lock(ref: TableRef, uses: ReadonlyMap<string, readonly ColumnUse[]>): Promise<TableSignature | null> {
    if (!(await readTableSignature(this.client, ref, uses))) return null;
    await this.client.query(`LOCK TABLE ONLY ${qualified(ref)} IN ACCESS SHARE MODE`);
    return readTableSignature(this.client, ref, uses);
  }

  /** Runs `fn` inside a savepoint that is always rolled back: nothing it creates outlives it. */
  async scratch<T>(fn: () => Promise<T>): Promise<T> {
    await this.client.query('SAVEPOINT tideway_bind');
    try {
      return await fn();
    } finally {
      await this.client.query('ROLLBACK TO SAVEPOINT tideway_bind; RELEASE SAVEPOINT tideway_bind');
    }
  }

  /** Creates `pg_temp.<name>() RETURNS void` with a SQL-standard body; returns its oid. */
  async createFunction(name: string, body: string): Promise<number> {
    await this.client.query(`CREATE FUNCTION pg_temp.${name}() RETURNS void LANGUAGE sql BEGIN ATOMIC ${body}; END`);
    const r = await this.client.query<{ oid: number }>('SELECT pg_catalog.to_regprocedure($1)::int8 AS oid', [`pg_temp.${name}()`]);
    return r.rows[0]?.oid ?? 0;
  }

  async rollback(): Promise<void> {
    await this.client.query('ROLLBACK');
  }
}

interface PgError {
  readonly code?: string;
  readonly message: string;
  readonly position?: string;
  readonly hint?: string;
}

function isPgError(error: unknown): error is PgError {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/** Lock and statement timeouts are the datasource being busy, not the spec being wrong. */
function busy(error: unknown, datasource: string): never {
  if (isPgError(error) && (error.code === '55P03' || error.code === '57014')) {
    throw new DependencyUnavailableError(`datasource "${datasource}"`, `binding timed out waiting for a table under migration (${error.message})`, { cause: error });
  }
  throw error;
}

/** PostgreSQL's own words for why an expression does not bind, pointing into the expression. */
function bindError(error: PgError, datasource: string, statement: string, exprStart: number, expr: string): string {
  const length = [...expr].length;
  const position = error.position === undefined ? undefined : Number(error.position) - 1 - [...statement.slice(0, exprStart)].length;
  const at = position !== undefined && position >= 0 && position < length ? ` at character ${position + 1} of the expression` : '';
  const qualify = /^type "[^"]+" does not exist/.test(error.message) ? '; a type outside pg_catalog must be named with its schema (public.my_type)' : '';
  const hint = error.hint ? ` (${error.hint})` : '';
  return `does not bind on datasource "${datasource}": ${error.message}${at}${qualify}${hint} [bind-error]`;
}

function problem(field: string, refusal: Refusal): SpecProblem {
  return { field, problem: `${refusal.message} [${refusal.construct}]` };
}

/** The pieces of one entry's binding, shared by its steps. */
interface EntryContext {
  readonly field: string;
  readonly from: TableSignature;
  readonly into: TableSignature;
  readonly fromSession: BindSession;
  readonly intoSession: BindSession;
  readonly fromRole: string;
  readonly intoRole: string;
}

/**
 * The expression binder: answers "is this SQL fragment safe here, and what does it return?" for
 * every user-written expression (mapping, reverse mapping; later invariants and probes), against
 * the datasource's live catalog, with every problem at once. See ADR 006.
 *
 * Each expression first passes the text-level allowlist (`analyzeMappingExpression`: the real
 * PostgreSQL parser, allowlisted node types and function names, result-size bounds). Then, in a
 * transaction on the datasource that is always rolled back, with `search_path = pg_catalog, pg_temp`:
 * 1. the types the expression names, and — when it has a string literal, whose type PostgreSQL
 *    resolves from context by running that type's input function while analysing — the types of the
 *    columns it reads and writes, must run no user code (see `DependencyJudge.typeProblem`); this
 *    is checked before PostgreSQL sees the expression;
 * 2. the expression is analysed into a temporary function with a SQL-standard body,
 *    `INSERT INTO <into> (<column>) SELECT (<expr>) FROM <from> AS __tideway_source` (parsed and
 *    bound, assignment cast included, never executed), and every object PostgreSQL recorded in
 *    `pg_depend` for it is judged: built-ins are pinned and recorded nowhere, so any function,
 *    operator or cast function listed is a user's and is refused, as is any type that runs user code;
 * 3. a temporary view of `SELECT (<expr>)` gives the result type.
 * Across datasources (application sync) step 2 binds `SELECT (<expr>)` on the source, and the
 * assignment `INSERT INTO <into> (<column>) SELECT NULL::<result type>` on the target; the result
 * type must exist there and, as values travel between datasources as text, run no user code on
 * either side. An expression that does not bind (e.g. `lower(id)` with only a shadowing
 * `public.lower(bigint)`, invisible under the fixed search_path) is reported with PostgreSQL's message.
 *
 * The tables are locked `ACCESS SHARE` while binding, so the signature returned is the catalog
 * exactly as bound. The datasource role needs the privileges of the migration itself (read the
 * source, write the target) plus `TEMPORARY` on the database (granted to PUBLIC by default).
 */
export class ExpressionBinder {
  readonly #datasources: DatasourceRegistry;
  readonly #lockTimeoutMs: number;

  /**
   * @param options.lockTimeoutMs - how long binding waits for a table's lock. @defaultValue {@link BIND_LOCK_TIMEOUT_MS}
   */
  constructor(datasources: DatasourceRegistry, options: { lockTimeoutMs?: number } = {}) {
    this.#datasources = datasources;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? BIND_LOCK_TIMEOUT_MS;
  }

  /**
   * Binds each `mapping` entry (column of `into` → expression over a row of `from`).
   *
   * @returns every problem (`<field>.<column>`, message ending in the construct in brackets:
   *   `[bound:function]`, `[bound:operator]`, `[bound:type]`, `[bound:relation]`, `[bound:other]`,
   *   `[bind-error]`, `[bound:missing-type]`, or a text-level construct such as `[result-size:repeat]`),
   *   what bound, and the two tables as bound.
   * @throws DependencyUnavailableError when a datasource cannot be reached or a table stays locked
   *   longer than the lock timeout ({@link BIND_LOCK_TIMEOUT_MS} by default); nothing was left behind.
   * @example
   * ```ts
   * const binding = await binder.bindMapping({ email: 'lower(email)' }, spec.source, spec.target);
   * binding.bound; // [{ column: 'email', reads: ['email'], resultType: 'text', resultTypeOid: 25 }]
   * ```
   */
  async bindMapping(mapping: Readonly<Record<string, string>>, from: TableRef, into: TableRef, options: BindOptions = {}): Promise<MappingBinding> {
    await loadSqlParser();
    const uses = mappingUses(mapping, from, into);
    return this.#withSessions([from.datasource, into.datasource], async (sessions) => {
      const fromSession = sessions.get(from.datasource) as BindSession;
      const intoSession = sessions.get(into.datasource) as BindSession;
      const fromSig = await fromSession.lock(from, uses.from);
      const intoSig = await intoSession.lock(into, uses.into);
      const field = options.field ?? 'mapping';
      if (!fromSig || !intoSig) {
        const missing = [...(fromSig ? [] : [from]), ...(intoSig ? [] : [into])];
        return {
          problems: missing.map((ref) => ({ field, problem: `table ${ref.schema}.${ref.table} does not exist in datasource "${ref.datasource}"` })),
          bound: [],
          from: fromSig,
          into: intoSig,
        };
      }
      const result = await this.#bind(mapping, {
        field,
        from: fromSig,
        into: intoSig,
        fromSession,
        intoSession,
        fromRole: options.fromRole ?? 'source',
        intoRole: options.intoRole ?? 'target',
      });
      return { ...result, from: fromSig, into: intoSig };
    });
  }

  /**
   * Binds a whole spec at `start`: `mapping` (source row → target), `reverseMapping` when given
   * (target row → source, problems under `reverseMapping.<column>`), and the key columns of both
   * tables (Tideway casts key values from text: `source.key` / `target.key` problems when that runs
   * user code). Tables that do not exist are reported by the caller's table check; their entries are
   * not bound.
   *
   * @throws DependencyUnavailableError as {@link bindMapping}.
   */
  async bindSpec(spec: MigrationSpec): Promise<SpecBinding> {
    await loadSqlParser();
    const uses = signatureUses(spec);
    return this.#withSessions([spec.source.datasource, spec.target.datasource], async (sessions) => {
      const sourceSession = sessions.get(spec.source.datasource) as BindSession;
      const targetSession = sessions.get(spec.target.datasource) as BindSession;
      const source = await sourceSession.lock(spec.source, uses.source);
      const target = await targetSession.lock(spec.target, uses.target);
      const signature: CatalogSignature = { source, target };
      if (!source || !target) return { problems: [], mapping: [], reverseMapping: null, signature };
      const forward = await this.#bind(spec.mapping, {
        field: 'mapping',
        from: source,
        into: target,
        fromSession: sourceSession,
        intoSession: targetSession,
        fromRole: 'source',
        intoRole: 'target',
      });
      // The way back as it will run (the given reverse mapping and the entries derived from copies),
      // or, when the spec declares none, a reverse mapping it gives anyway.
      const back = reverseMappingOf(spec) ?? spec.reverseMapping;
      const reverse = back
        ? await this.#bind(back, {
            field: 'reverseMapping',
            from: target,
            into: source,
            fromSession: targetSession,
            intoSession: sourceSession,
            fromRole: 'target',
            intoRole: 'source',
          })
        : null;
      const keys = [
        ...(await this.#bindKeys('source.key', spec.source, source, sourceSession)),
        ...(await this.#bindKeys('target.key', spec.target, target, targetSession)),
      ];
      return {
        problems: [...forward.problems, ...(reverse?.problems ?? []), ...keys],
        mapping: forward.bound,
        reverseMapping: reverse?.bound ?? null,
        signature,
      };
    });
  }

  /**
   * The source and target of `spec` as the live catalog describes them now (no lock, no
   * transaction), in the shape of {@link SpecBinding.signature}: compare the two with
   * `describeSignatureChange` to see whether DDL changed what the migration uses.
   *
   * @throws DependencyUnavailableError when a datasource cannot be reached.
   */
  async catalogSignature(spec: MigrationSpec): Promise<CatalogSignature> {
    await loadSqlParser();
    const uses = signatureUses(spec);
    const [source, target] = await Promise.all([
      this.#datasources.withClient(spec.source.datasource, (c) => readTableSignature(c, spec.source, uses.source)),
      this.#datasources.withClient(spec.target.datasource, (c) => readTableSignature(c, spec.target, uses.target)),
    ]);
    return { source, target };
  }

  /** Opens one rolled-back binding transaction per datasource, runs `fn`, and rolls every one back. */
  async #withSessions<T>(names: readonly string[], fn: (sessions: ReadonlyMap<string, BindSession>) => Promise<T>): Promise<T> {
    const unique = [...new Set(names)];
    const open = async (index: number, sessions: Map<string, BindSession>): Promise<T> => {
      const name = unique[index];
      if (name === undefined) return fn(sessions);
      return this.#datasources.withClient(name, async (client) => {
        const session = await BindSession.begin(name, client, this.#lockTimeoutMs);
        try {
          return await open(index + 1, new Map(sessions).set(name, session));
        } catch (error) {
          return busy(error, name);
        } finally {
          await session.rollback().catch(() => undefined);
        }
      });
    };
    return open(0, new Map());
  }

  async #bind(mapping: Readonly<Record<string, string>>, ctx: EntryContext): Promise<{ problems: SpecProblem[]; bound: BoundExpression[] }> {
    const problems: SpecProblem[] = [];
    const bound: BoundExpression[] = [];
    for (const column of Object.keys(mapping).sort()) {
      const result = await this.#bindEntry({ ...ctx, field: `${ctx.field}.${column}` }, column, mapping[column] as string);
      problems.push(...result.problems);
      if (result.bound) bound.push(result.bound);
    }
    return { problems, bound };
  }

  async #bindEntry(ctx: EntryContext, column: string, expr: string): Promise<{ problems: SpecProblem[]; bound?: BoundExpression }> {
    const { field, from, into, fromSession, intoSession } = ctx;
    const problems: SpecProblem[] = [];
    const analysis = analyzeMappingExpression(expr);
    if (!analysis.ok) return { problems: [{ field, problem: `${analysis.message} [${analysis.construct}]` }] };
    const fromColumns = new Map(from.columns.map((c) => [c.name, c]));
    for (const name of analysis.columns) {
      if (!fromColumns.has(name)) problems.push({ field, problem: `reads column "${name}", which the ${ctx.fromRole} table does not have` });
    }
    const target = into.columns.find((c) => c.name === column);
    if (!target) problems.push({ field, problem: `column "${column}" does not exist in ${ctx.intoRole} table ${into.schema}.${into.table}` });
    if (problems.length > 0 || !target) return { problems };

    const sameDatasource = fromSession === intoSession;
    // 1. Types whose input or checks PostgreSQL may run while analysing, judged before it does.
    for (const t of analysis.typeNames) {
      const text = t.names.map(quoteIdent).join('.') + '[]'.repeat(t.arrayDimensions);
      const oid = (await fromSession.client.query<{ oid: number | null }>('SELECT pg_catalog.to_regtype($1)::int8 AS oid', [text])).rows[0]?.oid;
      if (oid == null) continue; // does not exist: the analysis below reports PostgreSQL's message
      const why = await fromSession.judge.typeProblem(oid);
      if (why) problems.push({ field, problem: `the expression casts to type ${await fromSession.judge.typeName(oid)}, which ${why} [bound:type]` });
    }
    if (analysis.hasStringLiteral) {
      for (const name of analysis.columns) {
        const read = fromColumns.get(name);
        const why = read ? await fromSession.judge.typeProblem(read.typeOid) : null;
        if (read && why) {
          problems.push({ field, problem: `the expression has a string literal and reads column ${name} of type ${read.type}, which ${why}: PostgreSQL may read the literal as that type [bound:type]` });
        }
      }
    }
    if (analysis.hasStringLiteral || !sameDatasource) {
      const why = await intoSession.judge.typeProblem(target.typeOid);
      if (why) problems.push({ field, problem: `column ${column} of ${into.schema}.${into.table} has type ${target.type}, which ${why} [bound:type]` });
    }
    if (problems.length > 0) return { problems };

    // 2. and 3. Analysed by PostgreSQL into temporary objects, never executed.
    const select = `SELECT (${expr}) FROM ${qualified(from)} AS ${SOURCE_ALIAS}`;
    const insert = `INSERT INTO ${qualified(into)} (${quoteIdent(column)}) `;
    const relations = new Set(sameDatasource ? [from.oid, into.oid] : [from.oid]);
    type Outcome = { ok: false; problems: SpecProblem[] } | { ok: true; reads: string[]; result: { oid: number; type: string } };
    const outcome = await fromSession.scratch(async (): Promise<Outcome> => {
      const name = fromSession.name();
      const body = sameDatasource ? insert + select : select;
      const statement = `CREATE FUNCTION pg_temp.${name}() RETURNS void LANGUAGE sql BEGIN ATOMIC ${body}; END`;
      let oid: number;
      try {
        oid = await fromSession.createFunction(name, body);
      } catch (error) {
        if (!isPgError(error) || error.code === '55P03' || error.code === '57014') throw error;
        return { ok: false, problems: [{ field, problem: bindError(error, from.datasource, statement, statement.indexOf(select) + 'SELECT ('.length, expr) }] };
      }
      const judged = await fromSession.judge.judge(await fromSession.judge.dependencies('pg_proc', oid), relations);
      if (judged.refusals.length > 0) return { ok: false, problems: judged.refusals.map((r) => problem(field, r)) };
      const read = judged.columns.get(from.oid) ?? new Set<number>();
      const reads = from.columns.filter((c) => read.has(c.attnum)).map((c) => c.name);
      const result = await resultType(fromSession, expr, from);
      if ('error' in result) return { ok: false, problems: [{ field, problem: bindError(result.error, from.datasource, result.statement, result.exprStart, expr) }] };
      return { ok: true, reads, result };
    });
    if (!outcome.ok) return { problems: outcome.problems };
    const bound: BoundExpression = { column, reads: outcome.reads, resultType: outcome.result.type, resultTypeOid: outcome.result.oid };
    if (sameDatasource) return { problems: [], bound };

    // Across datasources the value travels as text: its type's output runs on the source, the
    // target's input on the target, then the assignment to the column.
    const sourceWhy = await fromSession.judge.typeProblem(bound.resultTypeOid);
    if (sourceWhy) return { problems: [{ field, problem: `the result type ${bound.resultType} ${sourceWhy}: values travel to another datasource as text [bound:type]` }] };
    const targetOid = (await intoSession.client.query<{ oid: number | null }>('SELECT pg_catalog.to_regtype($1)::int8 AS oid', [bound.resultType])).rows[0]?.oid;
    if (targetOid == null) {
      return { problems: [{ field, problem: `the result type ${bound.resultType} does not exist on datasource "${into.datasource}", where column ${column} is written [bound:missing-type]` }] };
    }
    const targetWhy = await intoSession.judge.typeProblem(targetOid);
    if (targetWhy) return { problems: [{ field, problem: `the result type ${bound.resultType} on datasource "${into.datasource}" ${targetWhy} [bound:type]` }] };
    const assigned = await intoSession.scratch(async () => {
      const name = intoSession.name();
      const body = `${insert}SELECT NULL::${bound.resultType}`;
      let oid: number;
      try {
        oid = await intoSession.createFunction(name, body);
      } catch (error) {
        if (!isPgError(error) || error.code === '55P03' || error.code === '57014') throw error;
        return [{ field, problem: `the result type ${bound.resultType} cannot be written to column ${column} of ${into.schema}.${into.table} on datasource "${into.datasource}": ${error.message} [bind-error]` }];
      }
      const judged = await intoSession.judge.judge(await intoSession.judge.dependencies('pg_proc', oid), new Set([into.oid]));
      return judged.refusals.map((r) => ({ field, problem: `${r.message.replace(/^the expression/, `writing ${bound.resultType} to column ${column}`)} [${r.construct}]` }));
    });
    return assigned.length > 0 ? { problems: assigned } : { problems: [], bound };
  }

  /** Key values are cast from text in every chunk: the key's type and that cast must run no user code. */
  async #bindKeys(field: string, ref: TableRef, table: TableSignature, session: BindSession): Promise<SpecProblem[]> {
    const problems: SpecProblem[] = [];
    for (const key of ref.key) {
      const column = table.columns.find((c) => c.name === key);
      if (!column) continue; // the table check reports it
      const why = await session.judge.typeProblem(column.typeOid);
      if (why) {
        problems.push({ field, problem: `key column ${key} has type ${column.type}, which ${why}: Tideway casts key values from text [bound:type]` });
        continue;
      }
      const refusals = await session.scratch(async (): Promise<Refusal[]> => {
        let oid: number;
        try {
          oid = await session.createFunction(session.name(), `SELECT NULL::pg_catalog.text::${column.type}`);
        } catch (error) {
          if (!isPgError(error) || error.code === '55P03' || error.code === '57014') throw error;
          return [{ construct: 'bound:other', message: `the expression ${column.type} cannot be cast from text: ${error.message}` }];
        }
        return (await session.judge.judge(await session.judge.dependencies('pg_proc', oid), new Set())).refusals;
      });
      for (const r of refusals) {
        problems.push({ field, problem: `key column ${key}: Tideway casts key values from text, and ${r.message.replace(/^the expression /, 'that cast ')} [${r.construct}]` });
      }
    }
    return problems;
  }
}

/**
 * The expression's own type, from a temporary view of it (`record` for an anonymous row, which a
 * view cannot hold), or PostgreSQL's error.
 */
async function resultType(session: BindSession, expr: string, from: TableSignature): Promise<{ oid: number; type: string } | { error: PgError; statement: string; exprStart: number }> {
  const name = session.name();
  const prefix = `CREATE VIEW pg_temp.${name} AS SELECT (`;
  const statement = `${prefix}${expr}) AS v FROM ${qualified(from)} AS ${SOURCE_ALIAS}`;
  await session.client.query('SAVEPOINT tideway_bind_type');
  try {
    await session.client.query(statement);
  } catch (error) {
    await session.client.query('ROLLBACK TO SAVEPOINT tideway_bind_type');
    if (!isPgError(error) || error.code === '55P03' || error.code === '57014') throw error;
    if (error.code === '42P16') return { oid: 2249, type: 'record' };
    return { error, statement, exprStart: prefix.length };
  }
  const r = await session.client.query<{ oid: number; type: string }>(
    `SELECT a.atttypid::int8 AS oid, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
     FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum = 1`,
    [`pg_temp.${name}`],
  );
  await session.client.query('RELEASE SAVEPOINT tideway_bind_type');
  const row = r.rows[0];
  return row ? { oid: row.oid, type: row.type } : { oid: 0, type: 'unknown' };
}

/** Columns that matter to a single mapping: what it reads from `from`, writes to `into`, and both keys. */
function mappingUses(mapping: Readonly<Record<string, string>>, from: TableRef, into: TableRef): { from: Map<string, ColumnUse[]>; into: Map<string, ColumnUse[]> } {
  const fromUses = new Map<string, ColumnUse[]>();
  const intoUses = new Map<string, ColumnUse[]>();
  const add = (map: Map<string, ColumnUse[]>, column: string, use: ColumnUse) => {
    const list = map.get(column) ?? [];
    if (!list.includes(use)) list.push(use);
    map.set(column, list);
  };
  for (const expr of Object.values(mapping)) {
    const analysis = analyzeMappingExpression(expr);
    if (analysis.ok) for (const c of analysis.columns) add(fromUses, c, 'read');
  }
  for (const c of Object.keys(mapping)) add(intoUses, c, 'written');
  for (const c of from.key) add(fromUses, c, 'key');
  for (const c of into.key) add(intoUses, c, 'key');
  return { from: fromUses, into: intoUses };
}
