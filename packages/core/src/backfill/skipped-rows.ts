/**
 * Which copy failures are about the data of some rows (and are isolated by bisecting the chunk)
 * rather than about the statement, the connection or the database as a whole.
 *
 * PostgreSQL's SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html):
 * class 22 "data exception" (a cast that fails, a value out of range, a string too long, a division
 * by zero in a mapping expression) and class 23 "integrity constraint violation" (NOT NULL, CHECK,
 * UNIQUE on another column than the key, FOREIGN KEY, EXCLUSION). Everything else (a timeout, a
 * lock, a dropped column, a permission) fails every row alike: splitting would not find a culprit.
 *
 * A statement-level data error (a mapping that divides by zero everywhere) also bisects: every row is
 * a culprit. `abortCriteria.maxSkippedRows` bounds that — past it the migration fails instead of
 * skipping the whole table one row at a time.
 *
 * @param sqlstate - the five-character SQLSTATE of the error (`error.code` of node-postgres), or
 *   `undefined` for an error that is not the database's.
 * @returns whether the error is a row's data problem.
 */
export function isRowDataError(sqlstate: string | undefined): boolean {
  return typeof sqlstate === 'string' && /^(22|23)[0-9A-Z]{3}$/.test(sqlstate);
}

/**
 * Whether a row data error may clear by itself: a foreign key violation (the parent row is still
 * being copied), a unique or exclusion violation (a row the sync wrote meanwhile). Those are retried
 * once before a chunk is bisected; the others (a cast, a CHECK, a NOT NULL) repeat on every attempt.
 */
export function mayClearByItself(sqlstate: string | undefined): boolean {
  return sqlstate === '23503' || sqlstate === '23505' || sqlstate === '23P01';
}

/** How a skipped row was resolved: copied after a fix, or left out on purpose by an admin. */
export type SkippedRowResolution = 'redriven' | 'accepted';

/**
 * How many chunk splits on data errors a backfill run may make before it fails the migration.
 * Splits are taken in chunk order, one level of halving across the table at a time, so an error on
 * every row (a mapping that divides by zero) would halve every chunk of the table again and again
 * before the first one-row chunk is reached; this bound fails such a run after about as many
 * splits as `maxSkippedRows + 1` bad rows would need, however large the table: each isolated row
 * costs at most log2(chunk rows) splits, doubled for bad rows that share a chunk.
 *
 * @param maxSkippedRows - `backfill.maxSkippedRows` (≥ 0).
 * @param maxChunkRows - `backfill.maxChunkRows` (≥ 1): the largest chunk a bisection starts from.
 * @returns the number of splits allowed, ≥ 2.
 * @example
 * ```ts
 * dataErrorSplitBudget(100, 50_000); // 3232: 101 rows × 2 × 16 levels
 * ```
 */
export function dataErrorSplitBudget(maxSkippedRows: number, maxChunkRows: number): number {
  return (Math.max(0, Math.floor(maxSkippedRows)) + 1) * 2 * Math.max(1, Math.ceil(Math.log2(Math.max(2, maxChunkRows))));
}
