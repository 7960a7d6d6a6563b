import type { SpecProblem } from '@tideway/core';
import { hasSqlDetails, loadModule, parseSync, scanSync } from 'libpg-query';
import {
  AGGREGATE_FUNCTIONS,
  CAST_GROWTH,
  FIXED_RESULT_CHARS,
  MAPPING_FUNCTIONS,
  MAPPING_FUNCTION_ARITY,
  MAPPING_FUNCTION_GROWTH,
  MAX_PAD_LENGTH,
  MAX_REPEAT_COUNT,
  MAX_RESULT_CONSTANT_CHARS,
  MAX_RESULT_GROWTH,
  SET_RETURNING_FUNCTIONS,
  VOLATILE_FUNCTIONS,
  WINDOW_FUNCTIONS,
} from './mapping-functions.js';

/**
 * What {@link validateMappingExpression} concluded about one mapping expression.
 *
 * - `{ ok: true, columns }`: the expression is allowed; `columns` lists the source columns it reads,
 *   each once, in order of first appearance, as PostgreSQL resolves them (unquoted names folded to
 *   lower case, quoted names kept as written).
 * - `{ ok: false, construct, message }`: the first construct found that is not allowed.
 *   `construct` is a short machine name (see {@link validateMappingExpression}); `message` is a
 *   sentence for a person that names it.
 */
export type MappingExpressionResult =
  | { readonly ok: true; readonly columns: string[] }
  | { readonly ok: false; readonly construct: string; readonly message: string };

/**
 * A bound on the length of an expression's result, in characters: at most `growth` × the length of
 * the source values it reads, plus `constant` characters of its own (literals, padding, fixed-size
 * results). A model, conservative by construction (see {@link validateMappingExpression}).
 */
export interface ResultSize {
  readonly growth: number;
  readonly constant: number;
}

/**
 * A type named in a cast or typed literal, as written: `names` with SQL-syntax names resolved by the
 * parser (`int` → `['pg_catalog', 'int4']`, `public.evil` → `['public', 'evil']`), and the number of
 * array dimensions (`text[]` → 1). Type modifiers are left out: resolving them runs the type's
 * modifier-input function.
 */
export interface CastTypeName {
  readonly names: readonly string[];
  readonly arrayDimensions: number;
}

/**
 * What {@link analyzeMappingExpression} found in an allowed expression: its source columns (as in
 * {@link MappingExpressionResult}), the types it names, whether it has a string literal (whose type
 * the parser resolves from context, running that type's input function at parse time), and the
 * bound on its result size.
 */
export interface MappingExpressionAnalysis {
  readonly ok: true;
  readonly columns: string[];
  readonly typeNames: readonly CastTypeName[];
  readonly hasStringLiteral: boolean;
  readonly size: ResultSize;
}

/**
 * The longest expression accepted, in characters. The WASM parser overflows the JavaScript stack on
 * pathological input of about 30,000 characters; real mapping expressions are far shorter.
 */
export const MAX_MAPPING_EXPRESSION_LENGTH = 10_000;

/** The deepest expression tree accepted (nested calls, operators, CASE...). */
export const MAX_MAPPING_EXPRESSION_DEPTH = 200;

/** The name the expression is parsed against; it never reaches a database. */
const SOURCE_ALIAS = '__tideway_source';
const PREFIX = 'SELECT ';
const SUFFIX = `\nFROM ${SOURCE_ALIAS}`;

let loading: Promise<void> | undefined;
let loaded = false;

/**
 * Loads the PostgreSQL parser (libpg-query, PostgreSQL 18 grammar, compiled to WebAssembly; about
 * 40 ms). Call it once at boot before {@link validateMappingExpression} or {@link validateMapping},
 * which are synchronous. Safe to call many times and concurrently: later calls return the same
 * promise.
 *
 * @throws whatever WebAssembly instantiation throws (the promise rejects; a later call retries).
 * @example
 * ```ts
 * await loadSqlParser();
 * validateMappingExpression('lower(email)'); // { ok: true, columns: ['email'] }
 * ```
 */
export function loadSqlParser(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      loaded = true;
    },
    (error: unknown) => {
      loading = undefined;
      throw error;
    },
  );
  return loading;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Thrown inside the walk to stop at the first construct that is not allowed. */
class Rejection {
  constructor(
    readonly construct: string,
    readonly message: string,
  ) {}
}

function reject(construct: string, message: string): never {
  throw new Rejection(construct, message);
}

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: Json | undefined): Json[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Splits a parse-tree node `{ TypeName: { ...fields } }` into its type and fields. */
function unwrap(node: Json | undefined): [string, JsonObject] {
  if (!isObject(node)) return reject('node:unknown', 'the parse tree holds something that is not a node');
  const keys = Object.keys(node);
  const type = keys[0];
  const fields = type === undefined ? undefined : node[type];
  if (keys.length !== 1 || type === undefined || !isObject(fields)) {
    return reject('node:unknown', 'the parse tree holds something that is not a node');
  }
  return [type, fields];
}

/** Whitelists the fields of a node, so a field a future parser adds is refused until reviewed. */
function onlyFields(type: string, fields: JsonObject, allowed: readonly string[]): void {
  for (const key of Object.keys(fields)) {
    if (!allowed.includes(key)) reject(`node:${type}.${key}`, `${type} with ${key} is not allowed in a mapping expression`);
  }
}

function stringValue(node: Json | undefined): string | undefined {
  if (!isObject(node)) return undefined;
  const inner = node['String'];
  if (!isObject(inner)) return undefined;
  const sval = inner['sval'];
  return typeof sval === 'string' ? sval : '';
}

function names(list: Json | undefined): string[] {
  return asArray(list).map((item) => stringValue(item) ?? '?');
}

/** The function name when the call is unqualified or qualified with `pg_catalog`, else undefined. */
function catalogName(parts: readonly string[]): string | undefined {
  if (parts.length === 1) return parts[0];
  if (parts.length === 2 && parts[0] === 'pg_catalog') return parts[1];
  return undefined;
}

const A_EXPR_KINDS: ReadonlySet<string> = new Set([
  'AEXPR_OP', 'AEXPR_OP_ANY', 'AEXPR_OP_ALL', 'AEXPR_DISTINCT', 'AEXPR_NOT_DISTINCT', 'AEXPR_NULLIF',
  'AEXPR_IN', 'AEXPR_LIKE', 'AEXPR_ILIKE', 'AEXPR_SIMILAR', 'AEXPR_BETWEEN', 'AEXPR_NOT_BETWEEN',
  'AEXPR_BETWEEN_SYM', 'AEXPR_NOT_BETWEEN_SYM',
]);

const CLAUSE_NAMES: Readonly<Record<string, string>> = {
  intoClause: 'INTO', whereClause: 'WHERE', groupClause: 'GROUP BY', havingClause: 'HAVING',
  windowClause: 'WINDOW', distinctClause: 'DISTINCT', sortClause: 'ORDER BY', limitOffset: 'OFFSET',
  limitCount: 'LIMIT', limitOption: 'LIMIT', lockingClause: 'FOR UPDATE/SHARE', withClause: 'WITH', valuesLists: 'VALUES',
};

/** Operators whose result is a boolean (or another value of fixed size), whatever their operands. */
const FIXED_SIZE_OPERATORS: ReadonlySet<string> = new Set([
  '=', '<>', '!=', '<', '>', '<=', '>=', '~', '~*', '!~', '!~*', '~~', '~~*', '!~~', '!~~*', '@>', '<@', '&&',
  '?', '?|', '?&', '@@', '@?', '^@',
]);

/** A_Expr kinds whose result is a boolean. */
const BOOLEAN_A_EXPR_KINDS: ReadonlySet<string> = new Set([
  'AEXPR_OP_ANY', 'AEXPR_OP_ALL', 'AEXPR_DISTINCT', 'AEXPR_NOT_DISTINCT', 'AEXPR_IN', 'AEXPR_LIKE', 'AEXPR_ILIKE',
  'AEXPR_SIMILAR', 'AEXPR_BETWEEN', 'AEXPR_NOT_BETWEEN', 'AEXPR_BETWEEN_SYM', 'AEXPR_NOT_BETWEEN_SYM',
]);

const SIZE_ZERO: ResultSize = { growth: 0, constant: 0 };
const fixedSize = (chars: number): ResultSize => ({ growth: 0, constant: chars });
const sumSizes = (sizes: readonly ResultSize[]): ResultSize =>
  sizes.reduce((a, b) => ({ growth: a.growth + b.growth, constant: a.constant + b.constant }), SIZE_ZERO);
const maxSizes = (sizes: readonly ResultSize[]): ResultSize =>
  sizes.reduce((a, b) => ({ growth: Math.max(a.growth, b.growth), constant: Math.max(a.constant, b.constant) }), SIZE_ZERO);
const scaleSize = (size: ResultSize, factor: number, plus = 0): ResultSize => ({ growth: size.growth * factor, constant: size.constant * factor + plus });

/** The literal of an `A_Const` node as text (`null` for NULL), or `undefined` for any other node. */
function constantText(node: Json | undefined): string | null | undefined {
  if (!isObject(node) || !isObject(node['A_Const'])) return undefined;
  const c = node['A_Const'];
  if (c['isnull'] === true) return null;
  for (const key of ['sval', 'fval', 'bsval'] as const) {
    const inner = c[key];
    if (isObject(inner)) return typeof inner[key] === 'string' ? inner[key] : '';
  }
  if (isObject(c['ival'])) return String(typeof c['ival']['ival'] === 'number' ? c['ival']['ival'] : 0);
  if (isObject(c['boolval'])) return c['boolval']['boolval'] === true ? 'true' : 'false';
  return undefined;
}

/** The value of an integer literal (`ival`, negative ones included), or `undefined` for anything else. */
function integerConstant(node: Json | undefined): number | undefined {
  if (!isObject(node) || !isObject(node['A_Const'])) return undefined;
  const ival = node['A_Const']['ival'];
  if (!isObject(ival)) return undefined;
  return typeof ival['ival'] === 'number' ? ival['ival'] : 0;
}

/** Walks one expression tree, collecting column names; throws a Rejection at the first bad node. */
class ExpressionWalker {
  readonly columns: string[] = [];
  /** Types named in casts and typed literals, in order of appearance. */
  readonly typeNames: CastTypeName[] = [];
  /** Whether a string literal (a constant of type `unknown` until the parser resolves it) appears. */
  stringLiteral = false;

  walk(node: Json | undefined, depth: number): ResultSize {
    if (depth > MAX_MAPPING_EXPRESSION_DEPTH) {
      reject('too-deep', `the expression nests deeper than ${MAX_MAPPING_EXPRESSION_DEPTH} levels`);
    }
    const [type, f] = unwrap(node);
    const next = depth + 1;
    switch (type) {
      case 'ColumnRef':
        onlyFields(type, f, ['fields', 'location']);
        this.columnRef(f);
        return { growth: 1, constant: 0 };
      case 'A_Const': {
        onlyFields(type, f, ['isnull', 'ival', 'fval', 'boolval', 'sval', 'bsval', 'location']);
        if (f['sval'] !== undefined) this.stringLiteral = true;
        return fixedSize(constantText(node)?.length ?? 0);
      }
      case 'A_Expr': {
        onlyFields(type, f, ['kind', 'name', 'lexpr', 'rexpr', 'location', 'rexpr_list_start', 'rexpr_list_end']);
        const kind = String(f['kind']);
        if (!A_EXPR_KINDS.has(kind)) reject(`node:A_Expr:${kind}`, `the operator form ${kind} is not allowed`);
        const operator = names(f['name']);
        if (operator.length > 1 && !(operator.length === 2 && operator[0] === 'pg_catalog')) {
          reject(`operator:${operator.join('.')}`, `operator ${operator.join('.')} is outside pg_catalog`);
        }
        const sizes: ResultSize[] = [];
        if (f['lexpr'] !== undefined) sizes.push(this.walk(f['lexpr'], next));
        const rexpr = f['rexpr'];
        // IN (...) and BETWEEN carry their operands as a bare List.
        if (isObject(rexpr) && isObject(rexpr['List'])) {
          onlyFields('List', rexpr['List'], ['items']);
          for (const item of asArray(rexpr['List']['items'])) sizes.push(this.walk(item, next));
        } else if (rexpr !== undefined) {
          sizes.push(this.walk(rexpr, next));
        }
        if (BOOLEAN_A_EXPR_KINDS.has(kind)) return fixedSize(5);
        if (kind === 'AEXPR_NULLIF') return sizes[0] ?? SIZE_ZERO;
        if (FIXED_SIZE_OPERATORS.has(operator[operator.length - 1] ?? '')) return fixedSize(5);
        // Concatenation and arithmetic add their operands' sizes (numeric results are also capped
        // by PostgreSQL's numeric range).
        return sumSizes(sizes);
      }
      case 'BoolExpr':
        onlyFields(type, f, ['boolop', 'args', 'location']);
        this.walkAll(f['args'], next);
        return fixedSize(5);
      case 'NullTest':
        onlyFields(type, f, ['arg', 'nulltesttype', 'argisrow', 'location']);
        this.walk(f['arg'], next);
        return fixedSize(5);
      case 'BooleanTest':
        onlyFields(type, f, ['arg', 'booltesttype', 'location']);
        this.walk(f['arg'], next);
        return fixedSize(5);
      case 'CaseExpr': {
        onlyFields(type, f, ['arg', 'args', 'defresult', 'location']);
        if (f['arg'] !== undefined) this.walk(f['arg'], next);
        const results = this.walkAll(f['args'], next);
        if (f['defresult'] !== undefined) results.push(this.walk(f['defresult'], next));
        return maxSizes(results);
      }
      case 'CaseWhen':
        onlyFields(type, f, ['expr', 'result', 'location']);
        this.walk(f['expr'], next);
        return this.walk(f['result'], next);
      case 'CoalesceExpr':
        onlyFields(type, f, ['args', 'location']);
        return maxSizes(this.walkAll(f['args'], next));
      case 'MinMaxExpr':
        onlyFields(type, f, ['op', 'args', 'location']);
        return maxSizes(this.walkAll(f['args'], next));
      case 'TypeCast':
        onlyFields(type, f, ['arg', 'typeName', 'location']);
        this.typeName(f['typeName']);
        // A value's text form may be longer than the value (bytea → hex text doubles it).
        return scaleSize(this.walk(f['arg'], next), CAST_GROWTH, 2);
      case 'CollateClause':
        onlyFields(type, f, ['arg', 'collname', 'location']);
        return this.walk(f['arg'], next);
      case 'A_ArrayExpr': {
        onlyFields(type, f, ['elements', 'location', 'list_start', 'list_end']);
        const elements = this.walkAll(f['elements'], next);
        return scaleSize(sumSizes(elements), CAST_GROWTH, 8 * elements.length + 2);
      }
      case 'RowExpr': {
        onlyFields(type, f, ['args', 'row_format', 'colnames', 'location']);
        const fields = this.walkAll(f['args'], next);
        return scaleSize(sumSizes(fields), CAST_GROWTH, 8 * fields.length + 2);
      }
      case 'A_Indirection': {
        onlyFields(type, f, ['arg', 'indirection']);
        const size = this.walk(f['arg'], next);
        this.indirection(f['indirection'], next);
        return size;
      }
      case 'FuncCall':
        return this.funcCall(f, next);
      case 'SubLink':
        return reject('subquery', 'subqueries are not allowed: a mapping expression reads only the current source row');
      case 'ParamRef': {
        const number = typeof f['number'] === 'number' ? f['number'] : 0;
        return reject(`parameter:$${number}`, `parameter $${number} is not allowed: a mapping expression takes no parameters`);
      }
      case 'SQLValueFunction': {
        const name = String(f['op']).replace(/^SVFOP_/, '').replace(/_N$/, '').toLowerCase();
        return reject(`function:${name}`, `${name} is not allowed: it depends on the clock or the session, not on the source row`);
      }
      default:
        return reject(`node:${type}`, `${type} is not allowed in a mapping expression`);
    }
  }

  private walkAll(list: Json | undefined, depth: number): ResultSize[] {
    return asArray(list).map((item) => this.walk(item, depth));
  }

  private columnRef(f: JsonObject): void {
    const fields = asArray(f['fields']);
    const parts = fields.map((field) => (isObject(field) && 'A_Star' in field ? '*' : (stringValue(field) ?? '?')));
    const text = parts.join('.');
    if (parts.includes('*')) reject('star', `${text} is not allowed: map each target column to one expression`);
    const column = parts[0];
    if (parts.length !== 1 || column === undefined) {
      reject(`qualified-column:${text}`, `${text} is not allowed: refer to source columns by their bare name`);
    }
    if (!this.columns.includes(column)) this.columns.push(column);
  }

  private typeName(node: Json | undefined): void {
    if (!isObject(node)) return reject('node:TypeName', 'a cast without a type name is not allowed');
    onlyFields('TypeName', node, ['names', 'typmods', 'typemod', 'arrayBounds', 'location']);
    for (const modifier of asArray(node['typmods'])) {
      if (!isObject(modifier) || !('A_Const' in modifier)) {
        reject('type-modifier', `type modifiers of ${names(node['names']).join('.')} must be constants`);
      }
    }
    this.typeNames.push({ names: names(node['names']), arrayDimensions: asArray(node['arrayBounds']).length });
  }

  private indirection(list: Json | undefined, depth: number): void {
    for (const item of asArray(list)) {
      const [type, f] = unwrap(item);
      if (type === 'String') continue; // (composite).field
      if (type === 'A_Star') reject('star', '(...).* is not allowed: map each target column to one expression');
      if (type !== 'A_Indices') reject(`node:${type}`, `${type} is not allowed in a mapping expression`);
      onlyFields(type, f, ['is_slice', 'lidx', 'uidx']);
      if (f['lidx'] !== undefined) this.walk(f['lidx'], depth);
      if (f['uidx'] !== undefined) this.walk(f['uidx'], depth);
    }
  }

  private funcCall(f: JsonObject, depth: number): ResultSize {
    const parts = names(f['funcname']);
    const shown = parts.join('.');
    const name = catalogName(parts);
    if (f['over'] !== undefined) reject(`window:${shown}`, `window function ${shown}() OVER (...) is not allowed: a mapping reads one row`);
    for (const key of ['agg_star', 'agg_distinct', 'agg_order', 'agg_filter', 'agg_within_group']) {
      if (f[key] !== undefined && f[key] !== false) {
        reject(`aggregate:${shown}`, `aggregate ${shown}(...) is not allowed: a mapping reads one row`);
      }
    }
    onlyFields('FuncCall', f, ['funcname', 'args', 'func_variadic', 'funcformat', 'location']);
    if (name === undefined) {
      reject(`function:${shown}`, `${shown}() is not allowed: only pg_catalog functions on the allowlist may be called`);
    }
    if (AGGREGATE_FUNCTIONS.has(name)) reject(`aggregate:${name}`, `aggregate ${name}() is not allowed: a mapping reads one row`);
    if (WINDOW_FUNCTIONS.has(name)) reject(`window:${name}`, `window function ${name}() is not allowed: a mapping reads one row`);
    if (SET_RETURNING_FUNCTIONS.has(name)) {
      reject(`set-returning:${name}`, `set-returning function ${name}() is not allowed: a mapping yields one value per row`);
    }
    if (VOLATILE_FUNCTIONS.has(name)) {
      reject(`function:${name}`, `${name}() is not allowed: it is volatile or depends on the session; only immutable functions on the allowlist may be called`);
    }
    if (!MAPPING_FUNCTIONS.has(name)) {
      reject(`function:${name}`, `${name}() is not on the allowlist of immutable functions`);
    }
    const args = asArray(f['args']);
    const arity = MAPPING_FUNCTION_ARITY.get(name);
    if (arity !== undefined && args.length !== arity) {
      reject(`function:${name}`, `${name}() is allowed only with ${arity} arguments`);
    }
    const sizes = args.map((arg) => this.walk(arg, depth));
    return resultSizeOfCall(name, args, sizes, f['func_variadic'] === true);
  }
}

/**
 * The result size of an allowlisted call (see {@link MAPPING_FUNCTION_GROWTH}), refusing an
 * amplifying call whose count, length or replacement is not a constant within bounds.
 */
function resultSizeOfCall(name: string, args: readonly Json[], sizes: readonly ResultSize[], variadic: boolean): ResultSize {
  const first = sizes[0] ?? SIZE_ZERO;
  const constantArg = (index: number, what: string): string | null => {
    const text = constantText(args[index]);
    if (text === undefined) {
      reject(`result-size:${name}`, `${name}() needs a constant ${what}: a value from the row could make the result arbitrarily large`);
    }
    return text;
  };
  const countArg = (index: number, what: string, max: number): number => {
    const n = integerConstant(args[index]);
    if (n === undefined || n > max) {
      reject(`result-size:${name}`, `${name}() needs an integer constant ${what} from 0 to ${max.toLocaleString('en-US')}, so the result size is bounded`);
    }
    return Math.max(0, n);
  };
  switch (name) {
    case 'repeat':
      // A missing argument does not bind at start; only a present count is judged here.
      return args.length < 2 ? first : scaleSize(first, countArg(1, 'count', MAX_REPEAT_COUNT));
    case 'lpad':
    case 'rpad':
      // The result has exactly that many characters, whatever the input and the fill.
      return args.length < 2 ? first : fixedSize(countArg(1, 'length', MAX_PAD_LENGTH));
    case 'replace':
    case 'regexp_replace':
    case 'array_replace': {
      if (args.length < 3) return sumSizes(sizes);
      // Every match (a regular expression may match the empty string between characters) becomes
      // the replacement, whose back references repeat at most the matched text.
      const replacement = constantArg(2, 'replacement') ?? '';
      return scaleSize(first, Math.max(1, replacement.length) + (name === 'regexp_replace' ? 1 : 0), replacement.length);
    }
    case 'regexp_match': {
      if (args.length < 2) return first;
      // One element per capture group; the groups may overlap, each at most the whole input.
      const pattern = constantArg(1, 'pattern') ?? '';
      const groups = (pattern.match(/\(/g) ?? []).length;
      return scaleSize(first, groups + 1, 8 * (groups + 1));
    }
    case 'concat_ws': {
      // The separator is inserted between every two values, a VARIADIC array's elements included.
      if (args.length > 2 || (variadic && args.length > 1)) {
        const separator = constantArg(0, 'separator') ?? '';
        return scaleSize(sumSizes(sizes.slice(1)), separator.length + 1);
      }
      return sumSizes(sizes);
    }
    default: {
      const growth = MAPPING_FUNCTION_GROWTH.get(name);
      if (growth === undefined) return sumSizes(sizes);
      if (growth === 'fixed') return fixedSize(FIXED_RESULT_CHARS);
      return scaleSize(sumSizes(sizes), growth, 4 * sizes.length + 2);
    }
  }
}

/** The size model's verdict on a whole expression; refuses one over the bounds. */
function checkResultSize(size: ResultSize): void {
  if (size.growth > MAX_RESULT_GROWTH) {
    reject('result-size', `the result may be ${size.growth.toLocaleString('en-US')} times the size of the source values it reads; at most ${MAX_RESULT_GROWTH.toLocaleString('en-US')} is allowed`);
  }
  if (size.constant > MAX_RESULT_CONSTANT_CHARS) {
    reject('result-size', `the result may hold ${size.constant.toLocaleString('en-US')} characters of its own; at most ${MAX_RESULT_CONSTANT_CHARS.toLocaleString('en-US')} are allowed`);
  }
}

/** Checks the statement around the expression is exactly `SELECT <one target> FROM __tideway_source`. */
function singleTarget(tree: JsonObject, expr: string): Json {
  const statements = asArray(tree['stmts']);
  if (statements.length > 1) {
    reject('multiple-statements', `the expression holds ${statements.length - 1} extra statement(s): a mapping is one expression`);
  }
  const raw = statements[0];
  const [type, select] = unwrap(isObject(raw) ? raw['stmt'] : undefined);
  if (type !== 'SelectStmt') reject(`statement:${type}`, `the expression turns the query into a ${type}`);
  if (select['op'] !== 'SETOP_NONE') reject('clause:UNION', 'the expression adds a UNION, INTERSECT or EXCEPT: a mapping is one expression');
  for (const key of Object.keys(select)) {
    if (key === 'targetList' || key === 'fromClause' || key === 'op') continue;
    if (key === 'limitOption' && select[key] === 'LIMIT_OPTION_DEFAULT') continue;
    const clause = CLAUSE_NAMES[key] ?? key;
    reject(`clause:${clause}`, `the expression adds ${clause} to the query: a mapping is one expression`);
  }
  const from = asArray(select['fromClause']);
  const range = from.length === 1 && isObject(from[0]) ? from[0]['RangeVar'] : undefined;
  const expectedLocation = Buffer.byteLength(PREFIX + expr + SUFFIX) - SOURCE_ALIAS.length;
  const fromIsOurs =
    isObject(range) &&
    range['relname'] === SOURCE_ALIAS &&
    range['location'] === expectedLocation &&
    Object.keys(range).every((key) => ['relname', 'inh', 'relpersistence', 'location'].includes(key));
  if (!fromIsOurs) reject('clause:FROM', 'the expression adds a FROM clause: a mapping reads only the source row');
  const targets = asArray(select['targetList']);
  if (targets.length === 0) reject('empty-expression', 'the expression is empty');
  if (targets.length > 1) reject('multiple-expressions', `the expression is a list of ${targets.length} expressions: a target column takes one`);
  const [targetType, target] = unwrap(targets[0]);
  if (targetType !== 'ResTarget') reject(`node:${targetType}`, `${targetType} is not allowed as a select target`);
  if (target['name'] !== undefined) reject('alias', `the expression names its result (AS ${String(target['name'])}): the target column names it`);
  onlyFields('ResTarget', target, ['val', 'location']);
  return target['val'] ?? null;
}

function parseErrorResult(error: unknown, expr: string): MappingExpressionResult {
  const details = hasSqlDetails(error) ? error.sqlDetails : undefined;
  const cursor = details?.cursorPosition;
  // The parser's cursor is a 0-based character offset into `SELECT <expr>\nFROM ...`.
  const offset = cursor === undefined ? undefined : cursor - PREFIX.length;
  const atEnd = offset !== undefined && offset >= [...expr].length;
  // Keep the wrapping Tideway adds out of the message: it is not what the user wrote.
  let reason = (details?.message ?? (error instanceof Error ? error.message : String(error))).replaceAll(SUFFIX, '');
  if (atEnd) reason = reason.replace(/ at or near "FROM"$/, '');
  const where = offset === undefined ? '' : atEnd ? ' at the end of the expression' : ` at character ${Math.max(offset, 0) + 1} of the expression`;
  return { ok: false, construct: 'parse-error', message: `the expression does not parse: ${reason}${where}` };
}

/**
 * Decides whether one mapping expression (a SQL scalar expression over the source row, such as
 * `(total_cents * 0.92)::bigint` or `lower(email)`) is safe to put into Tideway's generated
 * backfill and sync SQL, and which source columns it reads.
 *
 * The expression is parsed by the real PostgreSQL parser (libpg-query, PostgreSQL 18 grammar) as
 * `SELECT <expr>\nFROM __tideway_source`, then the parse tree is walked against an allowlist: any
 * node type not listed below is refused by name (`node:<Type>`), and so is any field of a listed
 * node that the walker does not know. This is the allowlisting approach of Vitess VReplication
 * filters and of pg_query-based SQL firewalls: parse with the real grammar, never with regular
 * expressions, and accept only what is known to be harmless.
 *
 * Allowed:
 * - unqualified column references `col` / `"Col"` (collected into `columns`);
 * - constants of every kind, NULL included, and typed literals (`interval '1 day'`);
 * - operators (`A_Expr` OP, ANY/ALL over arrays, IS [NOT] DISTINCT FROM, IN lists, [NOT] BETWEEN
 *   [SYMMETRIC], LIKE, ILIKE, SIMILAR TO, NULLIF) with bare or `pg_catalog.` operator names;
 *   AND/OR/NOT; IS [NOT] NULL; IS [NOT] TRUE/FALSE/UNKNOWN;
 * - CASE (simple and searched), COALESCE, GREATEST, LEAST;
 * - casts (`x::t`, `CAST(x AS t)`) to any type name, with constant type modifiers;
 * - `COLLATE`, `ARRAY[...]` literals, `ROW(...)` / `(a, b)` constructors (immutable composite
 *   values, useful for composite target columns), subscripts and field selection (`tags[1]`,
 *   `payload['k']`, `(address).city`);
 * - calls to the functions in {@link MAPPING_FUNCTIONS}, bare or `pg_catalog.`-qualified.
 *
 * Refused, with `construct`:
 * - `too-long` (over {@link MAX_MAPPING_EXPRESSION_LENGTH} characters), `too-deep` (nesting over
 *   {@link MAX_MAPPING_EXPRESSION_DEPTH}), `nul-character`;
 * - `parse-error`: the parser's message and the 1-based character position in the expression;
 * - `comment`: `--` or `/* *\/` comments, which would swallow the SQL placed after the expression;
 * - `multiple-statements` (`id; delete from t`), `statement:<Type>`, `clause:<WHERE|INTO|FROM...>`
 *   (`id from other`, `id into t`), `empty-expression`, `multiple-expressions` (`a, b`), `alias`
 *   (`a AS b`);
 * - `subquery` (any SubLink: `(select 1)`, `EXISTS`, `IN (select ...)`, `ARRAY(select ...)`);
 * - `qualified-column:<a.b>` (`o.x`, `public.t.id`), `star` (`*`, `t.*`), `parameter:$<n>`;
 * - `aggregate:<name>` (`count(*)`, `sum(DISTINCT x)`, FILTER, WITHIN GROUP, ORDER BY inside
 *   the call), `window:<name>` (`... OVER (...)`), `set-returning:<name>` (`unnest(a)`);
 * - `function:<name>` for anything not on the allowlist: volatile calls (`now()`, `random()`,
 *   `nextval('s')`, `pg_sleep(1)`), SQL value functions (`current_timestamp`, `current_user`),
 *   unknown or schema-qualified functions (`function:public.f`);
 * - `result-size:<name>` for an amplifying call whose size parameter is not a constant within
 *   bounds: `repeat(s, n)` needs an integer literal n ≤ {@link MAX_REPEAT_COUNT}, `lpad`/`rpad(s, n)`
 *   an integer literal n ≤ {@link MAX_PAD_LENGTH}; `replace`, `regexp_replace` and `array_replace`
 *   a constant replacement, `regexp_match` a constant pattern, `concat_ws` with several values a
 *   constant separator (`repeat(name, 200000000)`, `replace(a, 'x', name)` are refused);
 * - `result-size` when the whole result may exceed {@link MAX_RESULT_GROWTH} × the source values it
 *   reads or {@link MAX_RESULT_CONSTANT_CHARS} characters of its own (nested amplifiers multiply:
 *   `repeat(repeat(name, 1000), 1000)`); the model is in {@link MAPPING_FUNCTION_GROWTH};
 * - `operator:<schema.op>` for `OPERATOR(myschema.+)`, `type-modifier` for a non-constant one;
 * - `node:<Type>` for every other node (`node:XmlExpr`, `node:NamedArgExpr`, `node:GroupingFunc`,
 *   `node:JsonObjectConstructor`...) and `node:<Type>.<field>` for an unknown field.
 *
 * This check is textual: which function, operator, cast or type a name resolves to is decided by
 * the datasource's catalog, which the expression binder (`features/expressions`) checks at start.
 *
 * The validator never throws for any input string (a parser failure, even a stack overflow, is a
 * `parse-error`), except when the parser was not loaded.
 *
 * @param expr - the expression text, as written in the spec's `mapping`.
 * @returns `{ ok: true, columns }` or `{ ok: false, construct, message }` (see
 *   {@link MappingExpressionResult}).
 * @throws Error when {@link loadSqlParser} has not completed yet.
 * @example
 * ```ts
 * await loadSqlParser();
 * validateMappingExpression("CASE status_code WHEN 0 THEN 'placed' ELSE 'other' END");
 * // { ok: true, columns: ['status_code'] }
 * validateMappingExpression('now()');
 * // { ok: false, construct: 'function:now', message: 'now() is not allowed: ...' }
 * ```
 */
export function validateMappingExpression(expr: string): MappingExpressionResult {
  const result = analyzeMappingExpression(expr);
  return result.ok ? { ok: true, columns: result.columns } : result;
}

/**
 * {@link validateMappingExpression} with what the walk found besides the columns: the types named
 * in casts, whether a string literal appears, and the result-size bound. The expression binder
 * (`features/expressions`) resolves the type names against the live catalog before it lets
 * PostgreSQL analyse the expression.
 *
 * @throws Error when {@link loadSqlParser} has not completed yet.
 * @example
 * ```ts
 * await loadSqlParser();
 * analyzeMappingExpression("email::public.address || 'x'");
 * // { ok: true, columns: ['email'], typeNames: [{ names: ['public', 'address'], arrayDimensions: 0 }],
 * //   hasStringLiteral: true, size: { growth: 2, constant: 3 } }
 * ```
 */
export function analyzeMappingExpression(expr: string): MappingExpressionAnalysis | Extract<MappingExpressionResult, { ok: false }> {
  if (!loaded) throw new Error('the SQL parser is not loaded: await loadSqlParser() once before validating mappings');
  if (expr.length > MAX_MAPPING_EXPRESSION_LENGTH) {
    return { ok: false, construct: 'too-long', message: `the expression is longer than ${MAX_MAPPING_EXPRESSION_LENGTH} characters` };
  }
  // The parser reads a C string: anything after a NUL would be silently dropped.
  if (expr.includes('\0')) return { ok: false, construct: 'nul-character', message: 'the expression contains a NUL character' };
  const sql = PREFIX + expr + SUFFIX;
  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch (error) {
    return parseErrorResult(error, expr) as Extract<MappingExpressionResult, { ok: false }>;
  }
  try {
    const comment = scanSync(sql).tokens.find((token) => token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT');
    if (comment !== undefined) reject('comment', `comments are not allowed in a mapping expression (found ${comment.text.slice(0, 40)})`);
    if (!isObject(tree as Json)) reject('parse-error', 'the parser returned no tree');
    const root = singleTarget(tree as JsonObject, expr);
    const walker = new ExpressionWalker();
    const size = walker.walk(root, 0);
    checkResultSize(size);
    return { ok: true, columns: walker.columns, typeNames: walker.typeNames, hasStringLiteral: walker.stringLiteral, size };
  } catch (error) {
    if (error instanceof Rejection) return { ok: false, construct: error.construct, message: error.message };
    // Fail closed: whatever could not be checked is refused.
    if (error instanceof RangeError) return { ok: false, construct: 'too-deep', message: 'the expression is too deeply nested to check' };
    return { ok: false, construct: 'parse-error', message: `the expression could not be checked: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/**
 * Validates every expression of a spec's `mapping` (target column to SQL expression over the
 * source row) with {@link validateMappingExpression}, and, when `sourceColumns` is given, checks
 * that every column an expression reads exists in the source table. Column names compare exactly
 * as PostgreSQL resolves them: `Email` reads `email`, `"Email"` reads `Email`.
 *
 * @param mapping - the spec's mapping, target column to expression.
 * @param sourceColumns - the source table's column names from the catalog; omit to skip the check.
 * @returns one {@link SpecProblem} per refused expression (`field: 'mapping.<target>'`, the message
 *   followed by the construct in brackets) and one per unknown column; empty when all is well.
 * @throws Error when {@link loadSqlParser} has not completed yet.
 * @example
 * ```ts
 * await loadSqlParser();
 * validateMapping({ id: 'id', created: 'now()', mail: 'lower(e_mail)' }, new Set(['id', 'email']));
 * // [ { field: 'mapping.created', problem: 'now() is not allowed: ... [function:now]' },
 * //   { field: 'mapping.mail', problem: 'reads column "e_mail", which the source table does not have' } ]
 * ```
 */
export function validateMapping(mapping: Readonly<Record<string, string>>, sourceColumns?: ReadonlySet<string>): SpecProblem[] {
  const problems: SpecProblem[] = [];
  for (const [target, expr] of Object.entries(mapping)) {
    const field = `mapping.${target}`;
    const result = validateMappingExpression(expr);
    if (!result.ok) {
      problems.push({ field, problem: `${result.message} [${result.construct}]` });
      continue;
    }
    for (const column of result.columns) {
      if (sourceColumns !== undefined && !sourceColumns.has(column)) {
        problems.push({ field, problem: `reads column "${column}", which the source table does not have` });
      }
    }
  }
  return problems;
}

/**
 * The source column an allowed expression copies — a bare column (`total`, `"Total"`) or casts of
 * one (`total::bigint`, `CAST(total AS numeric)`, `(total)::int8`) — or `null` for any other
 * expression (or one that is not allowed). The way back derives `source column ← target column`
 * from such entries; the binder and the round-trip check then prove that it holds on the live
 * catalog and the data.
 *
 * @throws Error when {@link loadSqlParser} has not completed yet.
 * @example
 * ```ts
 * await loadSqlParser();
 * copiedColumn('aid::bigint'); // 'aid'
 * copiedColumn('abalance * 100'); // null
 * ```
 */
export function copiedColumn(expr: string): string | null {
  if (!validateMappingExpression(expr).ok) return null;
  let node: Json | undefined;
  try {
    node = singleTarget(parseSync(PREFIX + expr + SUFFIX) as JsonObject, expr);
  } catch {
    return null;
  }
  for (let depth = 0; depth < MAX_MAPPING_EXPRESSION_DEPTH; depth++) {
    if (!isObject(node)) return null;
    const cast: Json | undefined = node['TypeCast'];
    if (isObject(cast)) {
      node = cast['arg'];
      continue;
    }
    const ref = node['ColumnRef'];
    if (!isObject(ref)) return null;
    const fields = asArray(ref['fields']);
    return fields.length === 1 ? (stringValue(fields[0]) ?? null) : null;
  }
  return null;
}
