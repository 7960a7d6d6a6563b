import type pg from 'pg';

/**
 * When `signal` aborts (a heartbeat gave its lease up), asks PostgreSQL to cancel the statement
 * `client` is running: `SELECT pg_cancel_backend(<pid>)` on another connection of `pool`. The
 * statement then fails with SQLSTATE 57014 and its transaction rolls back, so a worker that lost its
 * lease stops loading the datasource instead of finishing work another worker redoes. Best effort:
 * a failed cancel is ignored (the pre-commit lease check still fences the commit).
 *
 * @returns a function that stops listening (call it once the statement is done).
 */
export function cancelOnAbort(signal: AbortSignal | undefined, pool: pg.Pool, client: pg.PoolClient): () => void {
  if (!signal) return () => undefined;
  const pid = (client as unknown as { processID?: number }).processID;
  if (typeof pid !== 'number') return () => undefined;
  const cancel = () => {
    pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  };
  if (signal.aborted) {
    cancel();
    return () => undefined;
  }
  signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}
