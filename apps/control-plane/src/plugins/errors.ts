import { DependencyUnavailableError, TidewayError, type ErrorCode } from '@tideway/core';
import { isConnectionError } from '@tideway/db';
import { InvalidCursorError } from '@tideway/engine';
import type { FastifyError, FastifyInstance } from 'fastify';

/** The one place where error codes become HTTP statuses. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  ROUTE_NOT_FOUND: 404,
  MIGRATION_NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  INVALID_TRANSITION: 409,
  VERSION_CONFLICT: 409,
  GATE_NOT_MET: 409,
  IMMUTABLE_FIELD: 409,
  NAME_TAKEN: 409,
  FLAG_CONFLICT: 409,
  IDEMPOTENCY_KEY_IN_PROGRESS: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  INVALID_SPEC: 422,
  DEPENDENCY_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

function body(code: ErrorCode, message: string, details: Record<string, unknown> = {}): ErrorBody {
  return { error: { code, message, details } };
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/source/key/0` in the `body` → `body.source.key[0]`. */
function fieldOf(context: string, error: AjvError): string {
  let path = context;
  for (const part of error.instancePath.split('/').slice(1)) path += /^\d+$/.test(part) ? `[${part}]` : `.${part.replace(/~1/g, '/').replace(/~0/g, '~')}`;
  const extra = error.params['additionalProperty'] ?? error.params['missingProperty'];
  if (typeof extra === 'string') path += `.${extra}`;
  return path;
}

function problemOf(error: AjvError): string {
  if (error.keyword === 'additionalProperties') return 'unknown field';
  if (error.keyword === 'required') return 'is required';
  return error.message ?? error.keyword;
}

/** Maps a Fastify validation failure to `VALIDATION_FAILED` naming every offending field. */
function validationBody(error: FastifyError): ErrorBody {
  const context = error.validationContext ?? 'body';
  const raw = (error.validation ?? []) as unknown as AjvError[];
  // anyOf/oneOf wrappers repeat what the branches said; keep the specific ones.
  const specific = raw.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf');
  const seen = new Set<string>();
  const problems: { field: string; problem: string }[] = [];
  for (const e of specific.length ? specific : raw) {
    const item = { field: fieldOf(context, e), problem: problemOf(e) };
    const k = `${item.field}|${item.problem}`;
    if (!seen.has(k)) {
      seen.add(k);
      problems.push(item);
    }
  }
  const unknown = problems.filter((p) => p.problem === 'unknown field').map((p) => p.field);
  const first = problems[0];
  const message = unknown.length
    ? `unknown field(s): ${unknown.join(', ')}`
    : first
      ? `${first.field} ${first.problem}`
      : 'request is not valid';
  return body('VALIDATION_FAILED', message, { field: first?.field ?? context, problems });
}

/**
 * A lost or refused PostgreSQL connection that no engine code named (a datasource that cannot be
 * reached is already a {@link DependencyUnavailableError} naming it): the orchestrator database,
 * `postgres` as `/readyz` calls it. `null` for any other error.
 */
function asOrchestratorUnavailable(error: unknown): DependencyUnavailableError | null {
  if (!isConnectionError(error)) return null;
  const reason = error instanceof Error ? error.message : String(error);
  return new DependencyUnavailableError('postgres', `the orchestrator database does not answer (${reason.slice(0, 200)})`, { cause: error });
}

/**
 * Installs the error handler and the 404 handler. Every error answer is
 * `{ error: { code, message, details } }`; 5xx answers say nothing about internals (no stack, no
 * SQL) and carry the request id to find the log line. A dependency that does not answer is 503
 * `DEPENDENCY_UNAVAILABLE` with `details.dependency` (`postgres`, `redis`, `unleash`,
 * `datasource "<name>"`), never 500: pg connection errors are mapped here, once.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(body('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  app.setErrorHandler((raw: FastifyError, request, reply) => {
    const error = raw instanceof TidewayError ? raw : ((asOrchestratorUnavailable(raw) ?? raw) as FastifyError);
    if (error instanceof TidewayError) {
      const status = HTTP_STATUS[error.code];
      if (status >= 500) request.log.warn({ err: error }, 'dependency unavailable');
      return reply.code(status).send(body(error.code, error.message, error.details));
    }
    if (error instanceof InvalidCursorError) {
      return reply.code(400).send(body('VALIDATION_FAILED', error.message, { field: 'querystring.cursor' }));
    }
    if (error.validation) return reply.code(400).send(validationBody(error));
    switch (error.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send(body('MALFORMED_JSON', 'request body is not valid JSON', { field: 'body' }));
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send(body('PAYLOAD_TOO_LARGE', 'request body is larger than the limit', { field: 'body', limitBytes: app.initialConfig.bodyLimit }));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send(body('UNSUPPORTED_MEDIA_TYPE', 'send application/json', { field: 'content-type' }));
      default:
        break;
    }
    // secure-json-parse rejects __proto__ / constructor.prototype with a 400 SyntaxError.
    if (error.statusCode === 400 && error instanceof SyntaxError) {
      return reply.code(400).send(body('MALFORMED_JSON', 'request body is not valid JSON', { field: 'body' }));
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.code(500).send(body('INTERNAL', 'internal error', { requestId: request.id }));
  });
}
