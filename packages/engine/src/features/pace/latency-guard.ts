import {
  afterBaseline,
  BASELINE_SCHEDULE,
  evidenceSpanMs,
  initialPaceState,
  nextPace,
  SIGNAL_WINDOW_MS,
  SMOOTH_WINDOW_MS,
  BASELINE_POOL,
  HARD_BREACH_RATIO,
  interpolatedQuantile,
  latencyTargetMs,
  throughputRatio,
  statementsPerSecond,
  windowQuantiles,
  type BaselineSchedule,
  type MigrationSpec,
  type PaceLimits,
  type PaceState,
} from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { toMigration } from '../migrations/migration.js';
import { LatencyProbe, type ProbeTarget } from './latency-probe.js';
import { PrometheusSignal } from './prometheus-signal.js';
import { StatementLatency, type StatementWindow } from './statement-latency.js';
import type { PaceRepository } from './pace-repository.js';

/** A guard's lease, milliseconds: another worker takes the guard over this long after its holder died. */
export const GUARD_LEASE_MS = 5_000;
/** Fewest samples of a signal window the controller acts on. */
const MIN_WINDOW_SAMPLES = 5;
/** Fewest application calls (SDK reports) a window needs for a p99. */
const MIN_APP_CALLS = 20;
/** A baseline window that gathered too few samples is extended up to this long, then the guard runs blind at its floor. */
const MAX_BASELINE_MS = 10_000;

/** The signals the controller judges: the probe's read and commit latency, other clients' statements' time and rate (pg_stat_statements), the application's own latency (SDK reports), and the optional Prometheus query. */
type Signal = 'read' | 'commit' | 'prometheus' | 'statements' | 'throughput' | 'application';

/** A migration the guard protects production from: active in backfill with the guard on. */
interface Guarded {
  readonly id: string;
  readonly spec: MigrationSpec;
  readonly target: ProbeTarget;
}

/** Dependencies of {@link LatencyGuard}. */
export interface LatencyGuardDeps {
  readonly db: Kysely<Database>;
  readonly datasources: DatasourceRegistry;
  readonly repository: PaceRepository;
  readonly migrations: MigrationService;
  /** Name of this worker (the lease holder). */
  readonly workerName: string;
  /** @defaultValue {@link BASELINE_SCHEDULE} */
  readonly schedule?: BaselineSchedule;
  /** Told of guard decisions worth a log line (start or stop holding back, a new baseline). */
  readonly log?: (msg: string, extra?: Record<string, unknown>) => void;
}

/** The pace limits of migrations sharing a datasource: the smallest budget and the largest floor. */
export function sharedLimits(specs: readonly MigrationSpec[]): PaceLimits {
  return {
    latencyBudget: Math.min(...specs.map((s) => s.throttle.latencyGuard.latencyBudget)),
    minRowsPerSecond: Math.max(...specs.map((s) => s.throttle.latencyGuard.minRowsPerSecond)),
    maxRowsPerSecond: null,
  };
}

/**
 * The latency guard of every datasource with a guarded backfill (ADR 014): the worker holding a
 * datasource's guard lease runs its canary probe ({@link LatencyProbe}) and, every tick, the pace
 * controller (`nextPace`, packages/core), writing the pace that every chunk on the datasource obeys
 * (`BackfillService` reserves it, GCRA) into `datasource_paces`. It holds the backfill back for a
 * baseline window before the first chunk, every `schedule.everyMs`, and when the controller sits at
 * its floor over target (the workload changed). Starting and stopping holding back are migration
 * events (`latency-guard.holding`, `latency-guard.released`) with the numbers, never one per tick.
 */
export class LatencyGuard {
  readonly #probes = new Map<string, LatencyProbe>();
  /** The Prometheus signal of each datasource whose guarded migrations name one. */
  readonly #prometheus = new Map<string, PrometheusSignal>();
  /** Other clients' statement latency of each guarded datasource (off by itself where pg_stat_statements is not there). */
  readonly #statements = new Map<string, StatementLatency>();
  /** The samples of the newest {@link BASELINE_POOL} baseline windows per datasource, per signal. */
  readonly #pools = new Map<string, { read: number[][]; commit: number[][]; statements: StatementWindow[]; application: number[][] }>();
  readonly #schedule: BaselineSchedule;

  constructor(private readonly deps: LatencyGuardDeps) {
    this.#schedule = deps.schedule ?? BASELINE_SCHEDULE;
  }

  /**
   * One tick (call every `PACE_TICK_MS`): takes or renews the guard of each datasource with a
   * guarded backfill, steps its controller, and gives up the guards with nothing left to guard.
   * @throws the orchestrator's error (the caller logs it and ticks again).
   */
  async tick(): Promise<void> {
    const byDatasource = await this.#guarded();
    for (const datasource of [...this.#probes.keys()]) {
      if (byDatasource.has(datasource)) continue;
      this.#forget(datasource);
      await this.deps.repository.release(this.deps.db, datasource, this.deps.workerName);
    }
    for (const [datasource, guarded] of byDatasource) {
      await this.#tickDatasource(datasource, guarded).catch((error: unknown) =>
        this.deps.log?.('latency guard tick failed', { datasource, error: error instanceof Error ? error.message : String(error) }),
      );
    }
  }

  /** Stops every probe (the process is shutting down); leases run out by themselves. */
  close(): void {
    for (const datasource of [...this.#probes.keys()]) this.#forget(datasource);
  }

  /** Stops the datasource's probe and Prometheus signal and forgets its baseline pool. */
  #forget(datasource: string): void {
    this.#probes.get(datasource)?.stop();
    this.#probes.delete(datasource);
    this.#pools.delete(datasource);
    this.#prometheus.get(datasource)?.stop();
    this.#prometheus.delete(datasource);
    this.#statements.get(datasource)?.stop();
    this.#statements.delete(datasource);
  }

  /** The Prometheus signal of the first migration that names one, started; `null` for none. */
  #prometheusOf(datasource: string, guarded: readonly Guarded[]): PrometheusSignal | null {
    const options = guarded.find((g) => g.spec.throttle.latencyGuard.prometheus !== null)?.spec.throttle.latencyGuard.prometheus ?? null;
    let signal = this.#prometheus.get(datasource) ?? null;
    if (signal && (options === null || JSON.stringify(signal.options) !== JSON.stringify(options))) {
      signal.stop();
      this.#prometheus.delete(datasource);
      signal = null;
    }
    if (!signal && options !== null) {
      signal = new PrometheusSignal(options);
      signal.start();
      this.#prometheus.set(datasource, signal);
    }
    return signal;
  }

  async #guarded(): Promise<Map<string, Guarded[]>> {
    const rows = await this.deps.db
      .selectFrom('backfill_runs as r')
      .innerJoin('migrations as m', 'm.id', 'r.migration_id')
      .selectAll('m')
      .select(['r.datasource', 'r.key_columns', 'r.key_types'])
      .where('m.phase', '=', 'backfill')
      .where('m.status', '=', 'active')
      .where('r.completed_at', 'is', null)
      .where('r.target_purged_at', 'is not', null)
      .orderBy('m.seq')
      .execute();
    const out = new Map<string, Guarded[]>();
    for (const r of rows) {
      const spec = toMigration(r).spec;
      if (!spec.throttle.enabled || !spec.throttle.latencyGuard.enabled) continue;
      const list = out.get(r.datasource) ?? [];
      list.push({ id: r.id, spec, target: { schema: spec.source.schema, table: spec.source.table, keyColumns: r.key_columns, keyTypes: r.key_types, probeSql: spec.throttle.latencyGuard.probeSql } });
      out.set(r.datasource, list);
    }
    return out;
  }

  async #tickDatasource(datasource: string, guarded: readonly Guarded[]): Promise<void> {
    const { db, repository, workerName } = this.deps;
    const row = await repository.acquire(db, datasource, workerName, GUARD_LEASE_MS);
    const local = this.#probes.get(datasource);
    if (!row) {
      // Another worker guards this datasource.
      if (local) this.#forget(datasource);
      return;
    }
    // The probe of the first migration that names one, else the key lookup of the first one's source.
    const first = guarded.find((g) => g.target.probeSql !== null) ?? (guarded[0] as Guarded);
    let probe = local;
    if (!probe || probe.target.schema !== first.target.schema || probe.target.table !== first.target.table || probe.target.probeSql !== first.target.probeSql) {
      probe?.stop();
      probe = new LatencyProbe(this.deps.datasources.probePool(datasource), first.target, this.deps.datasources.commitProbePool(datasource));
      probe.start();
      this.#probes.set(datasource, probe);
    }
    let statements = this.#statements.get(datasource);
    if (!statements) {
      statements = new StatementLatency(this.deps.datasources.pool(datasource));
      statements.start();
      this.#statements.set(datasource, statements);
    }
    const prometheus = this.#prometheusOf(datasource, guarded);
    const limits = sharedLimits(guarded.map((g) => g.spec));
    const state = await repository.get(db, datasource);
    if (!state) return;
    const previous = (state.controller as PaceState | null) ?? null;

    if (state.mode === 'baseline') {
      if (state.mode_ms < this.#schedule.holdMs) return;
      const span = Math.max(0, state.mode_ms - this.#schedule.drainMs);
      const samples = probe.samplesWithin(span, 'read');
      if (samples.length < this.#schedule.minSamples && state.mode_ms < MAX_BASELINE_MS) return;
      const commits = probe.samplesWithin(span, 'commit');
      // The baseline is the p99 of the newest windows pooled: more samples, and one window that
      // happened to be quiet does not leave the guard judging the workload against too low a bar.
      const pool = this.#pools.get(datasource) ?? { read: [], commit: [], statements: [], application: [] };
      if (samples.length >= this.#schedule.minSamples) pool.read = [...pool.read, samples].slice(-BASELINE_POOL);
      if (commits.length >= this.#schedule.minSamples) pool.commit = [...pool.commit, commits].slice(-BASELINE_POOL);
      const statementWindow = statements.meanWithin(span);
      if (statementWindow) pool.statements = [...pool.statements, statementWindow].slice(-BASELINE_POOL);
      const appWindow = (await repository.appLatencyWithin(db, datasource, span)).long;
      if (appWindow.calls >= MIN_APP_CALLS) pool.application = [...pool.application, appWindow.counts].slice(-BASELINE_POOL);
      this.#pools.set(datasource, pool);
      const q = windowQuantiles(pool.read.flat());
      const c = pool.commit.length > 0 ? windowQuantiles(pool.commit.flat()) : null;
      // The pooled mean: every baseline statement weighs the same, whichever window it ran in
      // (windows with too few calls for a mean count for the rate only).
      const timed = pool.statements.filter((w) => w.meanMs !== null);
      const timedCalls = timed.reduce((n, w) => n + w.calls, 0);
      const statementsBaselineMs = timedCalls > 0 ? timed.reduce((t, w) => t + (w.meanMs ?? 0) * w.calls, 0) / timedCalls : null;
      // Their throughput with the backfill held back: this window's alone, not the pool's. It is
      // judged, and traffic that went away must be learned by the one window a relearn measures.
      const throughputBaselinePerSecond = statementsPerSecond(statementWindow);
      const applicationBaselineP99Ms = pool.application.length > 0 ? interpolatedQuantile(sumCounts(pool.application), 0.99) : null;
      const baselineP99 = q.p99Ms ?? state.baseline_p99_ms;
      const controller = previous ? afterBaseline({ ...previous, paceRowsPerSecond: Math.max(previous.paceRowsPerSecond, limits.minRowsPerSecond) }) : initialPaceState(limits);
      await repository.update(db, datasource, workerName, {
        mode: 'guarding',
        restartMode: true,
        nextBaselineInMs: this.#schedule.everyMs,
        baselineP50Ms: q.p50Ms ?? state.baseline_p50_ms,
        baselineP99Ms: baselineP99,
        commitBaselineP99Ms: c?.p99Ms ?? null,
        statementsBaselineMs,
        throughputBaselinePerSecond,
        applicationBaselineP99Ms,
        probeSamples: samples.length + commits.length,
        // No baseline at all (the probe fails): the floor, until a window measures one.
        paceRowsPerSecond: baselineP99 ? controller.paceRowsPerSecond : limits.minRowsPerSecond,
        controller,
      });
      this.deps.log?.('latency guard baseline', { datasource, samples: samples.length, p50Ms: q.p50Ms, p99Ms: q.p99Ms, commitSamples: commits.length, commitP99Ms: c?.p99Ms ?? null, statementsMeanMs: statementsBaselineMs, statementsPerSecond: throughputBaselinePerSecond });
      return;
    }

    if (state.baseline_due) {
      await repository.update(db, datasource, workerName, { mode: 'baseline', restartMode: true });
      return;
    }
    // After a cut only samples taken since count (one cut per window of evidence, ADR 014): the
    // spans of the long and the short window this tick may judge.
    const nowMs = Date.now();
    const current = previous ?? initialPaceState(limits);
    const longMs = evidenceSpanMs(current, nowMs, SMOOTH_WINDOW_MS);
    const shortMs = evidenceSpanMs(current, nowMs, SIGNAL_WINDOW_MS);
    const window = probe.samplesWithin(longMs, 'read');
    const baseline = state.baseline_p99_ms;
    // Too few samples since the last cut to judge yet: the pace stays as it is this tick.
    if (window.length < MIN_WINDOW_SAMPLES && longMs < SMOOTH_WINDOW_MS && !probe.failing) return;
    if (window.length < MIN_WINDOW_SAMPLES || !baseline || baseline <= 0) {
      // Blind (the probe fails every time): the floor, holding, until it measures again.
      if (probe.failing && (state.pace_rows_per_second ?? Infinity) > limits.minRowsPerSecond) {
        const blind = { ...current, paceRowsPerSecond: limits.minRowsPerSecond };
        await repository.update(db, datasource, workerName, { paceRowsPerSecond: limits.minRowsPerSecond, controller: blind });
        this.deps.log?.('latency guard: the probe fails, pacing at the floor', { datasource });
      }
      return;
    }
    const q = windowQuantiles(window);
    const commitWindow = probe.samplesWithin(longMs, 'commit');
    const cq = commitWindow.length >= MIN_WINDOW_SAMPLES ? windowQuantiles(commitWindow) : null;
    const commitBaseline = state.commit_baseline_p99_ms;
    // The controller judges the signal that rose more over its own baseline (ratios: scale-free):
    // the p99 of the long window, unless the short one is a hard breach by itself.
    const hard = HARD_BREACH_RATIO * latencyTargetMs(1, limits.latencyBudget);
    const ratioOf = (signal: 'read' | 'commit'): number | null =>
      judgedRatio(signal === 'read' ? baseline : commitBaseline, signal === 'read' ? q.p99Ms : (cq?.p99Ms ?? null), windowQuantiles(probe.samplesWithin(shortMs, signal)).p99Ms, hard);
    // The Prometheus value against its ceiling, on the same scale: at `max` it is at target.
    const reading = prometheus?.reading() ?? null;
    const promRatio = reading?.value != null && prometheus ? (reading.value / prometheus.options.max) * latencyTargetMs(1, limits.latencyBudget) : null;
    // Other clients' mean statement time over its baseline.
    const statementsLong = statements.meanWithin(longMs);
    const statementsShort = statements.meanWithin(shortMs);
    // Judged as the clients feel them: a statement costs a client its round trip plus its execution,
    // and the probe's p50 with the backfill held back is a measured round trip. Sub-millisecond means
    // move by multiples with no client the wiser (a client's traffic that drops makes each of its
    // statements slower on a colder cache: 0.03 → 0.09 ms measured beside a 0.38 ms round trip).
    const roundTripMs = state.baseline_p50_ms ?? 0;
    const withRoundTrip = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : ms + roundTripMs);
    const statementsRatio = judgedRatio(withRoundTrip(state.statements_baseline_ms), withRoundTrip(statementsLong?.meanMs), withRoundTrip(statementsShort?.meanMs), hard);
    // Their throughput, judged as a latency (Little's law: a closed loop that waits longer per
    // request runs slower) on the spans the other signals judge; the backstop where the probes and
    // the statements' mean stay flat at saturation (ADR 014, "Throughput as the backstop").
    const throughputBaseline = state.throughput_baseline_per_second;
    const throughputJudged = judgedRatio(1, throughputRatio(throughputBaseline, statementsLong), throughputRatio(throughputBaseline, statementsShort), hard);
    // Shown over the full 5 s, not the evidence span since the last cut: a shown rate should not
    // flicker with the controller's cuts.
    const shownWindow = longMs === SMOOTH_WINDOW_MS ? statementsLong : statements.meanWithin(SMOOTH_WINDOW_MS);
    const throughputLong = statementsPerSecond(shownWindow);
    // A statement signal is read once a second: on a span since a cut it may have no reading yet
    // where its full window has one. Then the pace is not grown on the other signals' say-so, and a
    // streak at the floor goes on (else a rate judged every other tick never relearns).
    const incomplete =
      (statementsRatio === null && state.statements_baseline_ms !== null && shownWindow?.meanMs != null) ||
      (throughputJudged === null && throughputRatio(throughputBaseline, shownWindow) !== null);
    // The application's own p99 (SDK reports) over its baseline: one read of the long window, the short one cut from it.
    const app = await repository.appLatencyWithin(db, datasource, longMs, shortMs);
    const appLongP99 = app.long.calls >= MIN_APP_CALLS ? interpolatedQuantile(app.long.counts, 0.99) : null;
    const appShortP99 = app.short.calls >= MIN_APP_CALLS ? interpolatedQuantile(app.short.counts, 0.99) : null;
    const applicationRatio = judgedRatio(state.application_baseline_p99_ms, appLongP99, appShortP99, hard);
    const appBaseline = state.application_baseline_p99_ms;
    const ratios: [Signal, number | null][] = [
      ['read', ratioOf('read') ?? 0],
      ['commit', ratioOf('commit')],
      ['statements', statementsRatio],
      ['throughput', throughputJudged],
      ['application', applicationRatio],
      ['prometheus', promRatio],
    ];
    const [worse, ratio] = ratios.reduce<[Signal, number]>((best, [name, r]) => (r !== null && r > best[1] ? [name, r] : best), ['read', 0]);
    const achieved = await repository.achievedRowsPerSecond(db, datasource, SIGNAL_WINDOW_MS);
    const decision = nextPace(current, { observedP99Ms: ratio, baselineP99Ms: 1, achievedRowsPerSecond: achieved, nowMs, incomplete }, limits);
    const next = decision.state;
    const written = await repository.update(db, datasource, workerName, {
      paceRowsPerSecond: next.paceRowsPerSecond,
      observedP50Ms: q.p50Ms,
      observedP99Ms: q.p99Ms,
      commitObservedP99Ms: cq?.p99Ms ?? null,
      worseSignal: worse,
      statementsObservedMs: statementsLong?.meanMs ?? null,
      throughputObservedPerSecond: throughputLong,
      applicationObservedP99Ms: appLongP99,
      prometheus: { value: reading?.value ?? null, max: prometheus?.options.max ?? null, error: reading?.error ?? null },
      probeSamples: window.length + commitWindow.length,
      holding: next.holding,
      controller: next,
      ...(decision.relearnBaseline ? { mode: 'baseline' as const, restartMode: true } : {}),
    });
    if (!written) return;
    if (decision.holdingChanged) {
      const action = next.holding ? 'latency-guard.holding' : 'latency-guard.released';
      const details = {
        datasource,
        signal: worse,
        observedP99Ms: round(worse === 'commit' ? (cq?.p99Ms ?? null) : q.p99Ms),
        baselineP99Ms: round(worse === 'commit' ? commitBaseline : baseline),
        ...(worse === 'application' ? { applicationObservedP99Ms: round(appLongP99), applicationBaselineP99Ms: round(appBaseline) } : {}),
        ...(worse === 'statements' ? { statementsObservedMs: round(statementsLong?.meanMs ?? null), statementsBaselineMs: round(state.statements_baseline_ms) } : {}),
        ...(worse === 'throughput' ? { statementsPerSecond: round(throughputLong), baselineStatementsPerSecond: round(throughputBaseline) } : {}),
        ...(worse === 'prometheus' ? { prometheusValue: reading?.value ?? null, prometheusMax: prometheus?.options.max ?? null } : {}),
        latencyBudget: limits.latencyBudget,
        paceRowsPerSecond: Math.round(next.paceRowsPerSecond),
        achievedRowsPerSecond: Math.round(achieved),
      };
      this.deps.log?.(action, details);
      for (const g of guarded) {
        await this.deps.migrations.recordEvent(g.id, action, { actor: 'tideway:latency-guard', reason: next.holding ? 'production latency over its budget' : 'the copy runs under its pace again', details }).catch(() => undefined);
      }
    }
    if (decision.relearnBaseline) this.deps.log?.('latency guard: at its floor over target, measuring a new baseline', { datasource });
  }
}

/**
 * A signal's value over its baseline, as the controller judges it: the long window's, unless the
 * short window alone is over `hard` (a hard breach is answered in the tick it shows up in).
 * `null` without a baseline or a long-window value.
 */
function judgedRatio(baseline: number | null, long: number | null, short: number | null, hard: number): number | null {
  if (!baseline || baseline <= 0 || long === null) return null;
  return short !== null && short / baseline > hard ? short / baseline : long / baseline;
}

/** Bucket counts of several histograms added up. */
function sumCounts(histograms: readonly number[][]): number[] {
  const out: number[] = [];
  for (const h of histograms) h.forEach((c, i) => (out[i] = (out[i] ?? 0) + c));
  return out;
}

function round(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 1000) / 1000;
}
