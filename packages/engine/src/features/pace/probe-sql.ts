import type { SpecProblem } from '@tideway/core';
import { parseSync } from 'libpg-query';
import type pg from 'pg';
import { AGGREGATE_FUNCTIONS, MAPPING_FUNCTIONS } from '../mapping/mapping-functions.js';

/** The spec field a probe query lives in. */
export const PROBE_SQL_FIELD = 'throttle.latencyGuard.probeSql';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Statement node types that change data or state; none may appear anywhere in a probe (a data-modifying CTE). */
const WRITING_NODES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'CopyStmt', 'CallStmt', 'DoStmt', 'LockStmt']);

function walk(node: Json, visit: (key: string, value: Json) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, visit);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node)) {
    visit(key, value);
    walk(value, visit);
  }
}

function funcName(call: Json): string[] {
  const names = (call as { funcname?: { String?: { sval?: string } }[] }).funcname ?? [];
  return names.map((n) => n.String?.sval ?? '');
}

/**
 * Checks a custom canary probe (`throttle.latencyGuard.probeSql`) before anything runs it, with the
 * real PostgreSQL parser (libpg-query; call `loadSqlParser` first): one `SELECT` statement, without
 * `INTO`, row locks (`FOR UPDATE`/`FOR SHARE`) or data-modifying CTEs, calling only the functions a
 * mapping may call (built-ins, unqualified or `pg_catalog.`, no volatile ones such as `pg_sleep`) and
 * aggregates. The probe then runs in a read-only transaction on a connection of its own with a 2 s
 * statement timeout ({@link checkProbeSqlLive} at start binds it against the live catalog first).
 *
 * @returns every problem, each naming {@link PROBE_SQL_FIELD}; empty when the query is acceptable.
 * @example
 * ```ts
 * await loadSqlParser();
 * validateProbeSql('SELECT 1 FROM public.orders WHERE id = 42'); // []
 * validateProbeSql('SELECT pg_sleep(1)'); // [{ field: 'throttle.latencyGuard.probeSql', problem: 'calls pg_sleep(): …' }]
 * ```
 */
export function validateProbeSql(text: string): SpecProblem[] {
  const problem = (p: string): SpecProblem[] => [{ field: PROBE_SQL_FIELD, problem: p }];
  let tree: { stmts?: { stmt?: Record<string, Json> }[] };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (error) {
    return problem(`does not parse: ${error instanceof Error ? error.message : String(error)}`);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) return problem(`must be exactly one statement, found ${stmts.length}`);
  const stmt = stmts[0]?.stmt ?? {};
  const kind = Object.keys(stmt)[0] ?? 'nothing';
  if (kind !== 'SelectStmt') return problem(`must be a SELECT, found ${kind.replace(/Stmt$/, '').toUpperCase()}`);
  const problems: string[] = [];
  walk(stmt as Json, (key, value) => {
    if (WRITING_NODES.has(key)) problems.push(`contains ${key.replace(/Stmt$/, '').toUpperCase()}: a probe must not change data`);
    if (key === 'intoClause' && value !== null) problems.push('SELECT … INTO creates a table: a probe must not change data');
    if (key === 'lockingClause' && Array.isArray(value) && value.length > 0) problems.push('takes row locks (FOR UPDATE/SHARE): a probe must not block production');
    if (key === 'FuncCall') {
      const parts = funcName(value);
      const name = parts[parts.length - 1] ?? '';
      const schema = parts.length > 1 ? parts[0] : null;
      if (schema !== null && schema !== 'pg_catalog') problems.push(`calls ${parts.join('.')}(): only built-in functions may be called`);
      else if (!MAPPING_FUNCTIONS.has(name) && !AGGREGATE_FUNCTIONS.has(name)) problems.push(`calls ${name}(): not an allowed built-in function (volatile, side effects, or unknown)`);
    }
  });
  return [...new Set(problems)].map((p) => ({ field: PROBE_SQL_FIELD, problem: p }));
}

/**
 * The highest planner cost a custom probe may have (PostgreSQL cost units; an index lookup of one
 * row costs about 8, a sequential scan of a 10,000-row table about 150). A probe runs 25 times a
 * second on a datasource under load: an expensive one would itself be the load it is meant to watch.
 */
export const PROBE_MAX_PLAN_COST = 1000;

/**
 * Binds a probe against the live catalog of its datasource: `EXPLAIN (FORMAT JSON)` in a read-only
 * transaction that is rolled back (the query is planned, never run), and bounds its cost by
 * {@link PROBE_MAX_PLAN_COST}.
 * @returns the problem PostgreSQL reported (a missing table, a type error) or a plan too expensive; or none.
 */
export async function checkProbeSqlLive(client: pg.PoolClient, text: string): Promise<SpecProblem[]> {
  try {
    await client.query('BEGIN READ ONLY');
    const plan = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Total Cost': number; 'Node Type': string } }] }>(`EXPLAIN (FORMAT JSON) ${text}`);
    const root = plan.rows[0]?.['QUERY PLAN'][0]?.Plan;
    const cost = root?.['Total Cost'] ?? 0;
    if (cost > PROBE_MAX_PLAN_COST) {
      return [{ field: PROBE_SQL_FIELD, problem: `plans at cost ${Math.round(cost)} (a ${root?.['Node Type'] ?? 'plan'}), over the ${PROBE_MAX_PLAN_COST} a probe run 25 times a second may cost: look one row up by an index` }];
    }
    return [];
  } catch (error) {
    return [{ field: PROBE_SQL_FIELD, problem: `does not bind against the datasource: ${error instanceof Error ? error.message : String(error)}` }];
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}
