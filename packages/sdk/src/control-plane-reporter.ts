import { DependencyUnavailableError, ERROR_CODES, LATENCY_BUCKETS_MS, TidewayError, latencyBucket, type DualWriteReport, type ErrorCode, type ShadowResult, type ShadowResultBatch } from '@tideway/core';
import type { SdkErrorEvent } from './sdk-error-event.js';

/**
 * The part of `fetch` the SDK uses; the global `fetch` fits. Inject a fake in unit tests.
 *
 * @example
 * ```ts
 * const fakeFetch: FetchLike = async () => new Response(null, { status: 202 });
 * ```
 */
export type FetchLike = (
  url: string,
  init: { method: 'POST'; headers: Record<string, string>; body: string; signal: AbortSignal },
) => Promise<{ readonly ok: boolean; readonly status: number; text(): Promise<string> }>;

/** Largest batch the control plane accepts (`ShadowResultBatch.results`, `DualWriteReport.failures`). */
export const MAX_BATCH_ITEMS = 1000;

/** One failed new-side write, as `DualWriteReport.failures[]` carries it. */
export type DualWriteFailure = DualWriteReport['failures'][number];

/** Options of {@link ControlPlaneReporter}; every field is required (the client fills defaults). */
export interface ControlPlaneReporterOptions {
  /** Control-plane base URL, e.g. `https://tideway.internal:7070` (no trailing `/v1`). */
  readonly baseUrl: string;
  /** API token, sent as `Authorization: Bearer <token>`. */
  readonly token: string;
  /** The migration id (the `:id` of the routes). */
  readonly migrationId: string;
  /** Shadow results per POST, 1–1000. */
  readonly batchSize: number;
  /** Time between flushes while anything is pending, milliseconds. */
  readonly flushIntervalMs: number;
  /** Shadow results (and, separately, dual-write failures) held at most, including a batch in flight. */
  readonly maxBufferedResults: number;
  /** A POST not answered within this is abandoned and retried later, milliseconds. */
  readonly requestTimeoutMs: number;
  readonly fetch: FetchLike;
  /** Never throws (the client wraps the application's hook). */
  readonly onError: (event: SdkErrorEvent) => void;
}

/** Counters of {@link ControlPlaneReporter}. */
export interface ReporterStats {
  /** Shadow results the control plane accepted. */
  readonly sent: number;
  /** POSTs that failed (network error, timeout, non-2xx), both routes. */
  readonly sendFailures: number;
  /** Shadow results dropped: buffer full, or refused by the control plane with a 4xx. */
  readonly dropped: number;
  /** Shadow results held now, including a batch in flight. */
  readonly buffered: number;
  /** Dual-write failures dropped (buffer full, or refused with a 4xx): those keys are not re-driven. */
  readonly droppedDualWriteFailures: number;
}

type SendOutcome = 'ok' | 'retry' | 'refused';

/**
 * Buffers shadow results and dual-write counts/failures and POSTs them to the control plane:
 * shadow results in batches of `batchSize` as soon as a batch is full, and everything pending every
 * `flushIntervalMs` (one timer, armed only while something is pending, `unref()`ed so it never keeps
 * the process alive). One POST is in flight at a time.
 *
 * Memory is bounded: at most `maxBufferedResults` shadow results are held (a batch in flight
 * counts); beyond that new results are dropped and counted, and the count goes out as `dropped`
 * with the next batch. A failed POST (network error, timeout, 408, 429, 5xx) puts its batch back
 * (only if it fits) for the next flush and stops size-triggered sends until a POST succeeds; a
 * refused POST (any other 4xx: retrying cannot help) drops its batch. Never throws and never rejects.
 *
 * @example
 * ```ts
 * const reporter = new ControlPlaneReporter({
 *   baseUrl: 'http://127.0.0.1:7070', token: 't', migrationId: 'm-1', batchSize: 200,
 *   flushIntervalMs: 1000, maxBufferedResults: 10_000, requestTimeoutMs: 10_000,
 *   fetch: (url, init) => fetch(url, init), onError: () => {},
 * });
 * reporter.addDualWrite();
 * await reporter.close();
 * ```
 */
export class ControlPlaneReporter {
  private readonly options: ControlPlaneReporterOptions;
  private readonly batchSize: number;
  private readonly resultsUrl: string;
  private readonly reportsUrl: string;
  private results: ShadowResult[] = [];
  private inFlight = 0;
  private failures: DualWriteFailure[] = [];
  private unreportedWrites = 0;
  /** The old store's call latencies since the last report (`LATENCY_BUCKETS_MS` counts, summed ms). */
  private latency = { counts: Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0), sumMs: 0, calls: 0 };
  private unreportedDropped = 0;
  private counters = { sent: 0, sendFailures: 0, dropped: 0, droppedDualWriteFailures: 0 };
  private overflowing = false;
  /** Set after a failed POST; size-triggered sends wait for the timer until a POST succeeds. */
  private backingOff = false;
  private sizeSendQueued = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** Serialises sends: one POST in flight at a time. Never rejects. */
  private tail: Promise<void> = Promise.resolve();

  constructor(options: ControlPlaneReporterOptions) {
    this.options = options;
    this.batchSize = Math.min(options.batchSize, MAX_BATCH_ITEMS);
    const base = `${options.baseUrl.replace(/\/+$/, '')}/v1/migrations/${encodeURIComponent(options.migrationId)}`;
    this.resultsUrl = `${base}/shadow-results`;
    this.reportsUrl = `${base}/dual-write-reports`;
  }

  /** Queues one shadow result (or drops and counts it when the buffer is full or the reporter closed). */
  addResult(result: ShadowResult): void {
    if (this.closed || this.results.length + this.inFlight >= this.options.maxBufferedResults) {
      this.counters.dropped++;
      this.unreportedDropped++;
      if (!this.overflowing) {
        this.overflowing = true;
        this.options.onError({
          kind: 'overflow',
          error: new TidewayError('DEPENDENCY_UNAVAILABLE', `shadow-result buffer full (${this.options.maxBufferedResults}); dropping new results`, {
            maxBufferedResults: this.options.maxBufferedResults,
          }),
        });
      }
      return;
    }
    this.overflowing = false;
    this.results.push(result);
    if (this.results.length >= this.batchSize && !this.backingOff && !this.sizeSendQueued) {
      this.sizeSendQueued = true;
      void this.enqueue(async () => {
        this.sizeSendQueued = false;
        while (this.results.length >= this.batchSize && !this.backingOff) {
          if (!(await this.sendResultBatch())) break;
        }
      });
    }
    this.arm();
  }

  /** Counts one dual write (both sides attempted) for the next report. */
  addDualWrite(): void {
    this.unreportedWrites++;
    this.arm();
  }

  /**
   * Counts one call the application made to the old store (`ms`, wall time) for the next report:
   * the latency guard's application signal (ADR 014).
   */
  addLatency(ms: number): void {
    if (this.closed || !Number.isFinite(ms) || ms < 0) return;
    (this.latency.counts[latencyBucket(ms)] as number)++;
    this.latency.sumMs += ms;
    this.latency.calls++;
    this.arm();
  }

  /** Queues the key of a failed new-side write for the next report, so the control plane re-drives it. */
  addDualWriteFailure(failure: DualWriteFailure): void {
    if (failure.key.length < 1 || failure.key.length > 16 || failure.key.some((part) => part.length > 1000)) {
      // The report schema would refuse it, and with it every other failure of that report.
      this.counters.droppedDualWriteFailures++;
      this.options.onError({
        kind: 'dual_write',
        side: 'new',
        key: failure.key.join(','),
        error: new TidewayError('VALIDATION_FAILED', 'dual-write failure key has no values, more than 16 or one over 1,000 characters: not reportable', { parts: failure.key.length }),
      });
      return;
    }
    if (this.closed || this.failures.length >= this.options.maxBufferedResults) {
      this.counters.droppedDualWriteFailures++;
      this.options.onError({
        kind: 'overflow',
        key: failure.key.join(','),
        error: new TidewayError('DEPENDENCY_UNAVAILABLE', 'dual-write failure dropped: its key will not be re-driven', { key: failure.key }),
      });
      return;
    }
    this.failures.push(failure);
    this.arm();
  }

  /** Sends everything pending now (after any send in progress). Resolves when done or after the first failed POST of each route. */
  flush(): Promise<void> {
    return this.enqueue(() => this.sendAll());
  }

  /** Stops the timer, refuses new items and makes a final flush. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Current counters. */
  stats(): ReporterStats {
    return { ...this.counters, buffered: this.results.length + this.inFlight };
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const run = this.tail.then(op).catch((error: unknown) => this.options.onError({ kind: 'send', error }));
    this.tail = run;
    return run;
  }

  private hasPending(): boolean {
    return this.results.length > 0 || this.unreportedWrites > 0 || this.failures.length > 0 || this.latency.calls > 0;
  }

  /** Arms the flush timer when something is pending and no timer runs. */
  private arm(): void {
    if (this.timer !== undefined || this.closed || !this.hasPending()) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().then(() => this.arm());
    }, this.options.flushIntervalMs);
    this.timer.unref?.();
  }

  private async sendAll(): Promise<void> {
    while (this.results.length > 0) {
      if (!(await this.sendResultBatch())) break;
    }
    while (this.unreportedWrites > 0 || this.failures.length > 0 || this.latency.calls > 0) {
      if (!(await this.sendReport())) break;
    }
  }

  /** POSTs the oldest batch. Returns whether to go on sending. */
  private async sendResultBatch(): Promise<boolean> {
    const batch = this.results.splice(0, this.batchSize);
    if (batch.length === 0) return false;
    this.inFlight = batch.length;
    const dropped = this.unreportedDropped;
    const body: ShadowResultBatch = dropped > 0 ? { results: batch, dropped } : { results: batch };
    const outcome = await this.post(this.resultsUrl, body);
    this.inFlight = 0;
    switch (outcome) {
      case 'ok':
        this.counters.sent += batch.length;
        this.unreportedDropped -= dropped;
        this.backingOff = false;
        return true;
      case 'refused':
        this.counters.dropped += batch.length;
        this.unreportedDropped += batch.length;
        return true;
      case 'retry':
        this.backingOff = true;
        if (this.results.length + batch.length <= this.options.maxBufferedResults) this.results.unshift(...batch);
        else {
          this.counters.dropped += batch.length;
          this.unreportedDropped += batch.length;
        }
        return false;
    }
  }

  /** POSTs one dual-write report (all unreported writes, up to 1,000 failures). Returns whether to go on. */
  private async sendReport(): Promise<boolean> {
    const writes = this.unreportedWrites;
    const failures = this.failures.slice(0, MAX_BATCH_ITEMS);
    // Latency is a reading of now: taken out of the buffer whatever the outcome (a lost one is not resent late).
    const latency = this.latency;
    this.latency = { counts: Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0), sumMs: 0, calls: 0 };
    const body: DualWriteReport = latency.calls > 0 ? { writes, failures, latency: { counts: latency.counts, sumMs: latency.sumMs } } : { writes, failures };
    const outcome = await this.post(this.reportsUrl, body);
    switch (outcome) {
      case 'ok':
        this.unreportedWrites -= writes;
        this.failures.splice(0, failures.length);
        this.backingOff = false;
        return true;
      case 'refused':
        this.unreportedWrites -= writes;
        this.failures.splice(0, failures.length);
        this.counters.droppedDualWriteFailures += failures.length;
        return true;
      case 'retry':
        return false;
    }
  }

  private async post(url: string, body: unknown): Promise<SendOutcome> {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.requestTimeoutMs);
      timer.unref?.();
    });
    try {
      const exchange = (async () => {
        const res = await this.options.fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.options.token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: controller.signal,
        });
        return { res, text: await res.text().catch(() => '') };
      })();
      exchange.catch(() => {}); // a late rejection after a timeout must not be unhandled
      const answer = await Promise.race([exchange, timedOut]);
      if (answer === 'timeout') {
        controller.abort();
        this.counters.sendFailures++;
        this.options.onError({ kind: 'send', error: new DependencyUnavailableError('control plane', `POST ${url} not answered within ${this.options.requestTimeoutMs} ms`) });
        return 'retry';
      }
      if (answer.res.ok) return 'ok';
      this.counters.sendFailures++;
      const status = answer.res.status;
      const retry = status === 408 || status === 429 || status >= 500;
      this.options.onError({ kind: 'send', error: answerError(url, status, answer.text, retry) });
      return retry ? 'retry' : 'refused';
    } catch (error) {
      this.counters.sendFailures++;
      this.options.onError({ kind: 'send', error: new DependencyUnavailableError('control plane', `POST ${url} failed`, { cause: error }) });
      return 'retry';
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The error for a non-2xx answer, keeping the control plane's `{ error: { code, message } }` when present. */
function answerError(url: string, status: number, text: string, retry: boolean): TidewayError {
  let code: ErrorCode = retry ? 'DEPENDENCY_UNAVAILABLE' : 'INTERNAL';
  let message = `POST ${url} answered HTTP ${status}`;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const c = parsed.error?.code;
    if (typeof c === 'string' && (ERROR_CODES as readonly string[]).includes(c)) code = c as ErrorCode;
    if (typeof parsed.error?.message === 'string') message += `: ${parsed.error.message}`;
  } catch {
    // not JSON: keep the status line
  }
  return new TidewayError(code, message, { status, url, retried: retry });
}
