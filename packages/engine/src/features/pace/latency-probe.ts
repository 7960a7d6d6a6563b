import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { quoteIdent, qualified } from '../backfill/sql.js';
import { Periodic } from './periodic.js';
import { TIDEWAY_SQL_MARK } from './statement-latency.js';

/** How often the canary probe runs, milliseconds: 100 samples per 2 s signal window, so its p99 is not just its maximum (ADR 014). */
export const PROBE_INTERVAL_MS = 20;
/** How long samples are kept, milliseconds (covers a baseline window and a signal window). */
const KEEP_MS = 30_000;
/** Existing keys the default probe looks up, sampled once per probe start. */
const PROBE_KEYS = 256;

/** What the default probe looks up: the source table by its key. */
export interface ProbeTarget {
  readonly schema: string;
  readonly table: string;
  readonly keyColumns: readonly string[];
  /** `format_type` of each key column (the run's key types). */
  readonly keyTypes: readonly string[];
  /** A custom probe (`throttle.latencyGuard.probeSql`, validated), run instead of the key lookup; `null` for the lookup. */
  readonly probeSql: string | null;
}

/** One timed probe: when it ended (`performance.now()` ms) and how long it took (ms, client-side). */
interface Sample {
  readonly at: number;
  readonly ms: number;
}

/**
 * The two signals of a probe: `read`, the lookup (or the custom `probeSql`) — what a reader waits
 * for; `commit`, a commit that writes one WAL record (`pg_logical_emit_message`, transactional, in
 * an implicit transaction: it waits for its WAL flush like every production commit) — what a writer
 * waits for, which a read never sees (a copy's WAL volume delays every commit behind it).
 */
export type ProbeSignal = 'read' | 'commit';

/** SQLSTATE of a statement cancelled by its `statement_timeout`. */
const QUERY_CANCELED = '57014';
/** Consecutive failed read probes after which the probe is {@link LatencyProbe.failing} (about 1 s of them). */
export const FAILING_AFTER = 25;

/** The commit probe: one transactional logical message, no table, no lock (any wal_level, no privilege needed). */
const COMMIT_PROBE_SQL = `${TIDEWAY_SQL_MARK}SELECT pg_catalog.pg_logical_emit_message(true, 'tideway-probe', '')`;

/**
 * The canary probe of a datasource: an index lookup of a random existing key of the source table
 * (or the spec's validated `probeSql`) alternating with a commit probe ({@link ProbeSignal}), one
 * every {@link PROBE_INTERVAL_MS}, on connections of their own (so it never queues behind a chunk),
 * timed client-side — the latency a production query of the same shape sees right now. Samples
 * are kept for 30 s. A probe cancelled by its statement timeout is a sample of the time it waited
 * (the latency was at least that: an overloaded database must not look quiet); any other failure is
 * not a sample, and {@link failing} says whether the read probe has failed since its last sample.
 */
export class LatencyProbe {
  readonly #samples: Record<ProbeSignal, Sample[]> = { read: [], commit: [] };
  #tick = 0;
  #commitUnavailable = false;
  #keys: string[][] = [];
  /** Read probes failed (not by their timeout) since the last read sample. */
  #readFailures = 0;
  readonly #lookup: string;
  readonly #loop: Periodic;

  /**
   * @param pool - a read-only pool reserved for the read probe (one connection, see `DatasourceRegistry.probePool`).
   * @param commitPool - a pool for the commit probe (one connection, `DatasourceRegistry.commitProbePool`); `null` for none.
   * @param intervalMs - time between probe starts; read and commit probes alternate. @defaultValue {@link PROBE_INTERVAL_MS}
   */
  constructor(
    private readonly pool: pg.Pool,
    readonly target: ProbeTarget,
    private readonly commitPool: pg.Pool | null = null,
    intervalMs = PROBE_INTERVAL_MS,
  ) {
    const cols = target.keyColumns.map(quoteIdent);
    const params = target.keyTypes.map((t, i) => `$${i + 1}::${t}`);
    this.#loop = new Periodic(intervalMs, () => this.#probe());
    this.#lookup = `${TIDEWAY_SQL_MARK}SELECT 1 FROM ${qualified(target)} WHERE (${cols.join(', ')}) = (${params.join(', ')})`;
  }

  /** Whether the last {@link FAILING_AFTER} read probes or more all failed (a connection error, a revoked grant): the guard is blind. */
  get failing(): boolean {
    return this.#readFailures >= FAILING_AFTER;
  }

  /** Starts probing (idempotent). */
  start(): void {
    this.#loop.start();
  }

  /** Stops probing; samples stay readable. */
  stop(): void {
    this.#loop.stop();
  }

  /** Whether commit probes run (not when the datasource refused the first one, e.g. a standby). */
  get commits(): boolean {
    return this.commitPool !== null && !this.#commitUnavailable;
  }

  /** Probe latencies (ms) of `signal`'s samples taken in the last `windowMs` milliseconds. */
  samplesWithin(windowMs: number, signal: ProbeSignal = 'read'): number[] {
    const since = performance.now() - windowMs;
    return this.#samples[signal].filter((s) => s.at >= since).map((s) => s.ms);
  }

  async #probe(): Promise<void> {
    const signal: ProbeSignal = this.commits && this.#tick++ % 2 === 1 ? 'commit' : 'read';
    let t0 = performance.now();
    try {
      if (signal === 'commit') {
        t0 = performance.now();
        try {
          await (this.commitPool as pg.Pool).query(COMMIT_PROBE_SQL);
        } catch (error) {
          // Refused (a read-only standby, a revoked function): the read probe goes on alone.
          if ((error as { code?: string }).code && !['57014', '08006', '08003', '57P01'].includes((error as { code: string }).code)) this.#commitUnavailable = true;
          throw error;
        }
      } else if (this.target.probeSql !== null) {
        t0 = performance.now();
        await this.pool.query(TIDEWAY_SQL_MARK + this.target.probeSql);
      } else {
        if (this.#keys.length === 0) await this.#sampleKeys();
        const key = this.#keys[Math.floor(Math.random() * this.#keys.length)];
        t0 = performance.now();
        await this.pool.query(this.#lookup, (key ?? this.target.keyColumns.map(() => null)) as unknown[]);
      }
      this.#record(signal, t0);
      if (signal === 'read') this.#readFailures = 0;
    } catch (error) {
      if ((error as { code?: string }).code === QUERY_CANCELED) this.#record(signal, t0);
      else if (signal === 'read') this.#readFailures++;
    }
  }

  #record(signal: ProbeSignal, t0: number): void {
    const t1 = performance.now();
    const samples = this.#samples[signal];
    samples.push({ at: t1, ms: t1 - t0 });
    while (samples.length > 0 && (samples[0] as Sample).at < t1 - KEEP_MS) samples.shift();
  }

  /** Existing keys: a page sample of the table, or its first keys when the sample is small. */
  async #sampleKeys(): Promise<void> {
    const ref = qualified(this.target);
    const cols = this.target.keyColumns.map((c, i) => `${quoteIdent(c)}::text AS k${i}`).join(', ');
    const read = async (text: string) => (await this.pool.query<Record<string, string>>(text)).rows.map((r) => this.target.keyColumns.map((_, i) => r[`k${i}`] as string));
    let keys = await read(`${TIDEWAY_SQL_MARK}SELECT ${cols} FROM ${ref} TABLESAMPLE SYSTEM (1) LIMIT ${PROBE_KEYS}`);
    if (keys.length < 16) keys = await read(`${TIDEWAY_SQL_MARK}SELECT ${cols} FROM ${ref} LIMIT ${PROBE_KEYS}`);
    this.#keys = keys;
  }
}
