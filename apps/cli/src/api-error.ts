import type { ErrorCode } from '@tideway/core';

/**
 * Codes the CLI makes up itself, for failures that never reached a Tideway answer:
 * `UNREACHABLE` (connection refused, DNS…), `TIMEOUT` (no answer in time), `BAD_RESPONSE` (an
 * answer that is not Tideway's JSON, e.g. a proxy's HTML error page).
 */
export const CLIENT_ERROR_CODES = ['UNREACHABLE', 'TIMEOUT', 'BAD_RESPONSE'] as const;
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

/**
 * An error answer of the control plane (`{ error: { code, message, details } }`), or a failure to
 * get one. `status` is the HTTP status, `0` when there was no answer.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: number,
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}
