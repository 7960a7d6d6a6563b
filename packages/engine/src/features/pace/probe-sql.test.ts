import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import { PROBE_SQL_FIELD, validateProbeSql } from './probe-sql.js';

beforeAll(async () => {
  await loadSqlParser();
});

describe('validateProbeSql', () => {
  it('accepts a read-only lookup, a join and an aggregate', () => {
    expect(validateProbeSql('SELECT 1 FROM public.orders WHERE id = 42')).toEqual([]);
    expect(validateProbeSql('SELECT o.id, lower(c.name) FROM public.orders o JOIN public.customers c ON c.id = o.customer_id WHERE o.id = 7')).toEqual([]);
    expect(validateProbeSql('SELECT count(*) FROM public.orders WHERE customer_id = 3')).toEqual([]);
  });

  it.each([
    ['DELETE FROM public.orders', 'must be a SELECT'],
    ['SELECT 1; DROP TABLE public.orders', 'exactly one statement'],
    ['WITH gone AS (DELETE FROM public.orders RETURNING id) SELECT count(*) FROM gone', 'DELETE'],
    ['SELECT * FROM public.orders WHERE id = 1 FOR UPDATE', 'row locks'],
    ['SELECT * INTO public.copy FROM public.orders', 'INTO'],
    ['SELECT pg_sleep(10)', 'pg_sleep'],
    ['SELECT public.lower(name) FROM public.customers', 'only built-in'],
    ['SELECT nextval(\'public.s\')', 'nextval'],
    ['SELECT dblink_exec(\'x\', \'DELETE FROM t\')', 'dblink_exec'],
    ['SELEC 1', 'does not parse'],
  ])('refuses %s', (text, why) => {
    const problems = validateProbeSql(text);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.field === PROBE_SQL_FIELD)).toBe(true);
    expect(problems.map((p) => p.problem).join(' ')).toContain(why);
  });
});
