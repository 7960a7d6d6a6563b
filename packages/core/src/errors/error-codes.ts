/**
 * Every error code Tideway reports, in one list. The control plane maps each code to an HTTP status
 * exactly once (see `apps/control-plane/src/plugins/errors.ts`); the CLI and SDK switch on them.
 */
export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'MALFORMED_JSON',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'ROUTE_NOT_FOUND',
  'MIGRATION_NOT_FOUND',
  'TOKEN_NOT_FOUND',
  'INVALID_TRANSITION',
  'VERSION_CONFLICT',
  'GATE_NOT_MET',
  'IMMUTABLE_FIELD',
  'NAME_TAKEN',
  'FLAG_CONFLICT',
  'IDEMPOTENCY_KEY_REUSED',
  'IDEMPOTENCY_KEY_IN_PROGRESS',
  'INVALID_SPEC',
  'DEPENDENCY_UNAVAILABLE',
  'INTERNAL',
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];
