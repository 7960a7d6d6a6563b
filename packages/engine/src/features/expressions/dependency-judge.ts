import type pg from 'pg';

/**
 * Objects with an oid below this are pinned: created by initdb's bootstrap (the built-ins of
 * pg_catalog), never dropped, and never recorded in `pg_depend` (PostgreSQL 14+,
 * `FirstUnpinnedObjectId` in `access/transam.h`). Everything a user or an extension creates is above it.
 */
export const FIRST_UNPINNED_OBJECT_ID = 12_000;

/** One `pg_depend` entry of a bound object: what it refers to. */
export interface Dependency {
  /** The catalog of the object referred to: `pg_proc`, `pg_operator`, `pg_type`, `pg_class`, … */
  readonly catalog: string;
  readonly oid: number;
  /** Column number for a column of a relation, else 0. */
  readonly subId: number;
  /** `pg_describe_object`: "function public.lower(bigint)", "column email of table public.users". */
  readonly what: string;
}

/** A dependency an expression may not have, and why (`construct` as in mapping problems). */
export interface Refusal {
  readonly construct: 'bound:function' | 'bound:operator' | 'bound:type' | 'bound:relation' | 'bound:other';
  readonly message: string;
}

/*
 * Catalog queries of the judge. Inputs: oids and object names as bind parameters only.
 */
const DEPENDENCIES_SQL = `
  SELECT d.refclassid::pg_catalog.regclass::text AS catalog, d.refobjid::int8 AS oid, d.refobjsubid AS sub_id,
         pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS what
  FROM pg_catalog.pg_depend d
  WHERE d.classid = $1::pg_catalog.regclass AND d.objid = $2 AND d.deptype <> 'e'
  ORDER BY d.refclassid, d.refobjid, d.refobjsubid`;
const TYPE_SQL = `
  SELECT t.typtype::text AS kind, t.typbasetype::int8 AS base, t.typelem::int8 AS elem, t.typrelid::int8 AS relid,
         (t.typinput = 'pg_catalog.array_in'::pg_catalog.regproc) AS is_array,
         pg_catalog.format_type(t.oid, NULL) AS name
  FROM pg_catalog.pg_type t WHERE t.oid = $1`;
const FIELDS_SQL = `
  SELECT a.attname::text AS name, a.atttypid::int8 AS type_oid
  FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;
const DOMAIN_CONSTRAINTS_SQL = `SELECT c.oid::int8 AS oid, c.conname::text AS name FROM pg_catalog.pg_constraint c WHERE c.contypid = $1 ORDER BY c.conname`;
const CAST_OF_FUNCTION_SQL = `
  SELECT pg_catalog.format_type(c.castsource, NULL) AS source, pg_catalog.format_type(c.casttarget, NULL) AS target
  FROM pg_catalog.pg_cast c WHERE c.castfunc = $1 LIMIT 1`;

/** How deep composite fields, array elements and domain bases are followed before giving up. */
const MAX_TYPE_DEPTH = 16;

/**
 * Judges what a bound expression depends on, from `pg_depend` of a temporary object that
 * PostgreSQL analysed it into (see `ExpressionBinder`), on one datasource session. Built-in
 * (pinned) objects have no `pg_depend` entry, so every entry names something a user or an
 * extension created; the judge allows only:
 * - the relations the caller names (the row read, the table written) and their columns;
 * - the session's own temporary schema (where the analysed object lives);
 * - collations (they run no code);
 * - types that run no user code on input or in checks (see {@link typeProblem}).
 * Anything else — a function (a shadowing `public.lower(bigint)`, a cast's `WITH FUNCTION`), an
 * operator, another relation — is refused. Verdicts on types are cached for the judge's lifetime
 * (one binding transaction).
 */
export class DependencyJudge {
  readonly #client: pg.ClientBase;
  readonly #types = new Map<number, Promise<string | null>>();

  constructor(client: pg.ClientBase) {
    this.#client = client;
  }

  /** The `pg_depend` entries of an object (`catalog` `pg_proc`, `pg_rewrite`, …), extension membership left out. */
  async dependencies(catalog: string, oid: number): Promise<Dependency[]> {
    const r = await this.#client.query<{ catalog: string; oid: number; sub_id: number; what: string }>(DEPENDENCIES_SQL, [`pg_catalog.${catalog}`, oid]);
    return r.rows.map((d) => ({ catalog: d.catalog, oid: d.oid, subId: d.sub_id, what: d.what }));
  }

  /**
   * Why a type may not be used, or `null` when it may. Allowed: built-in (pinned) types; enums;
   * composites whose fields are allowed; arrays, ranges and multiranges over allowed types (a range
   * with a user canonical or subtype-difference function is refused); domains over an allowed type
   * whose constraints and default use no user function or operator. Refused: base types that are not
   * built in (their input and output functions are an extension's or C code), pseudo-types, and
   * anything that depends on a user function. The reason is a phrase that follows the type's name:
   * "is a domain whose constraint evil_check uses function public.bump(text)".
   */
  typeProblem(oid: number, depth = 0): Promise<string | null> {
    if (oid < FIRST_UNPINNED_OBJECT_ID) return Promise.resolve(null);
    const cached = this.#types.get(oid);
    if (cached) return cached;
    const verdict = this.#judgeType(oid, depth);
    this.#types.set(oid, verdict);
    return verdict;
  }

  /** `format_type` of a type oid on this datasource. */
  async typeName(oid: number): Promise<string> {
    const r = await this.#client.query<{ name: string }>('SELECT pg_catalog.format_type($1, NULL) AS name', [oid]);
    return r.rows[0]?.name ?? `type ${oid}`;
  }

  async #judgeType(oid: number, depth: number): Promise<string | null> {
    if (depth > MAX_TYPE_DEPTH) return `nests types more than ${MAX_TYPE_DEPTH} levels deep`;
    const t = (await this.#client.query<{ kind: string; base: number; elem: number; relid: number; is_array: boolean; name: string }>(TYPE_SQL, [oid])).rows[0];
    if (!t) return 'does not exist';
    const nested = async (inner: number, phrase: (name: string) => string): Promise<string | null> => {
      const problem = await this.typeProblem(inner, depth + 1);
      return problem === null ? null : `${phrase(await this.typeName(inner))}, which ${problem}`;
    };
    switch (t.kind) {
      case 'b': {
        if (t.elem !== 0 && t.is_array) {
          const problem = await nested(t.elem, (name) => `is an array of ${name}`);
          if (problem) return problem;
          break;
        }
        return 'is a base type with input and output functions of its own (an extension or C code), which Tideway does not run';
      }
      case 'p':
        return 'is a pseudo-type';
      case 'c': {
        const fields = await this.#client.query<{ name: string; type_oid: number }>(FIELDS_SQL, [t.relid]);
        for (const field of fields.rows) {
          const problem = await nested(field.type_oid, (name) => `has field ${field.name} of type ${name}`);
          if (problem) return problem;
        }
        break;
      }
      case 'd': {
        const base = await nested(t.base, (name) => `is a domain over ${name}`);
        if (base) return base;
        const constraints = await this.#client.query<{ oid: number; name: string }>(DOMAIN_CONSTRAINTS_SQL, [oid]);
        for (const constraint of constraints.rows) {
          for (const dep of await this.dependencies('pg_constraint', constraint.oid)) {
            if (dep.catalog === 'pg_type' && dep.oid === oid) continue; // the constraint's own domain
            const problem = await this.#typeDependency(dep, depth, `is a domain whose constraint ${constraint.name}`);
            if (problem) return problem;
          }
        }
        break;
      }
      case 'e':
      case 'r':
      case 'm':
        break;
      default:
        return `is a type of kind "${t.kind}" that Tideway does not know`;
    }
    // What the type itself depends on: its schema, base or element type, a range's subtype and
    // support functions, a domain's default expression.
    for (const dep of await this.dependencies('pg_type', oid)) {
      const problem = await this.#typeDependency(dep, depth, '');
      if (problem) return problem;
    }
    return null;
  }

  /** Judges one dependency of a type or of a domain constraint; `subject` starts the phrase. */
  async #typeDependency(dep: Dependency, depth: number, subject: string): Promise<string | null> {
    switch (dep.catalog) {
      case 'pg_namespace':
      case 'pg_collation':
      case 'pg_class': // a composite's own relation; its fields are judged above
        return null;
      case 'pg_type': {
        const problem = await this.typeProblem(dep.oid, depth + 1);
        return problem === null ? null : `${subject ? `${subject} uses` : 'depends on'} ${dep.what}, which ${problem}`;
      }
      default:
        return `${subject ? `${subject} uses` : 'uses'} ${dep.what}, which is not built in`;
    }
  }

  /**
   * The oid of this session's temporary schema. Not cached: created with the first temporary
   * object, it goes again when the savepoint that created it is rolled back.
   */
  async #tempSchemaOid(): Promise<number> {
    return (await this.#client.query<{ oid: number }>('SELECT pg_catalog.pg_my_temp_schema()::int8 AS oid')).rows[0]?.oid ?? 0;
  }

  /**
   * Judges the dependencies of an analysed expression.
   *
   * @param relations - oids of the relations the expression may refer to (the row read, the table written).
   * @returns the refusals (every one, in `pg_depend` order) and, per allowed relation, the column
   *   numbers referred to.
   */
  async judge(dependencies: readonly Dependency[], relations: ReadonlySet<number>): Promise<{ refusals: Refusal[]; columns: Map<number, Set<number>> }> {
    const refusals: Refusal[] = [];
    const columns = new Map<number, Set<number>>();
    for (const dep of dependencies) {
      switch (dep.catalog) {
        case 'pg_class':
          if (relations.has(dep.oid)) {
            if (dep.subId > 0) columns.set(dep.oid, (columns.get(dep.oid) ?? new Set()).add(dep.subId));
          } else {
            refusals.push({ construct: 'bound:relation', message: `the expression refers to ${dep.what}: it may read only the row it maps` });
          }
          break;
        case 'pg_namespace':
          if (dep.oid !== (await this.#tempSchemaOid())) refusals.push({ construct: 'bound:other', message: `the expression depends on ${dep.what}` });
          break;
        case 'pg_collation':
          break;
        case 'pg_type': {
          const problem = await this.typeProblem(dep.oid);
          if (problem) refusals.push({ construct: 'bound:type', message: `the expression binds to ${dep.what}, which ${problem}` });
          break;
        }
        case 'pg_proc': {
          const cast = (await this.#client.query<{ source: string; target: string }>(CAST_OF_FUNCTION_SQL, [dep.oid])).rows[0];
          const via = cast ? ` (the cast from ${cast.source} to ${cast.target})` : '';
          refusals.push({
            construct: 'bound:function',
            message: `the expression binds to ${dep.what}${via}, which is not a built-in pg_catalog function: only built-in functions on the allowlist may run`,
          });
          break;
        }
        case 'pg_operator':
          refusals.push({ construct: 'bound:operator', message: `the expression binds to ${dep.what}, which is not a built-in pg_catalog operator` });
          break;
        default:
          refusals.push({ construct: 'bound:other', message: `the expression depends on ${dep.what}, which is not built in` });
      }
    }
    return { refusals, columns };
  }
}
