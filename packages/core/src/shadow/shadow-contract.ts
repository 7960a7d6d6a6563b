import { Type, type Static } from 'typebox';
import { LATENCY_BUCKETS_MS } from './divergence-math.js';

/**
 * The wire contract between the application SDK and the control plane. The SDK batches these and
 * the control plane's divergence recorder stores them; both sides import this one definition.
 */

/** What a shadow read found. */
export const SHADOW_OUTCOMES = ['match', 'mismatch', 'new_error'] as const;
export type ShadowOutcome = (typeof SHADOW_OUTCOMES)[number];

/** One shadow read: old served, new compared in the background. */
export const ShadowResultSchema = Type.Object(
  {
    /** The migration key of the read, as text (composite keys joined by the SDK's `keyToString`). */
    key: Type.String({ minLength: 1, maxLength: 512 }),
    outcome: Type.Enum(SHADOW_OUTCOMES),
    /** Field paths that differ (`balance`, `items[2].sku`), for mismatches. */
    diffPaths: Type.Optional(Type.Array(Type.String({ maxLength: 512 }), { maxItems: 100 })),
    /** The old and new values of a mismatch (redacted by the control plane before storage). */
    oldValue: Type.Optional(Type.Unknown()),
    newValue: Type.Optional(Type.Unknown()),
    /** The new side's error message, for `new_error`. */
    error: Type.Optional(Type.String({ maxLength: 2000 })),
    /** Latency of the old read, milliseconds. */
    oldLatencyMs: Type.Number({ minimum: 0 }),
    /** Latency of the new read, milliseconds; absent when it failed before answering. */
    newLatencyMs: Type.Optional(Type.Number({ minimum: 0 })),
    /** When the read happened (ISO 8601). */
    at: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type ShadowResult = Static<typeof ShadowResultSchema>;

/** Body of `POST /v1/migrations/:id/shadow-results`: at most 1,000 results. */
export const ShadowResultBatchSchema = Type.Object(
  { results: Type.Array(ShadowResultSchema, { minItems: 1, maxItems: 1000 }), dropped: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);
export type ShadowResultBatch = Static<typeof ShadowResultBatchSchema>;

/**
 * Body of `POST /v1/migrations/:id/dual-write-reports`: how many dual writes the application made
 * since its last report, and the keys whose best-effort write failed. They are re-driven, so a
 * failure never becomes silent divergence: `side: "new"` (during dual write) re-copies the key from
 * old to new through the mapping; `side: "old"` (after write cutover, when old is the best-effort
 * side kept for rollback) re-copies it from new to old through the reverse mapping.
 */
export const DualWriteReportSchema = Type.Object(
  {
    writes: Type.Integer({ minimum: 0 }),
    failures: Type.Array(
      Type.Object(
        {
          /** Source key values as text, in `spec.source.key` order. */
          key: Type.Array(Type.String({ maxLength: 1000 }), { minItems: 1, maxItems: 16 }),
          error: Type.String({ maxLength: 2000 }),
          at: Type.String({ format: 'date-time' }),
          /** Which store's write failed. @defaultValue "new" */
          side: Type.Optional(Type.Union([Type.Literal('new'), Type.Literal('old')])),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1000 },
    ),
    /**
     * The application's calls to the old store (the production path the backfill must not slow
     * down) since its last report: counts per bucket of `LATENCY_BUCKETS_MS` (the last one open-ended)
     * and their summed time, ms. The latency guard reads it as a signal (ADR 014).
     */
    latency: Type.Optional(
      Type.Object(
        {
          counts: Type.Array(Type.Integer({ minimum: 0 }), { minItems: LATENCY_BUCKETS_MS.length + 1, maxItems: LATENCY_BUCKETS_MS.length + 1 }),
          sumMs: Type.Number({ minimum: 0 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type DualWriteReport = Static<typeof DualWriteReportSchema>;

/**
 * What the SDK asks about flags. Implemented over unleash-client by `@tideway/flags`
 * (`UnleashFlagReader`) and by fakes in unit tests. Must never throw; an unknown flag is `false`.
 */
export interface FlagReader {
  /** Whether `flag` is on for this key (gradual rollouts are sticky on the key). */
  isEnabled(flag: string, context: { key: string }): boolean;
}
