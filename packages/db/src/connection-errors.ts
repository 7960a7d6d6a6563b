/**
 * Error codes of a lost or refused PostgreSQL connection, as node-postgres and Node report them:
 * socket errors, SQLSTATE class 08 (connection exception) and 57P01–57P03 (the server is shutting
 * down, crashed, or not accepting connections yet).
 */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
const SERVER_GOING_AWAY = new Set(['57P01', '57P02', '57P03']);

/** Messages node-postgres and pg-pool throw without a code when a connection dies or cannot be had. */
const MESSAGES = [
  'Connection terminated unexpectedly',
  'Connection terminated',
  'Connection terminated due to connection timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'the database system is starting up',
  'the database system is shutting down',
  'the database system is in recovery mode',
];

function isConnectionErrorOne(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || SERVER_GOING_AWAY.has(code) || code.startsWith('08'))) return true;
  return typeof message === 'string' && MESSAGES.some((m) => message.startsWith(m));
}

/**
 * True when `error` says a PostgreSQL connection was refused, dropped or could not be had in time —
 * the server restarting, stopped, unreachable or out of connections for a moment — rather than a
 * statement that failed on its own (a constraint, a syntax error, a statement timeout). Such errors
 * are transient: the same work succeeds once the server answers again. Looks through `cause` and
 * `AggregateError.errors` (Node reports a refused dual-stack connect as an AggregateError).
 *
 * Recognised: socket codes (`ECONNREFUSED`, `ECONNRESET`, `EPIPE`, `ETIMEDOUT`, …), SQLSTATE class
 * `08` and `57P01`/`57P02`/`57P03`, and the messages node-postgres and pg-pool use for a dead client
 * or an exhausted connect timeout ("Connection terminated unexpectedly", "timeout exceeded when
 * trying to connect", …).
 *
 * @example
 * ```ts
 * isConnectionError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })); // true
 * isConnectionError(Object.assign(new Error('duplicate key'), { code: '23505' })); // false
 * ```
 */
export function isConnectionError(error: unknown): boolean {
  const seen = new Set<unknown>();
  const visit = (e: unknown, depth: number): boolean => {
    if (depth > 5 || seen.has(e) || typeof e !== 'object' || e === null) return false;
    seen.add(e);
    if (isConnectionErrorOne(e)) return true;
    const { cause, errors } = e as { cause?: unknown; errors?: unknown };
    if (Array.isArray(errors) && errors.some((x) => visit(x, depth + 1))) return true;
    return visit(cause, depth + 1);
  };
  return visit(error, 0);
}
