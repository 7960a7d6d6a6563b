import { DependencyUnavailableError } from '@tideway/core';
import { isConnectionError } from '@tideway/db';

/** First ceiling of the transient-retry backoff, milliseconds. */
export const TRANSIENT_RETRY_BASE_MS = 250;
/** Largest transient-retry delay, milliseconds: a dependency that comes back is used again within this. */
export const TRANSIENT_RETRY_CAP_MS = 5_000;

/**
 * True when `error` is one that the same work survives by waiting: a lost or refused PostgreSQL
 * connection (orchestrator or datasource: ECONNREFUSED, ECONNRESET, SQLSTATE 08xxx, 57P01–57P03,
 * "Connection terminated unexpectedly", an exhausted connect timeout; see `isConnectionError` in
 * @tideway/db) or a {@link DependencyUnavailableError} (a datasource that could not be reached,
 * Redis not answering). Leased work treats these as interruptions — retried with backoff and
 * jitter, never counted toward `maxAttempts`, never a failed unit, never a process exit (ADR 007).
 */
export function isTransientError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DependencyUnavailableError) return true;
  }
  return isConnectionError(error);
}

/**
 * Names what failed in a transient error: the `dependency` of a {@link DependencyUnavailableError}
 * (`datasource "main"`, `redis`, `postgres`) found on the error or its causes, else `fallback`.
 */
export function dependencyOf(error: unknown, fallback: string): string {
  for (let e: unknown = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DependencyUnavailableError) return String(e.details['dependency'] ?? fallback);
  }
  return fallback;
}

/**
 * Wraps a transient error of a call to `dependency` as a {@link DependencyUnavailableError} naming it
 * (other errors are returned as they are), so whoever handles it later knows what failed.
 */
export function asDependencyError(dependency: string, error: unknown): unknown {
  if (error instanceof DependencyUnavailableError || !isTransientError(error)) return error;
  return new DependencyUnavailableError(dependency, error instanceof Error ? error.message : String(error), { cause: error });
}

/** The message of an error and of the causes under it, `a: b: c` (for `last_error` and events). */
export function errorMessage(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const m = e instanceof Error ? e.message : String(e);
    if (m && !parts.some((p) => p.includes(m))) parts.push(m);
  }
  return parts.join(': ') || 'unknown error';
}

/**
 * Delay before retry number `retry` (1, 2, …) after a transient error: "full jitter" exponential
 * backoff (AWS Architecture Blog, "Exponential Backoff and Jitter"), a uniform draw in
 * [ceiling / 2, ceiling) with ceiling = min(cap, base × 2^(retry − 1)). The lower half-bound keeps
 * a burst of workers from retrying at once against a server that is still starting.
 *
 * @param retry - 1 for the first retry. @param random - [0, 1) source. @defaultValue Math.random
 * @returns milliseconds, within [TRANSIENT_RETRY_BASE_MS / 2, TRANSIENT_RETRY_CAP_MS).
 * @example
 * ```ts
 * transientRetryDelayMs(1, () => 0); // 125
 * transientRetryDelayMs(10, () => 0.999); // 4995
 * ```
 */
export function transientRetryDelayMs(retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(TRANSIENT_RETRY_CAP_MS, TRANSIENT_RETRY_BASE_MS * 2 ** Math.max(0, retry - 1));
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}
