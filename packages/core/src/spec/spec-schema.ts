import { Type, type Static } from 'typebox';

/**
 * A PostgreSQL identifier as Tideway accepts it in a spec: a letter or underscore, then letters,
 * digits or underscores, at most 63 bytes (PostgreSQL's NAMEDATALEN − 1). Quotes, dots, spaces,
 * semicolons and every other SQL metacharacter are rejected at the API boundary; identifiers are
 * still always quoted when SQL is built.
 */
export const IDENTIFIER_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,62}$';
/** Migration and datasource names: lower-case slugs, 1–63 characters. */
export const SLUG_PATTERN = '^[a-z][a-z0-9_-]{0,62}$';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `text` has the shape of a UUID: a migration id. Migration names must not (see resolveSpec). */
export function isUuid(text: string): boolean {
  return UUID_RE.test(text);
}

export const IdentifierSchema = Type.String({ pattern: IDENTIFIER_PATTERN, description: 'PostgreSQL identifier, unquoted' });
export const SlugSchema = Type.String({ pattern: SLUG_PATTERN, description: 'lower-case slug' });

/** `source` or `target` of a migration. `key` is one column or a list (composite key, row-value comparison). */
export const TableRefSchema = Type.Object(
  {
    datasource: SlugSchema,
    schema: Type.Optional(IdentifierSchema),
    table: IdentifierSchema,
    key: Type.Union([IdentifierSchema, Type.Array(IdentifierSchema, { minItems: 1, maxItems: 16 })]),
  },
  { additionalProperties: false },
);

export const BackfillOptionsSchema = Type.Object(
  {
    initialChunkRows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    minChunkRows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    maxChunkRows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    targetChunkMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    maxRowsPerSecond: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    maxSkippedRows: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
    chunkTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
    flagPropagationSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
  },
  { additionalProperties: false },
);

export const PrometheusSignalSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2000 }),
    query: Type.String({ minLength: 1, maxLength: 4000 }),
    max: Type.Number({ exclusiveMinimum: 0 }),
  },
  { additionalProperties: false },
);

export const LatencyGuardOptionsSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    latencyBudget: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10 })),
    minRowsPerSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10_000_000 })),
    probeSql: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 2000 }), Type.Null()])),
    prometheus: Type.Optional(Type.Union([PrometheusSignalSchema, Type.Null()])),
  },
  { additionalProperties: false },
);

export const ThrottleOptionsSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    maxReplicationLagSeconds: Type.Optional(Type.Number({ minimum: 0 })),
    maxLockWaiters: Type.Optional(Type.Integer({ minimum: 0 })),
    maxTransactionAgeSeconds: Type.Optional(Type.Number({ minimum: 0 })),
    maxConnectionsUsedRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    recoverRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    latencyGuard: Type.Optional(LatencyGuardOptionsSchema),
  },
  { additionalProperties: false },
);

export const ShadowReadOptionsSchema = Type.Object(
  {
    samplePercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    minWindowSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
    redact: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 100 })),
  },
  { additionalProperties: false },
);

export const ABORT_ACTIONS = ['pause', 'rollback'] as const;
export type AbortAction = (typeof ABORT_ACTIONS)[number];

export const AbortCriteriaSchema = Type.Object(
  {
    maxDivergenceRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    minSamples: Type.Optional(Type.Integer({ minimum: 0 })),
    maxNewErrorRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    maxP99LatencyRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    maxFailedChunks: Type.Optional(Type.Integer({ minimum: 0 })),
    maxDualWriteFailureRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    action: Type.Optional(Type.Enum(ABORT_ACTIONS)),
  },
  { additionalProperties: false },
);

export const RampOptionsSchema = Type.Object(
  {
    steps: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 100 }), { minItems: 1, maxItems: 20 })),
    holdSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
    requireApproval: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const CleanupOptionsSchema = Type.Object(
  {
    deadlineDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 3650 })),
    autoExecute: Type.Optional(Type.Boolean()),
    dropOld: Type.Optional(Type.Boolean()),
    dropConfirmation: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const SYNC_MODES = ['trigger', 'application'] as const;
export type SyncMode = (typeof SYNC_MODES)[number];

/**
 * The JSON a client sends to create a migration. Unknown fields anywhere are rejected. Optional
 * sections take the defaults in {@link SPEC_DEFAULTS}; `resolveSpec` fills them in.
 */
export const MigrationSpecInputSchema = Type.Object(
  {
    name: SlugSchema,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    source: TableRefSchema,
    target: TableRefSchema,
    mapping: Type.Record(
      Type.String({ pattern: IDENTIFIER_PATTERN }),
      Type.String({ minLength: 1, maxLength: 4000 }),
      { minProperties: 1, maxProperties: 1600, additionalProperties: false, description: 'target column -> SQL scalar expression over the source row' },
    ),
    syncMode: Type.Enum(SYNC_MODES),
    reverseMapping: Type.Optional(
      Type.Record(Type.String({ pattern: IDENTIFIER_PATTERN }), Type.String({ minLength: 1, maxLength: 4000 }), {
        minProperties: 1,
        maxProperties: 1600,
        additionalProperties: false,
        description: 'source column -> SQL expression over the target row: the way back after write cutover (reverse sync in trigger mode, re-drive of old-side writes in application mode); columns it does not name are derived where the mapping copies them (a column, or a cast of one)',
      }),
    ),
    rollbackAfterWriteCutover: Type.Optional(
      Type.Boolean({
        description:
          'whether the migration keeps a way back after write cutover (default true): the reverse mapping must then produce every old column that needs a value; false declares there is none, and rollback or abort past write cutover is refused',
      }),
    ),
    backfill: Type.Optional(BackfillOptionsSchema),
    throttle: Type.Optional(ThrottleOptionsSchema),
    shadowRead: Type.Optional(ShadowReadOptionsSchema),
    abortCriteria: Type.Optional(AbortCriteriaSchema),
    ramp: Type.Optional(RampOptionsSchema),
    cleanup: Type.Optional(CleanupOptionsSchema),
  },
  { additionalProperties: false },
);

/** A spec as a client sends it. */
export type MigrationSpecInput = Static<typeof MigrationSpecInputSchema>;
/** `source` or `target` as a client sends it. */
export type TableRefInput = Static<typeof TableRefSchema>;
