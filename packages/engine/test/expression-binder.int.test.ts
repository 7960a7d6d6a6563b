import { DependencyUnavailableError, resolveSpec, type MigrationSpec, type MigrationSpecInput, type TableRef } from '@tideway/core';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@tideway/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DatasourceRegistry, describeSignatureChange, ExpressionBinder } from '../src/index.js';

// The expression binder on real PostgreSQL: every smuggling vector of issue 11 is refused, and the
// attack functions — which bump attack_log.n whenever they run — never run.

let main: TestDatabase;
let other: TestDatabase;
let registry: DatasourceRegistry;
let binder: ExpressionBinder;

/** Attack objects: every one of them bumps public.attack_log when it runs. */
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
  create type public.comp_evil as (e public.evil);
  create type public.mood as enum ('happy', 'sad');
  create domain public.positive as bigint check (value > 0);
  create type public.pair as (a int, b text);
  create function public.diff8(int8, int8) returns float8 language sql immutable as $$ select ($1 - $2)::float8 $$;
  create type public.r8 as range (subtype = int8);
  create type public.r8d as range (subtype = int8, subtype_diff = public.diff8);
`;

const TABLES = `
  create type public.shade as enum ('light', 'dark');
  create table users (id bigint primary key, name text, email text not null, total int, mood public.mood, c public.comp_evil, ev public.evil, sh public.shade);
  create table users_v2 (id bigint primary key, name text, email text, total_cents bigint, m public.mytype, e public.evil,
                         ce public.comp_evil, mood public.mood, p public.pair, pos public.positive, label text);
  create table evil_keys (id public.evil primary key, v int);
  create table plain_keys (id text primary key, v int);
`;

const users: TableRef = { datasource: 'main', schema: 'public', table: 'users', key: ['id'] };
const usersV2: TableRef = { datasource: 'main', schema: 'public', table: 'users_v2', key: ['id'] };
const remote: TableRef = { datasource: 'other', schema: 'public', table: 'users_remote', key: ['id'] };

/** How often an attack function ran: committed bumps of attack_log plus every nextval, committed or not. */
async function counter(db: TestDatabase = main): Promise<number> {
  const r = await db.query<{ n: number }>(`select (select n from attack_log) + (select case when is_called then last_value else 0 end from attack_seq)::int as n`);
  return r.rows[0]?.n ?? -1;
}

const spec = (overrides: Partial<MigrationSpecInput> = {}): MigrationSpec =>
  resolveSpec({
    name: 'bind',
    source: { datasource: 'main', table: 'users', key: 'id' },
    target: { datasource: 'main', table: 'users_v2', key: 'id' },
    mapping: { id: 'id', email: 'lower(email)' },
    syncMode: 'trigger',
    ...overrides,
  });

beforeAll(async () => {
  [main, other] = await Promise.all([createTestDatabase('bind_main'), createTestDatabase('bind_other')]);
  await main.query(ATTACKS + TABLES);
  await main.query(`insert into users (id, name, email, total) select g, 'n' || g, 'User' || g || '@Example.com', g from generate_series(1, 50) g`);
  await other.query(ATTACKS);
  await other.query(`create table users_remote (id bigint primary key, email text, mood text, e public.evil, total_cents bigint, m public.mytype)`);
  registry = new DatasourceRegistry({ main: main.url, other: other.url });
  binder = new ExpressionBinder(registry);
});

afterAll(async () => {
  await registry?.close();
  await Promise.all([main?.drop(), other?.drop()]);
});

beforeEach(async () => {
  await main.query('update attack_log set n = 0; alter sequence attack_seq restart');
  await other.query('update attack_log set n = 0; alter sequence attack_seq restart');
});

/** Binds one `users_v2.<column> = <expr>` entry and returns its problems' texts. */
async function refusedWith(column: string, expr: string, from = users, into = usersV2): Promise<string[]> {
  const binding = await binder.bindMapping({ [column]: expr }, from, into);
  expect(binding.bound).toEqual([]);
  expect(binding.problems.map((p) => p.field)).toEqual(binding.problems.map(() => `mapping.${column}`));
  return binding.problems.map((p) => p.problem);
}

describe('smuggling vectors are refused and nothing runs', () => {
  it('lower(id) with only public.lower(bigint): invisible under the fixed search_path, so it does not bind', async () => {
    const [problem, ...rest] = await refusedWith('email', 'lower(id)');
    expect(rest).toEqual([]);
    expect(problem).toMatch(/^does not bind on datasource "main": function lower\(bigint\) does not exist at character 1 of the expression .*\[bind-error\]$/);
    expect(await counter()).toBe(0);
  });

  it('abs(name) with public.abs(text)', async () => {
    expect(await refusedWith('name', 'abs(name)')).toEqual([expect.stringMatching(/function abs\(text\) does not exist at character 1 .*\[bind-error\]$/)]);
    expect(await counter()).toBe(0);
  });

  it('name + name with an operator public.+(text, text)', async () => {
    expect(await refusedWith('name', 'name + name')).toEqual([expect.stringMatching(/operator does not exist: text \+ text at character 6 .*\[bind-error\]$/)]);
    expect(await counter()).toBe(0);
  });

  it('a custom operator (id ### id)', async () => {
    expect(await refusedWith('total_cents', '(id ### id)')).toEqual([expect.stringMatching(/operator does not exist: bigint ### bigint .*\[bind-error\]$/)]);
    expect(await counter()).toBe(0);
  });

  it('email::public.evil, a domain whose CHECK calls public.bump(text)', async () => {
    expect(await refusedWith('email', 'email::public.evil')).toEqual([
      'the expression casts to type public.evil, which is a domain whose constraint evil_check uses function public.bump(text), which is not built in [bound:type]',
    ]);
    expect(await counter()).toBe(0);
  });

  it('a user-defined cast email::public.mytype (CREATE CAST ... WITH FUNCTION public.mk(text))', async () => {
    expect(await refusedWith('m', 'email::public.mytype')).toEqual([
      'the expression binds to function public.mk(text) (the cast from text to public.mytype), which is not a built-in pg_catalog function: only built-in functions on the allowlist may run [bound:function]',
    ]);
    expect(await counter()).toBe(0);
  });

  it('the implicit assignment cast into a target column of such a type', async () => {
    expect(await refusedWith('m', 'email')).toEqual([expect.stringMatching(/^the expression binds to function public\.mk\(text\) \(the cast from text to public\.mytype\).*\[bound:function\]$/)]);
    expect(await refusedWith('e', 'email')).toEqual([
      'the expression binds to type public.evil, which is a domain whose constraint evil_check uses function public.bump(text), which is not built in [bound:type]',
    ]);
    expect(await counter()).toBe(0);
  });

  it('repeat(name, 200000000)', async () => {
    expect(await refusedWith('name', 'repeat(name, 200000000)')).toEqual(['repeat() needs an integer constant count from 0 to 1,000, so the result size is bounded [result-size:repeat]']);
    expect(await counter()).toBe(0);
  });

  it('a literal of a composite with an evil field, which PostgreSQL would read while analysing', async () => {
    // Analysing '(x)'::public.comp_evil runs record_in → domain_in → the CHECK, and so would a bare
    // literal compared with (or written to) a column of that type: refused before PostgreSQL sees it.
    const cast = await refusedWith('label', "('(x)'::public.comp_evil)::text");
    const compared = await refusedWith('label', "(c = '(x)')::text");
    const written = await refusedWith('ce', "'(x)'");
    expect(await counter()).toBe(0);
    expect(cast).toEqual([
      expect.stringMatching(/^the expression casts to type public\.comp_evil, which has field e of type public\.evil, which is a domain whose constraint evil_check uses function public\.bump\(text\)/),
    ]);
    expect(compared).toEqual([expect.stringMatching(/has a string literal and reads column c of type public\.comp_evil, which has field e/)]);
    expect(written).toEqual([expect.stringMatching(/^column ce of public\.users_v2 has type public\.comp_evil, which has field e/)]);
  });

  it('public.lower(text) shadowing through the database search_path does not capture lower(email)', async () => {
    await main.query(`create function public.lower(text) returns text language plpgsql as $$ begin perform public.bump('shadow'); return 'PWNED'; end $$`);
    await main.query(`alter database "${main.name}" set search_path = public, pg_catalog`);
    try {
      const shadowed = new DatasourceRegistry({ main: main.url });
      try {
        const binding = await new ExpressionBinder(shadowed).bindMapping({ email: 'lower(email)' }, users, usersV2);
        expect(binding.problems).toEqual([]);
        expect(binding.bound).toEqual([{ column: 'email', reads: ['email'], resultType: 'text', resultTypeOid: 25 }]);
        // The pool's own sessions run with the fixed search_path too.
        const pool = shadowed.pool('main');
        expect((await pool.query<{ search_path: string }>('show search_path')).rows[0]?.search_path).toBe('pg_catalog,pg_temp');
        expect((await pool.query<{ v: string }>(`select lower('ABC') as v`)).rows[0]?.v).toBe('abc');
      } finally {
        await shadowed.close();
      }
      expect(await counter()).toBe(0);
    } finally {
      await main.query(`alter database "${main.name}" reset search_path`);
      await main.query('drop function public.lower(text)');
    }
  });

  it('keeps the text-level refusals', async () => {
    expect(await refusedWith('label', 'public.lower(email)')).toEqual([expect.stringMatching(/\[function:public\.lower\]$/)]);
    expect(await refusedWith('label', 'email OPERATOR(public.+) email')).toEqual([expect.stringMatching(/\[operator:public\.\+\]$/)]);
    expect(await refusedWith('label', '(select 1)::text')).toEqual([expect.stringMatching(/\[subquery\]$/)]);
    expect(await refusedWith('label', 'pg_sleep(1)::text')).toEqual([expect.stringMatching(/\[function:pg_sleep\]$/)]);
    expect(await counter()).toBe(0);
  });

  it('reports every refused entry of a mapping at once, and binds the others', async () => {
    const binding = await binder.bindMapping({ id: 'id', email: 'lower(id)', e: 'email', name: 'repeat(name, qty)', total_cents: 'total * 100' }, users, usersV2);
    expect(binding.problems.map((p) => p.field)).toEqual(['mapping.e', 'mapping.email', 'mapping.name']);
    expect(binding.bound.map((b) => b.column)).toEqual(['id', 'total_cents']);
    expect(await counter()).toBe(0);
  });
});

describe('what is allowed, and what it binds to', () => {
  it('reports the columns read and the result type of each entry', async () => {
    const binding = await binder.bindMapping(
      {
        id: 'id',
        email: 'lower(email)',
        total_cents: '(total * 100)::bigint',
        mood: "'happy'",
        p: 'ROW(total, name)::public.pair',
        pos: 'id::public.positive',
        label: "coalesce(name, '') || ':' || mood::text",
        name: "CASE WHEN mood = 'sad' THEN 'S' ELSE upper(name) END",
      },
      users,
      usersV2,
    );
    expect(binding.problems).toEqual([]);
    expect(binding.bound).toEqual([
      { column: 'email', reads: ['email'], resultType: 'text', resultTypeOid: 25 },
      { column: 'id', reads: ['id'], resultType: 'bigint', resultTypeOid: 20 },
      { column: 'label', reads: ['name', 'mood'], resultType: 'text', resultTypeOid: 25 },
      { column: 'mood', reads: [], resultType: 'text', resultTypeOid: 25 },
      { column: 'name', reads: ['name', 'mood'], resultType: 'text', resultTypeOid: 25 },
      { column: 'p', reads: ['name', 'total'], resultType: 'public.pair', resultTypeOid: expect.any(Number) },
      { column: 'pos', reads: ['id'], resultType: 'public.positive', resultTypeOid: expect.any(Number) },
      { column: 'total_cents', reads: ['total'], resultType: 'bigint', resultTypeOid: 20 },
    ]);
    expect(binding.from?.oid).toBeGreaterThan(0);
    expect(binding.into?.columns.find((c) => c.name === 'email')?.uses).toEqual(['written']);
  });

  it('reports a missing column, a missing target column and a type that needs its schema', async () => {
    const binding = await binder.bindMapping({ email: 'lower(e_mail)', nope: 'id', label: 'id::mood' }, users, usersV2);
    expect(binding.problems).toEqual([
      { field: 'mapping.email', problem: 'reads column "e_mail", which the source table does not have' },
      { field: 'mapping.label', problem: expect.stringMatching(/^does not bind on datasource "main": type "mood" does not exist at character 5 of the expression; a type outside pg_catalog must be named with its schema/) },
      { field: 'mapping.nope', problem: 'column "nope" does not exist in target table public.users_v2' },
    ]);
  });

  it('refuses an anonymous row for a composite column, as the generated INSERT … SELECT would', async () => {
    expect(await refusedWith('p', 'ROW(total, name)')).toEqual([expect.stringMatching(/cannot cast type record to public\.pair .*\[bind-error\]$/)]);
  });

  it('allows a range type without functions of its own, and refuses one with a user subtype_diff', async () => {
    const safe = await binder.bindMapping({ label: "('[1,2)'::public.r8)::text || '[1,2)'::int8range::text" }, users, usersV2);
    expect(safe.problems).toEqual([]);
    expect(await refusedWith('label', "('[1,2)'::public.r8d)::text")).toEqual([
      'the expression casts to type public.r8d, which uses function public.diff8(bigint,bigint), which is not built in [bound:type]',
    ]);
  });
});

describe('across datasources', () => {
  it('binds the expression on the source and the assignment on the target', async () => {
    const binding = await binder.bindMapping({ id: 'id', email: 'lower(email)', total_cents: 'total * 100' }, users, remote);
    expect(binding.problems).toEqual([]);
    expect(binding.bound.map((b) => [b.column, b.resultType])).toEqual([
      ['email', 'text'],
      ['id', 'bigint'],
      ['total_cents', 'integer'],
    ]);
  });

  it('says when the result type does not exist on the target datasource', async () => {
    expect(await refusedWith('mood', 'sh', users, remote)).toEqual([
      'the result type public.shade does not exist on datasource "other", where column mood is written [bound:missing-type]',
    ]);
  });

  it('refuses a target column whose type runs user code on input, and a user cast on the target', async () => {
    expect(await refusedWith('e', 'email', users, remote)).toEqual([expect.stringMatching(/^column e of public\.users_remote has type public\.evil, which is a domain whose constraint evil_check uses function public\.bump\(text\)/)]);
    expect(await refusedWith('m', 'email', users, remote)).toEqual([
      'writing text to column m binds to function public.mk(text) (the cast from text to public.mytype), which is not a built-in pg_catalog function: only built-in functions on the allowlist may run [bound:function]',
    ]);
    expect(await counter(main)).toBe(0);
    expect(await counter(other)).toBe(0);
  });
});

describe('keys', () => {
  it('refuses a key whose type runs user code when Tideway casts key values from text', async () => {
    const binding = await binder.bindSpec(spec({ source: { datasource: 'main', table: 'evil_keys', key: 'id' }, target: { datasource: 'main', table: 'plain_keys', key: 'id' }, mapping: { id: 'id::text', v: 'v' } }));
    expect(binding.problems).toEqual([
      // The way back (derived: id ← id) would write the domain too.
      { field: 'reverseMapping.id', problem: expect.stringMatching(/^the expression binds to type public\.evil, which is a domain whose constraint evil_check uses function public\.bump\(text\)/) },
      { field: 'source.key', problem: expect.stringMatching(/^key column id has type public\.evil, which is a domain whose constraint evil_check uses function public\.bump\(text\).*Tideway casts key values from text \[bound:type\]$/) },
    ]);
    expect(await counter()).toBe(0);
  });
});

describe('bindSpec', () => {
  it('binds mapping and reverseMapping (the other way round) with every problem at once', async () => {
    const binding = await binder.bindSpec(
      spec({
        mapping: { id: 'id', email: 'lower(email)', total_cents: 'total * 100', name: 'abs(name)' },
        reverseMapping: { id: 'id', email: 'email', total: '(total_cents / 100)::int', name: 'name + name', ev: 'email' },
      }),
    );
    expect(binding.problems.map((p) => `${p.field} ${p.problem.slice(-20)}`)).toEqual([
      expect.stringMatching(/^mapping.name .*\[bind-error\]$/),
      expect.stringMatching(/^reverseMapping.ev .*\[bound:type\]$/),
      expect.stringMatching(/^reverseMapping.name .*\[bind-error\]$/),
    ]);
    expect(binding.mapping.map((b) => b.column)).toEqual(['email', 'id', 'total_cents']);
    expect(binding.reverseMapping?.map((b) => [b.column, b.reads, b.resultType])).toEqual([
      ['email', ['email'], 'text'],
      ['id', ['id'], 'bigint'],
      ['total', ['total_cents'], 'integer'],
    ]);
    expect(await counter()).toBe(0);
  });

  it('returns the signature as bound, which catalogSignature reads the same while nothing changes', async () => {
    const s = spec({ mapping: { id: 'id', email: 'lower(email)', total_cents: 'total * 100', name: 'name' } });
    const bound = await binder.bindSpec(s);
    expect(bound.problems).toEqual([]);
    const source = bound.signature.source;
    expect(source?.columns.map((c) => [c.attnum, c.name, c.type, c.notNull, c.uses])).toEqual([
      // The derived way back (plain copies) writes id and name.
      [1, 'id', 'bigint', true, ['read', 'written', 'key']],
      [2, 'name', 'text', false, ['read', 'written']],
      [3, 'email', 'text', true, ['read']],
      [4, 'total', 'integer', false, ['read']],
      [5, 'mood', 'public.mood', false, []],
      [6, 'c', 'public.comp_evil', false, []],
      [7, 'ev', 'public.evil', false, []],
      [8, 'sh', 'public.shade', false, []],
    ]);
    expect(await binder.catalogSignature(s)).toEqual(bound.signature);
    expect(describeSignatureChange(bound.signature, await binder.catalogSignature(s))).toEqual([]);
  });
});

describe('describeSignatureChange on real DDL', () => {
  it('names drops, renames, type and nullability changes, and a replaced table', async () => {
    await main.query(`create table orders (id bigint primary key, name text, total int, note text, extra int);
                      create table orders_v2 (id bigint primary key, name text, total_cents bigint)`);
    const s = spec({ source: { datasource: 'main', table: 'orders', key: 'id' }, target: { datasource: 'main', table: 'orders_v2', key: 'id' }, mapping: { id: 'id', name: 'name', total_cents: 'total * 100' } });
    const before = (await binder.bindSpec(s)).signature;
    await main.query(`alter table orders drop column extra; alter table orders add column more int; alter table orders alter column note type varchar(10)`);
    expect(describeSignatureChange(before, await binder.catalogSignature(s))).toEqual([]);
    await main.query(`alter table orders alter column total type bigint; alter table orders rename column name to full_name; alter table orders_v2 alter column name set not null`);
    expect(describeSignatureChange(before, await binder.catalogSignature(s))).toEqual([
      'column name of public.orders was renamed to full_name',
      'column total of public.orders changed type from integer to bigint',
      'column name of public.orders_v2 became NOT NULL',
    ]);
    await main.query(`alter table orders drop column total`);
    expect(describeSignatureChange(before, await binder.catalogSignature(s))).toContain('column total of public.orders was dropped');
    await main.query(`drop table orders_v2; create table orders_v2 (id bigint primary key, name text, total_cents bigint)`);
    expect(describeSignatureChange(before, await binder.catalogSignature(s))).toContain('table public.orders_v2 was dropped or replaced');
    await main.query(`alter table orders rename to orders_old`);
    expect(describeSignatureChange(before, await binder.catalogSignature(s))).toEqual(['table public.orders was dropped or renamed', 'table public.orders_v2 was dropped or replaced']);
  });
});

describe('a table locked by DDL', () => {
  it('answers DependencyUnavailableError after the lock timeout, leaves nothing behind, and binds once the lock is gone', async () => {
    const ddl = new pg.Client({ connectionString: main.url });
    await ddl.connect();
    const quick = new ExpressionBinder(registry, { lockTimeoutMs: 200 });
    try {
      await ddl.query('BEGIN');
      await ddl.query('LOCK TABLE users_v2 IN ACCESS EXCLUSIVE MODE');
      const t0 = Date.now();
      const error = await quick.bindSpec(spec()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyUnavailableError);
      expect((error as Error).message).toMatch(/^datasource "main" is unavailable: binding timed out waiting for a table under migration/);
      expect(Date.now() - t0).toBeLessThan(5_000);
      await ddl.query('ROLLBACK');
    } finally {
      await ddl.end();
    }
    // The pool's session was rolled back: no transaction, no temporary object, no lock left.
    const leftovers = await main.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'tideway:main' and state <> 'idle'`,
    );
    expect(leftovers.rows[0]?.n).toBe(0);
    expect((await quick.bindSpec(spec())).problems).toEqual([]);
  });
});
