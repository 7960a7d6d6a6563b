import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { act, call, createMigration, snapshot, startHarness, type Harness } from './support/harness.js';

// Issue 11, point 1: every smuggling vector is refused with 422 INVALID_SPEC at start, naming the
// mapping entry, and nothing runs on the datasource (the attack functions bump attack_log.n).

let h: Harness;

const ATTACKS = `
  create table attack_log (n int not null);
  insert into attack_log values (0);
  -- A sequence too: nextval survives the rollback of the transaction it ran in, so even code run
  -- inside Tideway's rolled-back binding transaction would leave a trace.
  create sequence attack_seq;
  create function public.bump(text) returns boolean language plpgsql as $$
    begin update public.attack_log set n = n + 1; perform nextval('public.attack_seq'); return true; end $$;
  create function public.lower(bigint) returns text language plpgsql as $$ begin perform public.bump('lower'); return 'x'; end $$;
  create function public.abs(text) returns text language plpgsql as $$ begin perform public.bump('abs'); return 'x'; end $$;
  create function public.plus_text(text, text) returns text language plpgsql as $$ begin perform public.bump('+'); return 'x'; end $$;
  create operator public.+ (leftarg = text, rightarg = text, function = public.plus_text);
  create function public.hash_op(bigint, bigint) returns bigint language plpgsql as $$ begin perform public.bump('###'); return 1; end $$;
  create operator public.### (leftarg = bigint, rightarg = bigint, function = public.hash_op);
  create domain public.evil as text check (public.bump(value));
  create type public.mytype as (v text);
  create function public.mk(text) returns public.mytype language plpgsql as $$ begin perform public.bump('mk'); return row($1); end $$;
  create cast (text as public.mytype) with function public.mk(text) as assignment;
  create table people (id bigint primary key, name text, email text);
  create table people_v2 (id bigint primary key, name text, email text, total bigint, m public.mytype, e public.evil);
  insert into people select g, 'n' || g, 'P' || g || '@Example.com' from generate_series(1, 20) g;
`;

const peopleSpec = (name: string, mapping: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  name,
  source: { datasource: 'main', table: 'people', key: 'id' },
  target: { datasource: 'main', table: 'people_v2', key: 'id' },
  mapping: { id: 'id', ...mapping },
  syncMode: 'trigger',
  // These vectors are about binding; the way back has tests of its own (way-back.int.test.ts).
  rollbackAfterWriteCutover: false,
  ...extra,
});

/** How often an attack function ran: committed bumps of attack_log plus every nextval, committed or not. */
async function counter(): Promise<number> {
  const r = await h.user.query<{ n: number }>(`select (select n from attack_log) + (select case when is_called then last_value else 0 end from attack_seq)::int as n`);
  return r.rows[0]?.n ?? -1;
}

let n = 0;

/** Creates the migration (the text-level check passes), starts it, and returns the 422's problems. */
async function refusedAtStart(mapping: Record<string, string>, extra: Record<string, unknown> = {}): Promise<{ field: string; problem: string }[]> {
  const created = await call(h.app, { method: 'POST', url: '/v1/migrations', body: peopleSpec(`vector-${n++}`, mapping, extra) });
  expect(created.status, created.text).toBe(201);
  const id = created.body.id as string;
  const before = await snapshot(h.orch);
  const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/start` });
  expect(res.status, res.text).toBe(422);
  expect(res.body.error.code).toBe('INVALID_SPEC');
  // Nothing changed: still a draft, no event, and nothing ran on the datasource.
  expect(await snapshot(h.orch)).toEqual(before);
  expect(await counter()).toBe(0);
  return res.body.error.details.problems as { field: string; problem: string }[];
}

beforeAll(async () => {
  h = await startHarness('binding');
  await h.user.query(ATTACKS);
});

afterAll(async () => {
  await h?.close();
});

beforeEach(async () => {
  await h.user.query('update attack_log set n = 0; alter sequence attack_seq restart');
});

describe('start binds every expression against the live catalog', () => {
  it('lower(id) with public.lower(bigint): 422, PostgreSQL says it does not bind', async () => {
    expect(await refusedAtStart({ email: 'lower(id)' })).toEqual([
      { field: 'mapping.email', problem: expect.stringMatching(/^does not bind on datasource "main": function lower\(bigint\) does not exist at character 1 of the expression/) },
    ]);
  });

  it('abs(name) with public.abs(text)', async () => {
    expect(await refusedAtStart({ name: 'abs(name)' })).toEqual([{ field: 'mapping.name', problem: expect.stringMatching(/function abs\(text\) does not exist .*\[bind-error\]$/) }]);
  });

  it('name + name with an operator public.+(text, text)', async () => {
    expect(await refusedAtStart({ name: 'name + name' })).toEqual([{ field: 'mapping.name', problem: expect.stringMatching(/operator does not exist: text \+ text .*\[bind-error\]$/) }]);
  });

  it('a custom operator (id ### id)', async () => {
    expect(await refusedAtStart({ total: '(id ### id)' })).toEqual([{ field: 'mapping.total', problem: expect.stringMatching(/operator does not exist: bigint ### bigint .*\[bind-error\]$/) }]);
  });

  it('email::public.evil, a domain whose CHECK calls a function', async () => {
    expect(await refusedAtStart({ email: 'email::public.evil' })).toEqual([
      { field: 'mapping.email', problem: 'the expression casts to type public.evil, which is a domain whose constraint evil_check uses function public.bump(text), which is not built in [bound:type]' },
    ]);
  });

  it('a user-defined cast email::public.mytype', async () => {
    expect(await refusedAtStart({ m: 'email::public.mytype' })).toEqual([
      { field: 'mapping.m', problem: expect.stringMatching(/^the expression binds to function public\.mk\(text\) \(the cast from text to public\.mytype\), which is not a built-in pg_catalog function.*\[bound:function\]$/) },
    ]);
  });

  it('the implicit assignment cast into a target column of such a type', async () => {
    expect(await refusedAtStart({ m: 'email', e: 'name' })).toEqual([
      { field: 'mapping.e', problem: expect.stringMatching(/^the expression binds to type public\.evil, which is a domain whose constraint evil_check uses function public\.bump\(text\).*\[bound:type\]$/) },
      { field: 'mapping.m', problem: expect.stringMatching(/^the expression binds to function public\.mk\(text\).*\[bound:function\]$/) },
    ]);
  });

  it('repeat(name, 200000000): refused at create already, and at start for a draft stored before the check', async () => {
    const before = await snapshot(h.orch);
    const created = await call(h.app, { method: 'POST', url: '/v1/migrations', body: peopleSpec(`vector-${n++}`, { name: 'repeat(name, 200000000)' }) });
    expect(created.status).toBe(422);
    expect(created.body.error.details.problems).toEqual([
      { field: 'mapping.name', problem: 'repeat() needs an integer constant count from 0 to 1,000, so the result size is bounded [result-size:repeat]' },
    ]);
    expect(await snapshot(h.orch)).toEqual(before);

    const storedName = `stored-${n++}`;
    const m = await createMigration(h.app, storedName, peopleSpec(storedName, { name: 'name' }));
    await h.orch.query(`update migrations set spec = jsonb_set(spec, '{mapping,name}', '"repeat(name, 200000000)"') where id = $1`, [m.id]);
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start` });
    expect(res.status).toBe(422);
    expect(res.body.error.details.problems).toEqual([{ field: 'mapping.name', problem: expect.stringMatching(/\[result-size:repeat\]$/) }]);
    expect(await counter()).toBe(0);
  });

  it('keeps the text-level refusals at create', async () => {
    for (const [expr, construct] of [
      ['public.lower(email)', 'function:public.lower'],
      ['email OPERATOR(public.+) email', 'operator:public.+'],
      ['pg_sleep(1)::text', 'function:pg_sleep'],
      ['(select email from people limit 1)', 'subquery'],
    ] as const) {
      const res = await call(h.app, { method: 'POST', url: '/v1/migrations', body: peopleSpec(`text-${n++}`, { email: expr }) });
      expect(res.status, expr).toBe(422);
      expect(res.body.error.details.problems, expr).toEqual([{ field: 'mapping.email', problem: expect.stringContaining(`[${construct}]`) }]);
    }
    expect(await counter()).toBe(0);
  });

  it('reports every problem at once, reverseMapping bound the other way round', async () => {
    const problems = await refusedAtStart(
      { email: 'lower(id)', name: 'abs(name)' },
      { reverseMapping: { id: 'id', email: 'email::public.evil', name: 'name' } },
    );
    expect(problems.map((p) => p.field)).toEqual(['mapping.email', 'mapping.name', 'reverseMapping.email']);
  });

  it('starts a migration whose expressions bind to built-ins only', async () => {
    const goodName = `good-${n++}`;
    const m = await createMigration(h.app, goodName, peopleSpec(goodName, { email: 'lower(email)', name: "coalesce(name, '') || '!'" }));
    expect((await act(h.app, m.id, 'start')).phase).toBe('prepare');
    expect(await counter()).toBe(0);
  });
});
