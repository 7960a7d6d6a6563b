import { ACTIONS, ERROR_CODES, PHASES, STATUSES } from '@tideway/core';
import type { MigrationView } from '@tideway/engine';
import { Type, type TProperties, type TSchema } from 'typebox';

export const PhaseSchema = Type.Enum(PHASES);
export const StatusSchema = Type.Enum(STATUSES);

/** `{ error: { code, message, details } }`, the body of every error answer. */
export const ErrorResponseSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.Enum(ERROR_CODES),
      message: Type.String(),
      details: Type.Object({}, { additionalProperties: true }),
    }),
  },
  { $id: 'ErrorResponse' },
);

/** Error answers documented on every route. */
export const errorResponses = {
  '4xx': ErrorResponseSchema,
  '5xx': ErrorResponseSchema,
} as const;

export const GateSchema = Type.Object({
  name: Type.String(),
  passed: Type.Boolean(),
  message: Type.String(),
  observed: Type.Object({}, { additionalProperties: true }),
});

/** The migration resource returned by every migration route. */
export const MigrationResourceSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  phase: PhaseSchema,
  status: StatusSchema,
  version: Type.Integer(),
  spec: Type.Object({}, { additionalProperties: true, description: 'the resolved spec, every default filled in' }),
  progress: Type.Object({}, { additionalProperties: true, description: 'figures contributed by the phases (backfill, ramp, …)' }),
  gates: Type.Array(GateSchema, { description: 'gates of the current phase, evaluated now' }),
  allowedActions: Type.Array(Type.Enum(ACTIONS)),
  installation: Type.String({ description: 'the installation whose flags these are (TIDEWAY_INSTALLATION, or the id the orchestrator database holds); give it to the SDK' }),
  flags: Type.Object(
    { dualWrite: Type.String(), shadowRead: Type.String(), readNew: Type.String(), writeNew: Type.String() },
    { description: 'the flag names the SDK reads: tideway.<installation>.<name>.<purpose>' },
  ),
  phaseEnteredAt: Type.String({ format: 'date-time' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const MigrationEventSchema = Type.Object({
  seq: Type.Integer(),
  actor: Type.String(),
  action: Type.String(),
  fromPhase: Type.Union([PhaseSchema, Type.Null()]),
  fromStatus: Type.Union([StatusSchema, Type.Null()]),
  toPhase: Type.Union([PhaseSchema, Type.Null()]),
  toStatus: Type.Union([StatusSchema, Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  details: Type.Object({}, { additionalProperties: true }),
  at: Type.String({ format: 'date-time' }),
});

export const IdParamsSchema = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

export const CursorSchema = Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' });

/** Query of a keyset-paginated list: `filters`, then `limit` (1–`max`, default `byDefault`) and `cursor`. */
export function PageQuerySchema<F extends TProperties>(max: number, byDefault: number, filters: F = {} as F) {
  return Type.Object(
    { ...filters, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: max, default: byDefault })), cursor: Type.Optional(CursorSchema) },
    { additionalProperties: false },
  );
}

/** Answer of a keyset-paginated list: `{ items, nextCursor }`, `nextCursor` null on the last page. */
export function PageSchema<T extends TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });
}

/** Body of the action routes (start, advance, pause, resume, abort, rollback). */
export const ActionBodySchema = Type.Object(
  {
    expectedVersion: Type.Optional(Type.Integer({ minimum: 1, description: 'fail with VERSION_CONFLICT unless the migration is at this version' })),
    reason: Type.Optional(Type.String({ maxLength: 2000, description: 'recorded in the audit log' })),
  },
  { additionalProperties: false },
);

/** The resource body for a migration view. */
export function toResource(view: MigrationView) {
  const m = view.migration;
  return {
    id: m.id,
    name: m.name,
    phase: m.phase,
    status: m.status,
    version: m.version,
    spec: m.spec as unknown as Record<string, unknown>,
    progress: view.progress,
    gates: view.gates.map((g) => ({ ...g, observed: { ...g.observed } })),
    allowedActions: view.allowedActions,
    installation: view.installation,
    flags: { ...view.flags },
    phaseEnteredAt: m.phaseEnteredAt.toISOString(),
    createdAt: m.createdAt.toISOString(),
    updatedAt: m.updatedAt.toISOString(),
  };
}

/** A source key as text values, in `spec.source.key` order. */
export const KeyValuesSchema = Type.Array(Type.String({ maxLength: 1000 }), { minItems: 1, maxItems: 16 });

/** A source row the backfill left out because of its data (issue 18), and how it was resolved. */
export const SkippedRowSchema = Type.Object({
  key: Type.Array(Type.String()),
  error: Type.String(),
  sqlstate: Type.String({ description: 'class 22 (data exception) or 23 (integrity constraint violation)' }),
  constraint: Type.Union([Type.String(), Type.Null()]),
  detectedAt: Type.String({ format: 'date-time' }),
  resolution: Type.Union([Type.Enum(['redriven', 'accepted'] as const), Type.Null()]),
  resolvedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  resolvedBy: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  chunkId: Type.Integer(),
});

/** A backfill chunk: keyset range (lower exclusive, upper inclusive, `null` = open), status, attempts. */
export const ChunkSchema = Type.Object({
  id: Type.Integer(),
  lowerKey: Type.Union([Type.Array(Type.String()), Type.Null()]),
  upperKey: Type.Union([Type.Array(Type.String()), Type.Null()]),
  status: Type.Enum(['pending', 'running', 'done', 'failed', 'split', 'skipped'] as const),
  attempts: Type.Integer(),
  timeouts: Type.Integer(),
  rowsCopied: Type.Union([Type.Integer(), Type.Null()]),
  durationMs: Type.Union([Type.Integer(), Type.Null()]),
  worker: Type.Union([Type.String(), Type.Null()]),
  leaseExpiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastError: Type.Union([Type.String(), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
