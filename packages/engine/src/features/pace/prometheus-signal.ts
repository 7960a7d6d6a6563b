import type { PrometheusSignalOptions, SpecProblem } from '@tideway/core';
import { Periodic } from './periodic.js';

/** The spec field of the Prometheus signal. */
export const PROMETHEUS_FIELD = 'throttle.latencyGuard.prometheus';
/** How often the guard evaluates the query, milliseconds (Prometheus scrapes every few seconds; more often only repeats a value). */
export const PROMETHEUS_INTERVAL_MS = 1000;
/** A value older than this is no signal, milliseconds (the server stopped answering). */
export const PROMETHEUS_STALE_MS = 5000;
/** How long one query may take, milliseconds. */
const QUERY_TIMEOUT_MS = 2000;
/** The largest answer read, bytes: one number needs a few hundred. */
const MAX_BODY_BYTES = 1 << 20;

/** Why a query gave no number, naming the spec field at fault. */
export class PrometheusQueryError extends Error {
  constructor(
    readonly field: 'url' | 'query',
    message: string,
  ) {
    super(message);
    this.name = 'PrometheusQueryError';
  }
}

interface QueryAnswer {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/**
 * Evaluates `options.query` once on the Prometheus server (`GET <url>/api/v1/query?query=…`, the
 * HTTP API's instant query) and returns its one number.
 * @returns the value, in the query's unit.
 * @throws PrometheusQueryError `url` when the server does not answer (connection refused, timeout after 2 s, not the Prometheus API),
 *   `query` when it refuses the expression or the result is not exactly one finite number (no series, several series, a string, NaN).
 */
export async function queryPrometheus(options: Pick<PrometheusSignalOptions, 'url' | 'query'>, timeoutMs = QUERY_TIMEOUT_MS): Promise<number> {
  const endpoint = new URL('api/v1/query', options.url.endsWith('/') ? options.url : `${options.url}/`);
  endpoint.searchParams.set('query', options.query);
  let response: Response;
  try {
    response = await fetch(endpoint, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' }, redirect: 'error' });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new PrometheusQueryError('url', `no answer from ${endpoint.origin}: ${cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error))}`);
  }
  const text = await readBounded(response);
  let answer: QueryAnswer;
  try {
    answer = JSON.parse(text) as QueryAnswer;
  } catch {
    throw new PrometheusQueryError('url', `${endpoint.origin}${endpoint.pathname} answered ${response.status} with something other than the Prometheus API's JSON`);
  }
  if (answer.status !== 'success') {
    const field = answer.errorType === 'bad_data' || response.status === 400 || response.status === 422 ? 'query' : 'url';
    throw new PrometheusQueryError(field, `Prometheus refused the query (${answer.errorType ?? response.status}): ${answer.error ?? 'no reason given'}`);
  }
  return oneNumber(answer.data);
}

/** The one number of a query's result: a scalar, or a vector of exactly one sample. */
function oneNumber(data: QueryAnswer['data']): number {
  const result = data?.result;
  let raw: unknown;
  if (data?.resultType === 'scalar') raw = (result as [number, string] | undefined)?.[1];
  else if (data?.resultType === 'vector') {
    const series = result as { metric: Record<string, string>; value: [number, string] }[];
    if (series.length !== 1) throw new PrometheusQueryError('query', `must give one number; it gave ${series.length} series${series.length > 1 ? ' (aggregate them, e.g. max(...))' : ' (no data yet, or a typo in a metric name)'}`);
    raw = series[0]?.value[1];
  } else throw new PrometheusQueryError('query', `must give one number; it gave a ${data?.resultType ?? 'nothing'}`);
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new PrometheusQueryError('query', `must give a finite number; it gave ${String(raw)}`);
  return value;
}

async function readBounded(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      throw new PrometheusQueryError('query', `the answer is over ${MAX_BODY_BYTES} bytes: the query must give one number`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Checks the Prometheus signal against its server (at start and on PATCH): the query must run and
 * give one number now.
 * @returns the problem, naming `…prometheus.url` or `…prometheus.query`; or none.
 */
export async function checkPrometheusLive(options: PrometheusSignalOptions): Promise<SpecProblem[]> {
  try {
    await queryPrometheus(options);
    return [];
  } catch (error) {
    if (error instanceof PrometheusQueryError) return [{ field: `${PROMETHEUS_FIELD}.${error.field}`, problem: error.message }];
    throw error;
  }
}

/** The newest reading of a {@link PrometheusSignal}. */
export interface PrometheusReading {
  /** The query's value, or `null` when the newest evaluation failed or none is fresh. */
  readonly value: number | null;
  /** Why the newest evaluation failed, or `null`. */
  readonly error: string | null;
}

/**
 * A Prometheus query evaluated every {@link PROMETHEUS_INTERVAL_MS} while started (one query in
 * flight at a time). A value older than {@link PROMETHEUS_STALE_MS} is no signal: the guard then
 * judges the probe's signals alone.
 */
export class PrometheusSignal {
  #value: number | null = null;
  #at = 0;
  #error: string | null = null;
  readonly #loop: Periodic;

  constructor(
    readonly options: PrometheusSignalOptions,
    intervalMs = PROMETHEUS_INTERVAL_MS,
  ) {
    this.#loop = new Periodic(intervalMs, () => this.#evaluate());
  }

  /** Starts evaluating (idempotent). */
  start(): void {
    this.#loop.start();
  }

  stop(): void {
    this.#loop.stop();
  }

  /** The newest fresh value and the newest error. */
  reading(now = Date.now()): PrometheusReading {
    return { value: this.#value !== null && now - this.#at <= PROMETHEUS_STALE_MS ? this.#value : null, error: this.#error };
  }

  async #evaluate(): Promise<void> {
    try {
      this.#value = await queryPrometheus(this.options);
      this.#at = Date.now();
      this.#error = null;
    } catch (error) {
      this.#error = error instanceof Error ? error.message : String(error);
    }
  }
}
