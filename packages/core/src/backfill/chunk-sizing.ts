/** Smoothing factor of the copy-rate EWMA: the weight of the newest chunk. */
export const CHUNK_RATE_SMOOTHING = 0.3;
/** Largest growth of the chunk size from one chunk to the next. */
export const MAX_CHUNK_GROWTH = 1.5;

/** Inputs of {@link nextChunkRows}. */
export interface ChunkSizingInput {
  /** Rows of the chunk just finished. */
  readonly rows: number;
  /** Its server-side execution time, milliseconds (not queue wait). */
  readonly durationMs: number;
  /** The size that chunk was planned with. */
  readonly previousChunkRows: number;
  /** The smoothed rate before this chunk, rows per millisecond; `null` for the first chunk. */
  readonly previousRowsPerMs: number | null;
  readonly targetChunkMs: number;
  readonly minChunkRows: number;
  readonly maxChunkRows: number;
}

/**
 * Adaptive chunk size: aims the next chunk at `targetChunkMs` of server-side execution time. The
 * copy rate (rows/ms) is smoothed with an exponentially weighted moving average, the ideal size is
 * `rate × targetChunkMs`, growth is capped at ×1.5 per step (shrinking is not capped: a slow chunk
 * must shrink the next one at once), and the result is clamped to [min, max]. Chunks too small to
 * measure (under 1 ms or 0 rows) leave the rate as it was. The shape follows the feedback loops
 * of gh-ost's and pt-online-schema-change's chunk-time targets (pt-osc `--chunk-time`).
 *
 * @returns the next chunk size in rows and the new smoothed rate.
 * @example
 * ```ts
 * nextChunkRows({ rows: 1000, durationMs: 100, previousChunkRows: 1000, previousRowsPerMs: null,
 *   targetChunkMs: 500, minChunkRows: 100, maxChunkRows: 50000 }); // { chunkRows: 1500, rowsPerMs: 10 }
 * ```
 */
export function nextChunkRows(input: ChunkSizingInput): { chunkRows: number; rowsPerMs: number | null } {
  const { rows, durationMs, previousChunkRows, previousRowsPerMs, targetChunkMs, minChunkRows, maxChunkRows } = input;
  let rowsPerMs = previousRowsPerMs;
  if (rows > 0 && durationMs >= 1) {
    const observed = rows / durationMs;
    rowsPerMs = previousRowsPerMs === null ? observed : CHUNK_RATE_SMOOTHING * observed + (1 - CHUNK_RATE_SMOOTHING) * previousRowsPerMs;
  }
  const ideal = rowsPerMs === null ? previousChunkRows : rowsPerMs * targetChunkMs;
  const capped = Math.min(ideal, previousChunkRows * MAX_CHUNK_GROWTH);
  const chunkRows = Math.max(minChunkRows, Math.min(maxChunkRows, Math.floor(capped)));
  return { chunkRows, rowsPerMs };
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * a uniformly random delay in [0, min(capMs, baseMs × 2^(attempt−1))].
 *
 * @param attempt - the attempt that just failed, from 1.
 * @param random - a source of [0, 1) numbers (injectable for tests). @defaultValue Math.random
 * @returns milliseconds to wait before the next attempt.
 */
export function retryDelayMs(attempt: number, baseMs = 500, capMs = 30_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}
