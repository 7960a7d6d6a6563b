/**
 * The latency guard's pure parts: the window statistics of the production-latency signal, the
 * baseline schedule, and the pace controller that turns "how much slower is production than with
 * the backfill held back" into the rows/s every chunk on a datasource obeys (ADR 014).
 *
 * Sources of the idea: Netflix concurrency-limits' Gradient2 (a limit scaled by the ratio of a
 * long-term to the short-term latency, clamped, smoothed), TCP Vegas (act on the rise of latency
 * over its base before loss), and CockroachDB admission control's split of foreground and elastic
 * work (background work gets only what foreground latency leaves). Unlike Gradient2 the baseline
 * is not a drifting long-term average of loaded readings: it is measured with the backfill held
 * back, so a sustained rise the backfill causes cannot become the new normal.
 */

/** The controller's tick: how often the pace is recomputed, milliseconds. */
export const PACE_TICK_MS = 500;
/** The short signal window: a p99 over {@link HARD_BREACH_RATIO} × target in it cuts the pace at once, milliseconds. */
export const SIGNAL_WINDOW_MS = 2000;
/** The long signal window: the controller's gradient follows the p99 of this span (more samples, less noise), milliseconds. */
export const SMOOTH_WINDOW_MS = 5000;
/** Baseline windows pooled for the baseline p99 (the newest ones): one quiet window does not set a baseline too low. */
export const BASELINE_POOL = 3;
/** Where inside the budget the controller aims: baseline × (1 + share × budget). */
export const SETPOINT_SHARE = 0.9;
/** Weight of the newest window in the smoothed signal. */
export const SIGNAL_SMOOTHING = 0.5;
/** A window p99 over target × this cuts the pace by itself, without waiting for the smoothed signal. */
export const HARD_BREACH_RATIO = 1.5;
/** Largest pace growth per tick once out of slow start (×1.25 per 500 ms ≈ ×1.56 per second), when the copy costs nothing. */
export const MAX_PACE_GROWTH = 1.25;
/** Growth per tick in slow start. */
export const SLOW_START_GROWTH = 1.5;
/** Smallest factor of one decrease (a breach at most halves the pace per tick). */
export const MAX_PACE_CUT = 0.5;
/** The first pace after a baseline, rows/s (slow start grows it ×1.5 per tick while far under the setpoint). */
export const START_PACE_ROWS_PER_SECOND = 1000;
/**
 * After a cut, how long only fresh evidence counts and the pace does not grow, milliseconds: a cut's
 * own evidence — the samples that caused it, which stay in the sliding windows for up to
 * {@link SMOOTH_WINDOW_MS} — cannot justify another, and the pace grows again only once a short
 * window of samples taken after the cut has said it may (TCP's one reduction per round trip).
 */
export const RECOVERY_MS = SIGNAL_WINDOW_MS;
/** Ticks over target at the floor before the guard asks for a new baseline (the workload, not the copy, got slower). */
export const RELEARN_AFTER_TICKS = 6;
/** The copy runs free (not held back) when the pace exceeds the achieved rate by this factor. */
const FREE_RUNNING_RATIO = 1.5;
/** Ticks of free running before the guard says it stopped holding back (hysteresis for the audit events). */
const RELEASE_AFTER_TICKS = 4;

/** The options the controller reads (spec `throttle.latencyGuard` and `backfill.maxRowsPerSecond`). */
export interface PaceLimits {
  /** Allowed rise of the signal's p99 over its baseline, a fraction (0.3 = +30 %). */
  readonly latencyBudget: number;
  /** The floor, rows/s (> 0): however bad the signal, the copy keeps at least this pace. */
  readonly minRowsPerSecond: number;
  /** A hard cap, rows/s, or `null` for none. */
  readonly maxRowsPerSecond: number | null;
}

/** The controller's state between ticks (persisted per datasource). */
export interface PaceState {
  /** The pace every chunk on the datasource obeys, rows/s. */
  readonly paceRowsPerSecond: number;
  /** The signal as the controller judges it: an EWMA of the window p99s ({@link SIGNAL_SMOOTHING}), ms. `null` before the first tick. */
  readonly smoothedP99Ms: number | null;
  /** Growing the pace ×1.5 per tick until the signal first nears the setpoint. */
  readonly slowStart: boolean;
  /** Whether the guard is holding the copy back (set by a breach, cleared after the copy runs free a while). */
  readonly holding: boolean;
  /** Consecutive ticks over target with the pace at its floor. */
  readonly floorBreachTicks: number;
  /** Consecutive ticks the copy ran slower than the pace allowed. */
  readonly freeTicks: number;
  /** When the pace was last cut (the caller's clock, ms), or `null`: the signal is judged on samples after it ({@link evidenceSpanMs}). */
  readonly lastCutAtMs: number | null;
}

/** One tick's readings. */
export interface PaceTick {
  /** p99 of the signal over the last {@link SIGNAL_WINDOW_MS}, ms. */
  readonly observedP99Ms: number;
  /** p99 of the signal with the backfill held back, ms (> 0). */
  readonly baselineP99Ms: number;
  /** Rows/s the copy achieved over the last window, or `null` when unknown (no chunk ran yet). */
  readonly achievedRowsPerSecond: number | null;
  /** Now, on the clock of {@link PaceState.lastCutAtMs}, ms. */
  readonly nowMs: number;
  /**
   * A signal that is judged on a full window has no reading on the span since the last cut yet (the
   * statement signals read once a second): the pace may be cut or eased, not grown, and a streak
   * at the floor over target neither grows nor ends. @defaultValue false
   */
  readonly incomplete?: boolean;
}

/** What a tick decided. */
export interface PaceDecision {
  readonly state: PaceState;
  /** The guard sat at its floor over target for {@link RELEARN_AFTER_TICKS}: measure a new baseline now. */
  readonly relearnBaseline: boolean;
  /** `holding` changed this tick (one audit event each way, never one per tick). */
  readonly holdingChanged: boolean;
}

/**
 * The state a guard starts from: {@link START_PACE_ROWS_PER_SECOND}, or `previousPace` (a guard
 * taken over from another worker), in slow start.
 */
export function initialPaceState(limits: PaceLimits, previousPace?: number): PaceState {
  const start = previousPace ?? START_PACE_ROWS_PER_SECOND;
  return {
    paceRowsPerSecond: clampPace(start, limits),
    smoothedP99Ms: null,
    slowStart: true,
    holding: false,
    floorBreachTicks: 0,
    freeTicks: 0,
    lastCutAtMs: null,
  };
}

/**
 * The state after a new baseline was measured: the pace is kept, the smoothed signal (judged
 * against the old baseline) is dropped, and slow start resumes, so a baseline that rose (the
 * workload got heavier) lets the pace climb back quickly and one that fell is found out by the next
 * breach.
 */
export function afterBaseline(state: PaceState): PaceState {
  return { ...state, smoothedP99Ms: null, slowStart: true, floorBreachTicks: 0, lastCutAtMs: null };
}

/**
 * The span of samples a window of `windowMs` may judge at `nowMs`: the whole window, or — after a
 * cut — only what came after it, so one burst of slow samples (a stall of the machine, a checkpoint)
 * cuts the pace once, not on every tick it stays in the window. Callers take the samples of the
 * last span ms for the signal and skip the tick while too few have arrived.
 * @returns milliseconds, 0 ≤ span ≤ windowMs.
 */
export function evidenceSpanMs(state: PaceState, nowMs: number, windowMs: number): number {
  // (`?? null`: a state persisted before this field existed has none.)
  // A clock that went back past the cut (the state came from another worker) judges the whole window.
  const cutAt = state.lastCutAtMs ?? null;
  return cutAt === null || nowMs < cutAt ? windowMs : Math.min(windowMs, nowMs - cutAt);
}

/** The latency the controller aims at: baseline × (1 + {@link SETPOINT_SHARE} × budget), ms. */
export function latencySetpointMs(baselineP99Ms: number, latencyBudget: number): number {
  return baselineP99Ms * (1 + SETPOINT_SHARE * latencyBudget);
}

/** The latency the guard must keep production under: baseline × (1 + budget), ms. */
export function latencyTargetMs(baselineP99Ms: number, latencyBudget: number): number {
  return baselineP99Ms * (1 + latencyBudget);
}

function clampPace(pace: number, limits: PaceLimits): number {
  const capped = limits.maxRowsPerSecond === null ? pace : Math.min(pace, limits.maxRowsPerSecond);
  return Math.max(limits.minRowsPerSecond, capped);
}

/**
 * One tick of the pace controller, a gradient controller on rows/s. With the signal's excess
 * e = (signal / baseline − 1) / budget (0: the copy costs nothing, 1: at target):
 * - over target (e > 1): the pace is cut at once by setpoint/signal, between ×0.5 and ×0.9, and slow
 *   start ends; the cut applies to the achieved rate where the pace ran ahead of it;
 * - otherwise the pace moves by 1 + 0.1 × (s − e) / s with s = {@link SETPOINT_SHARE}: ×1.1 when the
 *   copy costs nothing, ×1 at the setpoint, a little less above it (×1.5 per tick in slow start, which
 *   lasts while e ≤ 0.5, on the smoothed signal and on the raw window alike). The step shrinks as the signal nears the setpoint, so the pace settles
 *   instead of sawing like AIMD, and it is measured in budgets, so a small budget converges as
 *   fast as a large one;
 * - never above 2 × the achieved rate (no wind-up when the copy cannot use the pace), never under the
 *   floor, never over `maxRowsPerSecond`.
 * The signal is an EWMA of the window p99s, so noise neither cuts nor grows the pace much; a window
 * over {@link HARD_BREACH_RATIO} × target is a breach by itself, so a load step is answered in the
 * tick it appears in. After a cut the EWMA starts afresh, the caller judges only samples taken
 * since ({@link evidenceSpanMs}), and for {@link RECOVERY_MS} the pace is cut again on such fresh
 * evidence or eased by the gradient, never grown: a burst of slow samples cuts once, however long it stays in the
 * windows, while a breach that persists is cut again as soon as fresh samples show it.
 *
 * @param tick - the readings; `baselineP99Ms` must be > 0 and `observedP99Ms` ≥ 0.
 * @throws RangeError for a non-positive baseline or a negative reading.
 * @example
 * ```ts
 * const limits = { latencyBudget: 0.3, minRowsPerSecond: 200, maxRowsPerSecond: null };
 * let state = initialPaceState(limits);
 * state = nextPace(state, { observedP99Ms: 8, baselineP99Ms: 2, achievedRowsPerSecond: 1000, nowMs: 0 }, limits).state;
 * state.paceRowsPerSecond; // 500: a p99 four times the baseline halves the pace (the largest cut)
 * ```
 */
export function nextPace(state: PaceState, tick: PaceTick, limits: PaceLimits): PaceDecision {
  const { observedP99Ms: observed, baselineP99Ms: baseline, achievedRowsPerSecond: achieved, nowMs } = tick;
  if (!(baseline > 0)) throw new RangeError(`baselineP99Ms must be > 0, got ${baseline}`);
  if (!(observed >= 0)) throw new RangeError(`observedP99Ms must be ≥ 0, got ${observed}`);
  const target = latencyTargetMs(baseline, limits.latencyBudget);
  const setpoint = latencySetpointMs(baseline, limits.latencyBudget);
  // The smoothed signal restarts at a cut (ADR 014, "one cut per window of evidence"): it judges
  // only the samples after it.
  const cutAt = state.lastCutAtMs ?? null;
  const recovering = cutAt !== null && nowMs >= cutAt && nowMs - cutAt < RECOVERY_MS;
  const incomplete = tick.incomplete === true;
  const smoothed = state.smoothedP99Ms === null ? observed : state.smoothedP99Ms + SIGNAL_SMOOTHING * (observed - state.smoothedP99Ms);
  // A hard breach is judged on the raw window: a load step is answered in the tick it shows up in,
  // while one noisy window a little over target is left to the smoothed signal.
  const signal = Math.max(observed > HARD_BREACH_RATIO * target ? observed : smoothed, Number.MIN_VALUE);
  // The signal's excess over its baseline in units of the budget: 0 = no effect, 1 = at target.
  const excess = (signal / baseline - 1) / limits.latencyBudget;
  // Slow start also ends on the raw window (HyStart's delay-increase exit, Ha & Rhee 2011): the
  // smoothed signal lags a ×1.5 step by a tick, and after a relearn that lag overshot the best pace
  // by a third.
  const rawExcess = (observed / baseline - 1) / limits.latencyBudget;
  let pace = state.paceRowsPerSecond;
  let slowStart = state.slowStart;
  const breach = signal > target;
  if (breach) {
    slowStart = false;
    // The cut applies to what the copy achieved when the pace ran ahead of it, as TCP sets its
    // threshold from the data in flight and not from the window (RFC 5681 §3.1, eq. 4): a pace far
    // over what the copy does would take several cuts before the copy slowed at all.
    const running = achieved !== null && achieved > 0 ? Math.min(pace, achieved) : pace;
    pace = running * Math.min(0.9, Math.max(MAX_PACE_CUT, setpoint / signal));
  } else {
    const gradient = Math.max(0.9, 1 + ((MAX_PACE_GROWTH - 1) * (SETPOINT_SHARE - excess)) / SETPOINT_SHARE);
    if (recovering || incomplete) {
      // Not over target on the samples since the cut, but not yet a short window of them (or not
      // of every signal): the gradient may still ease the pace (between setpoint and target), never grow it.
      pace *= Math.min(1, gradient);
    } else if (slowStart && excess <= 0.5 && rawExcess <= 0.5) {
      pace *= SLOW_START_GROWTH;
    } else {
      slowStart = false;
      pace *= gradient;
    }
  }
  if (achieved !== null && achieved >= 0) pace = Math.min(pace, Math.max(2 * achieved, limits.minRowsPerSecond, achieved === 0 ? Math.max(START_PACE_ROWS_PER_SECOND, state.paceRowsPerSecond) : 0));
  pace = clampPace(pace, limits);

  // A cut that lowered the pace starts a new window of evidence; a breach at the floor lowers
  // nothing, and the smoothed signal goes on (it is what tells the workload changed, below).
  const cut = breach && pace < state.paceRowsPerSecond;
  const atFloor = pace <= limits.minRowsPerSecond * 1.0001;
  // A tick on incomplete evidence is no verdict on the streak (a signal at its floor over target
  // that has no reading this tick must not restart the count towards a relearn).
  const floorBreachTicks = breach && atFloor ? state.floorBreachTicks + 1 : incomplete && atFloor ? state.floorBreachTicks : 0;
  const relearnBaseline = floorBreachTicks >= RELEARN_AFTER_TICKS;
  const free = achieved !== null && pace > FREE_RUNNING_RATIO * achieved && !breach;
  const freeTicks = free ? state.freeTicks + 1 : 0;
  const holding = breach ? true : state.holding && freeTicks < RELEASE_AFTER_TICKS;
  return {
    state: {
      paceRowsPerSecond: pace,
      smoothedP99Ms: cut ? null : smoothed,
      slowStart,
      holding,
      floorBreachTicks: relearnBaseline ? 0 : floorBreachTicks,
      freeTicks,
      lastCutAtMs: cut ? nowMs : cutAt,
    },
    relearnBaseline,
    holdingChanged: holding !== state.holding,
  };
}

/** p50 and p99 of a window of samples, ms; `null` quantiles for an empty window. */
export interface WindowQuantiles {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

/**
 * The q-quantile of `values` with linear interpolation between closest ranks (Hyndman & Fan type 7,
 * what numpy and R use by default).
 * @param q - in [0, 1].
 * @returns `null` for no values.
 * @throws RangeError for q outside [0, 1].
 */
export function quantile(values: readonly number[], q: number): number | null {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`q must be in [0, 1], got ${q}`);
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return (sorted[lo] as number) + (h - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
}

/** {@link WindowQuantiles} of `values`. */
export function windowQuantiles(values: readonly number[]): WindowQuantiles {
  return { count: values.length, p50Ms: quantile(values, 0.5), p99Ms: quantile(values, 0.99) };
}

/** When the guard holds the backfill back to measure its baseline. */
export interface BaselineSchedule {
  /** A baseline window starts this long after the previous one ended, ms. @defaultValue 60 000 */
  readonly everyMs: number;
  /** Length of a window (the backfill held back), ms. @defaultValue 2 500 */
  readonly holdMs: number;
  /** The first part of a window, whose samples are discarded while chunks in flight finish, ms. @defaultValue 500 */
  readonly drainMs: number;
  /** Samples a window needs to replace the baseline. @defaultValue 20 */
  readonly minSamples: number;
}

/** The default schedule: 2.5 s of every 62.5 s held back (4 %, under the 5 % budget). */
export const BASELINE_SCHEDULE: BaselineSchedule = { everyMs: 60_000, holdMs: 2_500, drainMs: 500, minSamples: 20 };

/** The share of wall time a schedule holds the backfill back, a fraction. */
export function baselineDutyCycle(schedule: BaselineSchedule): number {
  return schedule.holdMs / (schedule.holdMs + schedule.everyMs);
}

/**
 * Fewest statements the baseline rate must predict in a window for other clients' throughput to be
 * judged there: with 500 expected arrivals a Poisson count's own noise is ±4.5 % (1/√n), a sixth of
 * the default budget, so only a fall the budget cares about reads as one.
 */
export const MIN_JUDGED_STATEMENTS = 500;

/** Statements that finished over a span: what the throughput judge reads. */
export interface StatementCount {
  /** How many finished in the span. */
  readonly calls: number;
  /** The span, seconds (> 0). */
  readonly seconds: number;
}

/** The rate of `window`, statements/s; `null` without a window or a span. */
export function statementsPerSecond(window: StatementCount | null): number | null {
  return window !== null && window.seconds > 0 ? window.calls / window.seconds : null;
}

/**
 * Other clients' throughput judged as a latency (ADR 014, "Throughput as the backstop"): by
 * Little's law a closed loop of N clients with time R per request runs at X = N / R, so the rate
 * with the backfill held back over the rate now is the rise of the time each of its requests takes,
 * on the same scale as the probes' p99 ratios (1 = no effect, 1 + budget = at target).
 *
 * Judged only where the baseline rate predicts at least {@link MIN_JUDGED_STATEMENTS} statements in
 * the window (a quiet database has no rate worth judging); a window with none is a ratio of
 * `Infinity` when that many were expected. A rate that fell because traffic went away reads the same
 * as one the copy slowed: the guard answers it by cutting to its floor and, after
 * `RELEARN_AFTER_TICKS` there, measuring a new baseline, which learns the lower rate.
 *
 * @param baselinePerSecond - the rate with the backfill held back, statements/s, or `null`.
 * @param window - the statements of the window judged, or `null` without two readings.
 * @returns the ratio (≥ 0), or `null` when not judged.
 * @example
 * ```ts
 * throughputRatio(14_500, { calls: 32_500, seconds: 5 }); // ≈ 2.23: each request takes 2.2× as long
 * throughputRatio(50, { calls: 250, seconds: 5 });        // null: 250 expected, too few to judge
 * ```
 */
export function throughputRatio(baselinePerSecond: number | null, window: StatementCount | null): number | null {
  const observed = statementsPerSecond(window);
  if (baselinePerSecond === null || !(baselinePerSecond > 0) || window === null || observed === null) return null;
  if (baselinePerSecond * window.seconds < MIN_JUDGED_STATEMENTS) return null;
  return observed > 0 ? baselinePerSecond / observed : Infinity;
}
