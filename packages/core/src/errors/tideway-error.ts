import type { ErrorCode } from './error-codes.js';

/** Structured, JSON-serialisable facts about an error (field names, numbers, allowed actions). */
export type ErrorDetails = Record<string, unknown>;

/**
 * Base class of every error Tideway raises on purpose. `code` is stable and machine-readable,
 * `details` is JSON and safe to show to an API caller. Anything that is not a `TidewayError`
 * is treated as an internal fault and never shown verbatim.
 *
 * @example
 * ```ts
 * throw new TidewayError('INVALID_SPEC', 'spec has 2 problems', { problems: [] });
 * ```
 */
export class TidewayError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}
