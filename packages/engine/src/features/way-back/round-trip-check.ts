import type { MigrationSpec } from '@tideway/core';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import { mappedColumns, qualified, quoteIdent, SOURCE_ALIAS } from '../backfill/sql.js';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import type { Migration } from '../migrations/migration.js';
import { reverseMappingOf } from './way-back.js';

/** Tables up to this many rows (the planner's estimate) are checked whole; larger ones on a sample. */
export const ROUND_TRIP_ALL_ROWS = 100_000;
/** Rows of the sample of a larger table. */
export const ROUND_TRIP_SAMPLE_ROWS = 20_000;
/** Statement timeout of the check, milliseconds. */
export const ROUND_TRIP_TIMEOUT_MS = 60_000;
/** Keys of rows that did not come back kept with a check. */
export const ROUND_TRIP_SAMPLE_KEYS = 10;

/** A round-trip check as the gates and the resource show it. */
export interface RoundTripResult {
  readonly id: number;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly rowsChecked: number;
  /** Rows with at least one old column that did not come back. */
  readonly mismatches: number;
  /** Old column → rows whose value did not come back (only columns with some). */
  readonly columns: Readonly<Record<string, number>>;
  /** Source keys (text, `spec.source.key` order) of up to 10 rows that did not come back. */
  readonly sampleKeys: readonly (readonly string[])[];
  /** Why the check could not run (the reverse mapping fails on a value, a datasource is down). */
  readonly error: string | null;
  readonly passed: boolean;
}

/**
 * The round-trip check (issue 12 §1): on the rows of the old table (all of them up to
 * {@link ROUND_TRIP_ALL_ROWS}, else a sample of {@link ROUND_TRIP_SAMPLE_ROWS}), maps each row
 * forward — cast to the target columns' types, as the target stores it — then back through the way
 * back (`reverseMappingOf`), cast to the old columns' types as the reverse sync writes them, and
 * compares every column the way back produces with the row it came from (`IS DISTINCT FROM`). A
 * migration whose way back would corrupt old never switches writes: the check gates the way into
 * cutover and the write cutover itself.
 *
 * One read-only statement on the source datasource, under the fixed search path; the expressions
 * were bound at start (ADR 006). A check that cannot run (a value the reverse mapping refuses) fails
 * with the database's message.
 */
export class RoundTripCheck {
  constructor(
    private readonly deps: { readonly db: Kysely<Database>; readonly datasources: DatasourceRegistry; readonly catalog: CatalogInspector },
  ) {}

  /**
   * Runs a check now and records it.
   * @returns the check; `null` when the spec declares no way back.
   */
  async run(migration: Migration): Promise<RoundTripResult | null> {
    await loadSqlParser();
    const spec = migration.spec;
    const back = reverseMappingOf(spec);
    if (!spec.rollbackAfterWriteCutover) return null;
    const row = await this.deps.db.insertInto('round_trip_checks').values({ migration_id: migration.id, columns: '{}', sample_keys: '[]' }).returning('id').executeTakeFirstOrThrow();
    let outcome: { rows: number; mismatches: number; columns: Record<string, number>; keys: string[][]; error: string | null };
    try {
      if (!back) throw new Error('the way back does not produce the source key');
      outcome = { ...(await this.#check(spec, back)), error: null };
    } catch (error) {
      outcome = { rows: 0, mismatches: 0, columns: {}, keys: [], error: error instanceof Error ? error.message : String(error) };
    }
    const passed = outcome.error === null && outcome.mismatches === 0;
    await this.deps.db
      .updateTable('round_trip_checks')
      .set({
        finished_at: sql`now()`,
        rows_checked: outcome.rows,
        mismatches: outcome.mismatches,
        columns: JSON.stringify(outcome.columns),
        sample_keys: JSON.stringify(outcome.keys),
        error: outcome.error,
        passed,
      })
      .where('id', '=', row.id)
      .execute();
    return (await this.latest(migration.id)) as RoundTripResult;
  }

  /** The newest check of a migration (optionally one started at or after `since`), or `null`. */
  async latest(migrationId: string, since?: Date): Promise<RoundTripResult | null> {
    let q = this.deps.db.selectFrom('round_trip_checks').selectAll().where('migration_id', '=', migrationId).orderBy('started_at', 'desc').orderBy('id', 'desc').limit(1);
    if (since) q = q.where('started_at', '>=', since);
    const r = await q.executeTakeFirst();
    if (!r) return null;
    return {
      id: r.id,
      startedAt: r.started_at.toISOString(),
      finishedAt: r.finished_at ? r.finished_at.toISOString() : null,
      rowsChecked: Number(r.rows_checked),
      mismatches: Number(r.mismatches),
      columns: r.columns,
      sampleKeys: r.sample_keys,
      error: r.error,
      passed: r.passed,
    };
  }

  async #check(spec: MigrationSpec, back: Readonly<Record<string, string>>): Promise<{ rows: number; mismatches: number; columns: Record<string, number>; keys: string[][] }> {
    const [source, target] = await Promise.all([this.deps.catalog.describe(spec.source), this.deps.catalog.describe(spec.target)]);
    if (!source || !target) throw new Error('the source or the target table is gone');
    const produced = Object.keys(back).sort();
    const typeOf = (table: typeof source, column: string) => {
      const c = table.columns.get(column);
      if (!c) throw new Error(`column ${column} is gone`);
      return c.type;
    };
    const keys = spec.source.key.map((k, i) => ({ column: k, alias: `__tw_k${i}` }));
    const forward = mappedColumns(spec)
      .map((c) => `((${c.expression})::${typeOf(target, c.column)}) AS ${quoteIdent(c.column)}`)
      .join(', ');
    const backward = produced.map((c, i) => `((${back[c] as string})::${typeOf(source, c)}) AS __tw_b${i}`).join(', ');
    const sampled =
      source.estimatedRows > ROUND_TRIP_ALL_ROWS
        ? `TABLESAMPLE SYSTEM (${Math.min(100, (100 * ROUND_TRIP_SAMPLE_ROWS * 2) / source.estimatedRows).toFixed(4)}) LIMIT ${ROUND_TRIP_SAMPLE_ROWS}`
        : '';
    const differs = (i: number) => `b.__tw_b${i} IS DISTINCT FROM s.${quoteIdent(produced[i] as string)}`;
    const any = produced.map((_, i) => differs(i)).join(' OR ') || 'false';
    const text = `
      WITH s AS (SELECT * FROM ${qualified(spec.source)} ${sampled}),
      f AS (SELECT ${keys.map((k) => `${quoteIdent(k.column)} AS ${k.alias}`).join(', ')}, ${forward} FROM s AS ${SOURCE_ALIAS}),
      b AS (SELECT ${keys.map((k) => k.alias).join(', ')}, ${backward} FROM f AS ${SOURCE_ALIAS})
      SELECT count(*)::int8 AS n,
             count(*) FILTER (WHERE ${any})::int8 AS bad,
             ${produced.map((_, i) => `count(*) FILTER (WHERE ${differs(i)})::int8 AS c${i}`).join(', ')}${produced.length ? ',' : ''}
             (array_agg(pg_catalog.jsonb_build_array(${keys.map((k) => `(s.${quoteIdent(k.column)})::text`).join(', ')})) FILTER (WHERE ${any}))[1:${ROUND_TRIP_SAMPLE_KEYS}] AS keys
      FROM s JOIN b ON ${keys.map((k) => `b.${k.alias} = s.${quoteIdent(k.column)}`).join(' AND ')}`;
    return this.deps.datasources.withClient(spec.source.datasource, async (client) => {
      await client.query(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${ROUND_TRIP_TIMEOUT_MS}`);
      try {
        const r = (await client.query<Record<string, unknown>>(text)).rows[0] ?? {};
        const columns: Record<string, number> = {};
        produced.forEach((c, i) => {
          const n = Number(r[`c${i}`] ?? 0);
          if (n > 0) columns[c] = n;
        });
        return { rows: Number(r['n'] ?? 0), mismatches: Number(r['bad'] ?? 0), columns, keys: (r['keys'] as string[][] | null) ?? [] };
      } finally {
        await client.query('ROLLBACK').catch(() => undefined);
      }
    });
  }
}
