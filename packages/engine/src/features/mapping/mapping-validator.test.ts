import fc from 'fast-check';
import { parseSync } from 'libpg-query';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { MAPPING_FUNCTIONS } from './mapping-functions.js';
import {
  MAX_MAPPING_EXPRESSION_LENGTH,
  analyzeMappingExpression,
  loadSqlParser,
  validateMapping,
  validateMappingExpression,
  type MappingExpressionResult,
} from './mapping-validator.js';

beforeAll(async () => {
  await loadSqlParser();
});

/** Every allowed construct, with the source columns it must report (in order of appearance). */
const ACCEPTED: ReadonlyArray<readonly [string, string[]]> = [
  // the examples from the spec documentation
  ['id', ['id']],
  ['(total_cents * 0.92)::bigint', ['total_cents']],
  ["CASE status_code WHEN 0 THEN 'placed' WHEN 1 THEN 'paid' ELSE 'other' END", ['status_code']],
  ['lower(email)', ['email']],
  // column references: unquoted names fold to lower case, quoted names keep their case
  ['EMAIL', ['email']],
  ['"Email"', ['Email']],
  ['qty * price + qty', ['qty', 'price']],
  // constants of every kind
  ['42', []],
  ['-1.5', []],
  ['1e10', []],
  ["'text'", []],
  ["E'tab\\there'", []],
  ['$$dollar quoted$$', []],
  ['NULL', []],
  ['true', []],
  ["B'101'", []],
  ["X'1F'", []],
  ["interval '1 day'", []],
  ["date '2024-01-01' + 1", []],
  // operators
  ["name || ' ' || email", ['name', 'email']],
  ['qty % 2 = 0', ['qty']],
  ['-qty', ['qty']],
  ['qty OPERATOR(pg_catalog.+) 1', ['qty']],
  ['flag AND NOT (qty > 1 OR qty < 0)', ['flag', 'qty']],
  ['email IS NULL', ['email']],
  ['email IS NOT NULL', ['email']],
  ['email ISNULL', ['email']],
  ['email NOTNULL', ['email']],
  ['flag IS TRUE', ['flag']],
  ['flag IS NOT FALSE', ['flag']],
  ['flag IS UNKNOWN', ['flag']],
  ['status_code IN (1, 2, 3)', ['status_code']],
  ['status_code NOT IN (4, qty)', ['status_code', 'qty']],
  ['qty BETWEEN 1 AND 10', ['qty']],
  ['qty NOT BETWEEN SYMMETRIC price AND 1', ['qty', 'price']],
  ["email LIKE '%@example.com'", ['email']],
  ["email NOT ILIKE 'a%'", ['email']],
  ["code SIMILAR TO '[A-Z]+'", ['code']],
  ['email IS DISTINCT FROM name', ['email', 'name']],
  ['email IS NOT DISTINCT FROM name', ['email', 'name']],
  ['qty = ANY(nums)', ['qty', 'nums']],
  ['qty > ALL(ARRAY[1, 2])', ['qty']],
  // CASE, COALESCE, NULLIF, GREATEST, LEAST
  ["CASE WHEN qty > 10 THEN 'bulk' WHEN qty > 0 THEN 'some' END", ['qty']],
  ["coalesce(name, email, 'n/a')", ['name', 'email']],
  ["nullif(code, '')", ['code']],
  ['greatest(qty, 0)', ['qty']],
  ['least(price, 100)', ['price']],
  // casts to any type name, collations, arrays, rows, subscripts and field selection
  ['CAST(qty AS numeric(10, 2))', ['qty']],
  ["'{1,2}'::int[]", []],
  ['id::text', ['id']],
  ['created_at::date', ['created_at']],
  ['code::varchar(20)', ['code']],
  ['created_tz::timestamp with time zone', ['created_tz']],
  ['name COLLATE "C"', ['name']],
  ['ARRAY[id, qty]', ['id', 'qty']],
  ['ARRAY[]::int[]', []],
  ['ROW(id, name)', ['id', 'name']],
  ['(id, name)', ['id', 'name']],
  ['tags[1]', ['tags']],
  ['tags[1:qty]', ['tags', 'qty']],
  ["payload['k']", ['payload']],
  ['(addr).city', ['addr']],
  // allowlisted functions, bare, pg_catalog-qualified and in their SQL-syntax forms
  ["jsonb_build_object('id', id, 'email', lower(email))", ['id', 'email']],
  ['pg_catalog.upper(name)', ['name']],
  ["trim(both ' ' from name)", ['name']],
  ['substring(name from 1 for 3)', ['name']],
  ["position('@' in email)", ['email']],
  ["overlay(name placing 'x' from 1 for 1)", ['name']],
  ["created_at AT TIME ZONE 'UTC'", ['created_at']],
  ['round(price, 2)', ['price']],
  ["split_part(email, '@', 2)", ['email']],
  ['md5(email)::uuid', ['email']],
  ["concat_ws(' ', name, email)", ['name', 'email']],
  ['concat(VARIADIC tags)', ['tags']],
  ["jsonb_extract_path_text(payload, 'a', 'b')", ['payload']],
  ['to_jsonb(tags)', ['tags']],
  ['abs(qty) + mod(qty, 3)', ['qty']],
  ["regexp_replace(email, '@.*$', '')", ['email']],
  ["lpad(id::text, 8, '0')", ['id']],
  ['make_date(2024, qty, 1)', ['qty']],
  // amplifying functions with constant size parameters within bounds
  ['repeat(name, 3)', ['name']],
  ['repeat(name, 1000)', ['name']],
  ['repeat(name, -1)', ['name']],
  ["lpad(name, 10000, email)", ['name', 'email']],
  ["rpad(name, 0)", ['name']],
  ["replace(name, 'a', 'bb')", ['name']],
  ["replace(name, email, '')", ['name', 'email']],
  ["regexp_replace(email, '@.*$', '\\1', 'g')", ['email']],
  ["array_replace(tags, name, NULL)", ['tags', 'name']],
  ["regexp_match(email, '(.*)@(.*)')", ['email']],
  ["concat_ws(', ', name, email, code)", ['name', 'email', 'code']],
  ['concat_ws(name, email)', ['name', 'email']],
  ["overlay(name placing email from 1 for 2)", ['name', 'email']],
  ["repeat(repeat(name, 100), 100)", ['name']],
];

/** Every refused construct, with the `construct` it must be reported as. */
const REJECTED: ReadonlyArray<readonly [string, string]> = [
  // injection attempts
  ['1); drop table x; --', 'parse-error'],
  ['id; delete from t', 'parse-error'],
  ['id; delete from t where true; select 1', 'multiple-statements'],
  ['id; select 1', 'multiple-statements'],
  ['(select 1)', 'subquery'],
  ['id from other', 'parse-error'],
  ['id into t', 'clause:INTO'],
  ['1 FROM __tideway_source WHERE true UNION SELECT 1', 'clause:UNION'],
  ['id -- trailing', 'comment'],
  ['id /* c */ + 1', 'comment'],
  ['id\0; drop table x', 'nul-character'],
  // shape of the select list
  ['', 'empty-expression'],
  ['   ', 'empty-expression'],
  ['id, email', 'multiple-expressions'],
  ['id AS other', 'alias'],
  // other tables, qualified names, stars, parameters
  ['x.id', 'qualified-column:x.id'],
  ['o.x', 'qualified-column:o.x'],
  ['public.t.id', 'qualified-column:public.t.id'],
  ['__tideway_source.id', 'qualified-column:__tideway_source.id'],
  ['*', 'star'],
  ['t.*', 'star'],
  ['(addr).*', 'star'],
  ['$1', 'parameter:$1'],
  ['id + $2', 'parameter:$2'],
  // subqueries of every kind
  ['EXISTS (SELECT 1 FROM other)', 'subquery'],
  ['id IN (SELECT id FROM other)', 'subquery'],
  ['ARRAY(SELECT 1)', 'subquery'],
  ['id = ANY(SELECT id FROM other)', 'subquery'],
  // volatile, session-dependent, unknown and schema-qualified functions
  ['pg_sleep(1)', 'function:pg_sleep'],
  ["nextval('s')", 'function:nextval'],
  ['now()', 'function:now'],
  ['random()', 'function:random'],
  ['clock_timestamp()', 'function:clock_timestamp'],
  ['gen_random_uuid()', 'function:gen_random_uuid'],
  ['current_timestamp', 'function:current_timestamp'],
  ['current_date', 'function:current_date'],
  ['localtimestamp(3)', 'function:localtimestamp'],
  ['current_user', 'function:current_user'],
  ["to_char(created_at, 'YYYY')", 'function:to_char'],
  ["date_trunc('day', created_at)", 'function:date_trunc'],
  ['extract(year from created_at)', 'function:extract'],
  ['created_at AT LOCAL', 'function:timezone'],
  ['my_func(id)', 'function:my_func'],
  ['"LOWER"(email)', 'function:LOWER'],
  ['public.lower(email)', 'function:public.lower'],
  ['pg_catalog.pg_sleep(1)', 'function:pg_sleep'],
  ['lower(pg_sleep(1)::text)', 'function:pg_sleep'],
  // aggregates, windows, set-returning functions
  ['count(*)', 'aggregate:count'],
  ['count(DISTINCT id)', 'aggregate:count'],
  ['sum(qty)', 'aggregate:sum'],
  ["string_agg(name, ',' ORDER BY name)", 'aggregate:string_agg'],
  ['sum(qty) FILTER (WHERE flag)', 'aggregate:sum'],
  ['percentile_cont(0.5) WITHIN GROUP (ORDER BY price)', 'aggregate:percentile_cont'],
  ['sum(x) over ()', 'window:sum'],
  ['row_number() OVER (ORDER BY id)', 'window:row_number'],
  ['lag(qty)', 'window:lag'],
  ['unnest(tags)', 'set-returning:unnest'],
  ['generate_series(1, qty)', 'set-returning:generate_series'],
  // operators, type modifiers and node types off the allowlist
  ['qty OPERATOR(myschema.+) 1', 'operator:myschema.+'],
  ['qty::numeric(qty)', 'type-modifier'],
  ['xmlelement(name foo)', 'node:XmlExpr'],
  ['email IS DOCUMENT', 'node:XmlExpr'],
  ["json_object('a': 1)", 'node:JsonObjectConstructor'],
  ['grouping(id)', 'node:GroupingFunc'],
  ['default', 'node:SetToDefault'],
  ['merge_action()', 'node:MergeSupportFunc'],
  ["lower(a => 'x')", 'node:NamedArgExpr'],
  // result size: amplifiers need constant parameters within bounds
  ['repeat(name, 200000000)', 'result-size:repeat'],
  ['repeat(name, 1001)', 'result-size:repeat'],
  ['repeat(name, qty)', 'result-size:repeat'],
  ['repeat(name, 2 + 3)', 'result-size:repeat'],
  ['repeat(name, 20000000000)', 'result-size:repeat'],
  ['lpad(name, 10001)', 'result-size:lpad'],
  ["rpad(name, length(email), 'x')", 'result-size:rpad'],
  ["replace(name, 'a', name)", 'result-size:replace'],
  ["regexp_replace(name, '', email, 'g')", 'result-size:regexp_replace'],
  ["array_replace(tags, 'a', name)", 'result-size:array_replace'],
  ['regexp_match(name, email)', 'result-size:regexp_match'],
  ['concat_ws(name, email, code)', 'result-size:concat_ws'],
  ['concat_ws(name, VARIADIC tags)', 'result-size:concat_ws'],
  ['repeat(repeat(name, 1000), 1000)', 'result-size'],
  ["repeat(repeat('ab', 1000), 1000)", 'result-size'],
  [Array.from({ length: 11 }, () => 'lpad(name, 10000)').join(' || '), 'result-size'],
  // size limits
  ['x'.repeat(MAX_MAPPING_EXPRESSION_LENGTH + 1), 'too-long'],
  [`${'1+'.repeat(300)}1`, 'too-deep'],
];

function rejection(result: MappingExpressionResult): { construct: string; message: string } {
  if (result.ok) throw new Error(`expected a rejection, got columns ${JSON.stringify(result.columns)}`);
  return result;
}

describe('validateMappingExpression', () => {
  it.each(ACCEPTED)('accepts %s', (expr, columns) => {
    expect(validateMappingExpression(expr)).toEqual({ ok: true, columns });
  });

  it.each(REJECTED)('rejects %s as %s', (expr, construct) => {
    const result = rejection(validateMappingExpression(expr));
    expect(result.construct).toBe(construct);
    expect(result.message.length).toBeGreaterThan(10);
  });

  it("reports the parser's message and the position within the expression", () => {
    expect(validateMappingExpression('1 + )')).toEqual({
      ok: false,
      construct: 'parse-error',
      message: 'the expression does not parse: syntax error at or near ")" at character 5 of the expression',
    });
    expect(rejection(validateMappingExpression('lower(email')).message).toBe(
      'the expression does not parse: syntax error at the end of the expression',
    );
    expect(rejection(validateMappingExpression("'unterminated")).message).toMatch(/unterminated quoted string .* at character 1 of/);
  });

  it('says why an amplifying call is refused, with its bound', () => {
    expect(rejection(validateMappingExpression('repeat(name, 200000000)')).message).toBe(
      'repeat() needs an integer constant count from 0 to 1,000, so the result size is bounded',
    );
    expect(rejection(validateMappingExpression("replace(name, 'a', name)")).message).toMatch(/^replace\(\) needs a constant replacement/);
    expect(rejection(validateMappingExpression('repeat(repeat(name, 1000), 1000)')).message).toMatch(/1,000,000 times the size of the source values it reads; at most 10,000/);
  });

  it('reports the types it names, string literals and the size bound', () => {
    expect(analyzeMappingExpression("(email::public.evil)::text[] || 'x'")).toEqual({
      ok: true,
      columns: ['email'],
      typeNames: [
        { names: ['text'], arrayDimensions: 1 },
        { names: ['public', 'evil'], arrayDimensions: 0 },
      ],
      hasStringLiteral: true,
      size: { growth: 4, constant: 7 },
    });
    expect(analyzeMappingExpression('id::int')).toMatchObject({ typeNames: [{ names: ['pg_catalog', 'int4'], arrayDimensions: 0 }], hasStringLiteral: false });
    expect(analyzeMappingExpression('repeat(name, 3)')).toMatchObject({ size: { growth: 3, constant: 0 } });
  });

  it('names the function in the message', () => {
    expect(rejection(validateMappingExpression('now()')).message).toMatch(/^now\(\) is not allowed: it is volatile/);
    expect(rejection(validateMappingExpression('my_func(id)')).message).toBe('my_func() is not on the allowlist of immutable functions');
  });

  it('keeps working after input that overflows the parser', () => {
    // ~30,000 characters of nesting overflow the WASM parser's stack; the length limit stops it first.
    expect(rejection(validateMappingExpression(`${'1+'.repeat(20_000)}1`)).construct).toBe('too-long');
    expect(rejection(validateMappingExpression(`${'1+'.repeat(4_999)}1`)).construct).toBe('too-deep');
    expect(validateMappingExpression('lower(email)')).toEqual({ ok: true, columns: ['email'] });
  });

  it('allows every allowlisted function by name, bare or pg_catalog-qualified', () => {
    for (const name of MAPPING_FUNCTIONS) {
      const args = name === 'timezone' ? "'UTC', col" : 'col';
      // POSITION is a keyword: unqualified, it only has the `position(a IN b)` form.
      const bare = name === 'position' ? "position('a' IN col)" : `${name}(${args})`;
      expect(validateMappingExpression(bare), name).toEqual({ ok: true, columns: ['col'] });
      expect(validateMappingExpression(`pg_catalog.${name}(${args})`), name).toEqual({ ok: true, columns: ['col'] });
    }
  });

  it('throws until the parser is loaded', async () => {
    vi.resetModules();
    const fresh = await import('./mapping-validator.js');
    expect(() => fresh.validateMappingExpression('id')).toThrow(/loadSqlParser/);
    await Promise.all([fresh.loadSqlParser(), fresh.loadSqlParser()]);
    expect(fresh.validateMappingExpression('id')).toEqual({ ok: true, columns: ['id'] });
  });
});

describe('validateMapping', () => {
  const source = new Set(['id', 'total_cents', 'status_code', 'email', 'Name']);

  it('returns no problem for a good mapping', () => {
    const mapping = {
      id: 'id',
      subtotal_cents: '(total_cents * 0.92)::bigint',
      status: "CASE status_code WHEN 0 THEN 'placed' WHEN 1 THEN 'paid' ELSE 'other' END",
      email: 'lower(email)',
      name: '"Name"',
    };
    expect(validateMapping(mapping, source)).toEqual([]);
  });

  it('reports every refused expression under mapping.<target>, naming the construct', () => {
    const problems = validateMapping({ id: 'id', created: 'now()', total: '(select 1)', n: 'count(*)' }, source);
    expect(problems.map((p) => p.field)).toEqual(['mapping.created', 'mapping.total', 'mapping.n']);
    expect(problems[0]?.problem).toMatch(/^now\(\) is not allowed: .* \[function:now\]$/);
    expect(problems[1]?.problem).toMatch(/\[subquery\]$/);
    expect(problems[2]?.problem).toMatch(/\[aggregate:count\]$/);
  });

  it('reports each column the source table does not have', () => {
    expect(validateMapping({ mail: 'lower(e_mail)', name: 'Name || nick', id: 'id' }, source)).toEqual([
      { field: 'mapping.mail', problem: 'reads column "e_mail", which the source table does not have' },
      { field: 'mapping.name', problem: 'reads column "name", which the source table does not have' },
      { field: 'mapping.name', problem: 'reads column "nick", which the source table does not have' },
    ]);
  });

  it('skips the column check without source columns', () => {
    expect(validateMapping({ a: 'anything_at_all + 1', b: 'x.y' })).toEqual([
      { field: 'mapping.b', problem: 'x.y is not allowed: refer to source columns by their bare name [qualified-column:x.y]' },
    ]);
  });
});

describe('validateMappingExpression properties', () => {
  function wellFormed(result: MappingExpressionResult): boolean {
    if (result.ok) return result.columns.every((c) => typeof c === 'string' && c.length > 0) && new Set(result.columns).size === result.columns.length;
    return /^[a-z-]+(:.+)?$/.test(result.construct) && result.message.length > 0;
  }

  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 120 }), (expr) => wellFormed(validateMappingExpression(expr))),
      { numRuns: 2_000 },
    );
  });

  const TOKENS = [
    'id', 'qty', 'o.id', '"Q"', '1', "'a'", 'NULL', '+', '*', '||', '=', '(', ')', ',', ';', '::int', '[1]',
    'lower(', 'now()', 'count(*)', 'CASE', 'WHEN', 'THEN', 'ELSE', 'END', 'AND', 'NOT', 'IN', 'IS',
    'select', 'from', 'where', 'delete', 'drop table x', '--', '/*', '*/', '$1', 'over ()', 'AS', 'into',
    'union', '\n',
  ];

  it('never throws on SQL-shaped token soup, and what it accepts is safe to embed', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 14 }), (tokens) => {
        const expr = tokens.join(' ');
        const result = validateMappingExpression(expr);
        if (!wellFormed(result)) return false;
        if (!result.ok) return true;
        // An accepted expression stays one expression when generated SQL wraps it in parentheses.
        const statements = parseSync(`SELECT (${expr}) AS "v" FROM "src" WHERE true`).stmts;
        return statements?.length === 1 && !/;|--|\/\*|\bselect\b|\$1/i.test(expr.replace(/'[^']*'/g, ''));
      }),
      { numRuns: 3_000 },
    );
  });

  type Generated = { expr: string; columns: string[] };
  const columnNames = ['id', 'qty', 'price', 'email', 'name'] as const;
  const { node } = fc.letrec<{ node: Generated }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom(...columnNames).map((c): Generated => ({ expr: c, columns: [c] })),
      fc.constantFrom('1', "'x'", 'NULL', 'true', '2.5').map((c): Generated => ({ expr: c, columns: [] })),
      fc.tuple(tie('node'), fc.constantFrom('+', '*', '||', '=', '<>', 'AND', 'OR'), tie('node')).map(([a, op, b]): Generated => ({ expr: `(${a.expr} ${op} ${b.expr})`, columns: [...a.columns, ...b.columns] })),
      fc.tuple(fc.constantFrom('lower', 'upper', 'abs', 'md5', 'pg_catalog.btrim', 'to_jsonb'), tie('node')).map(([f, a]): Generated => ({ expr: `${f}(${a.expr})`, columns: a.columns })),
      fc.tuple(tie('node'), tie('node'), tie('node')).map(([c, t, e]): Generated => ({ expr: `CASE WHEN ${c.expr} THEN ${t.expr} ELSE ${e.expr} END`, columns: [...c.columns, ...t.columns, ...e.columns] })),
      fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((xs): Generated => ({ expr: `coalesce(${xs.map((x) => x.expr).join(', ')})`, columns: xs.flatMap((x) => x.columns) })),
      fc.tuple(tie('node'), fc.constantFrom('int', 'text', 'numeric(10,2)', 'bigint[]')).map(([a, t]): Generated => ({ expr: `(${a.expr})::${t}`, columns: a.columns })),
      tie('node').map((a): Generated => ({ expr: `(${a.expr}) IS NOT NULL`, columns: a.columns })),
    ),
  }));

  it('accepts every expression built from allowed constructs, reporting exactly its columns', () => {
    fc.assert(
      fc.property(node, ({ expr, columns }) => {
        expect(validateMappingExpression(expr)).toEqual({ ok: true, columns: [...new Set(columns)] });
      }),
      { numRuns: 1_000 },
    );
  });
});
