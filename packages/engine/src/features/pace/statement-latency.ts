import type pg from 'pg';
import { quoteIdent } from '../backfill/sql.js';
import { Periodic } from './periodic.js';

/**
 * The comment Tideway's heavy statements on a datasource start with (chunk copies, probes), so the
 * statement-latency signal can leave them out: `pg_stat_statements` keeps a statement's text with
 * its comments.
 */
export const TIDEWAY_SQL_MARK = '/* tideway */ ';

/** How often the statistics are read, milliseconds. */
export const STATEMENTS_INTERVAL_MS = 1000;
/** Snapshots kept, milliseconds (covers the baseline pool's windows). */
const KEEP_MS = 30_000;
/** Fewest statements of other clients a window needs to have a mean. */
export const MIN_STATEMENT_CALLS = 20;

/** One reading of the summed statistics of other clients' statements. */
interface Snapshot {
  readonly at: number;
  readonly calls: number;
  readonly totalMs: number;
}

/** Other clients' statements over a span: what {@link StatementLatency.meanWithin} returns. */
export interface StatementWindow {
  /** Their mean execution time, ms; `null` with fewer than {@link MIN_STATEMENT_CALLS} calls (too few for a mean, not for a rate). */
  readonly meanMs: number | null;
  /** How many finished in the span. */
  readonly calls: number;
  /** The span between the two readings the deltas come from, seconds (> 0): `calls / seconds` is their throughput. */
  readonly seconds: number;
}

/**
 * Production statement latency from `pg_stat_statements` (ADR 014): every second, the calls and
 * total execution time summed over the statements of this database that are not Tideway's (texts
 * without {@link TIDEWAY_SQL_MARK} or `tideway_` objects; a literal in a statement's text is no
 * mark, the extension keeps it as `$n`); the mean
 * execution time over a span is the delta of the totals over the delta of the calls. Top-level
 * statements only (the extension's default `track = top`), so an application statement's sync
 * trigger counts as the application's cost, which it is. What a chunk or a probe sends on the
 * datasource is marked (the copy and its transaction, the key planning, the DDL and health checks,
 * both probes); Tideway's rarer unmarked statements (migration steps, verification) share their
 * entries with the application's, a small upward bias.
 *
 * Available only where the extension is created in the database and loaded
 * (`shared_preload_libraries`); otherwise {@link available} is false after the first reading and
 * nothing more is read. Reading other roles' statistics needs `pg_read_all_stats` for their texts;
 * without it their texts are hidden but their numbers still count (they are not Tideway's).
 */
export class StatementLatency {
  readonly #snapshots: Snapshot[] = [];
  #relation: string | null = null;
  #available: boolean | null = null;
  #error: string | null = null;
  readonly #loop: Periodic;

  /** @param pool - a pool of the datasource (one query a second). */
  constructor(
    private readonly pool: pg.Pool,
    intervalMs = STATEMENTS_INTERVAL_MS,
  ) {
    this.#loop = new Periodic(intervalMs, () => this.#read());
  }

  /** `null` before the first reading; then whether the extension answers in this database. */
  get available(): boolean | null {
    return this.#available;
  }

  /** Why the extension is not available (or the newest reading failed), or `null`. */
  get error(): string | null {
    return this.#error;
  }

  start(): void {
    this.#loop.start();
  }

  stop(): void {
    this.#loop.stop();
  }

  /**
   * Other clients' statements over the last `spanMs`: their calls, the readings' span in seconds
   * (`statementsPerSecond` of it is their throughput, which the guard judges, ADR 014) and their mean
   * execution time, ms (`null` with fewer than {@link MIN_STATEMENT_CALLS} calls). `null` without
   * two readings that far apart, or across a reset or eviction of the statistics (the sums went
   * down between any two readings of the span).
   */
  meanWithin(spanMs: number, now = performance.now()): StatementWindow | null {
    return this.#delta(now - spanMs, now);
  }

  /** {@link meanWithin} of the span `[from, to]` (`performance.now()` ms). */
  #delta(from: number, to: number): StatementWindow | null {
    const within = this.#snapshots.filter((s) => s.at >= from && s.at <= to);
    const first = within[0];
    const last = within[within.length - 1];
    if (!first || !last || last.at <= first.at) return null;
    for (let i = 1; i < within.length; i++) {
      const a = within[i - 1] as Snapshot;
      const b = within[i] as Snapshot;
      if (b.calls < a.calls || b.totalMs < a.totalMs) return null;
    }
    const calls = last.calls - first.calls;
    const total = last.totalMs - first.totalMs;
    return { meanMs: calls >= MIN_STATEMENT_CALLS ? total / calls : null, calls, seconds: (last.at - first.at) / 1000 };
  }

  async #read(): Promise<void> {
    try {
      if (this.#relation === null) {
        const ext = await this.pool.query<{ schema: string }>(
          "SELECT n.nspname AS schema FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
        );
        const schema = ext.rows[0]?.schema;
        if (!schema) {
          this.#available = false;
          this.#error = 'pg_stat_statements is not created in this database';
          this.stop();
          return;
        }
        this.#relation = `${quoteIdent(schema)}.pg_stat_statements`;
      }
      const r = await this.pool.query<{ calls: number; total_ms: number }>(
        `${TIDEWAY_SQL_MARK}SELECT coalesce(sum(s.calls), 0)::float8 AS calls, coalesce(sum(s.total_exec_time), 0)::float8 AS total_ms
           FROM ${this.#relation} s
          WHERE s.toplevel AND s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
            AND s.query NOT LIKE '%tideway%'`,
      );
      const row = r.rows[0];
      this.#available = true;
      this.#error = null;
      const at = performance.now();
      this.#snapshots.push({ at, calls: row?.calls ?? 0, totalMs: row?.total_ms ?? 0 });
      while (this.#snapshots.length > 0 && (this.#snapshots[0] as Snapshot).at < at - KEEP_MS) this.#snapshots.shift();
    } catch (error) {
      this.#error = error instanceof Error ? error.message : String(error);
      // Created but not loaded ("must be loaded via shared_preload_libraries"), or no privilege: off for this datasource.
      if (this.#available !== true) {
        this.#available = false;
        this.stop();
      }
    }
  }
}
