export { assertNever } from './assert-never.js';
export { ERROR_CODES, type ErrorCode } from './errors/error-codes.js';
export { TidewayError, type ErrorDetails } from './errors/tideway-error.js';
export { InvalidTransitionError } from './errors/invalid-transition-error.js';
export { VersionConflictError } from './errors/version-conflict-error.js';
export { MigrationNotFoundError } from './errors/migration-not-found-error.js';
export { InvalidSpecError, type SpecProblem } from './errors/invalid-spec-error.js';
export { GateNotMetError } from './errors/gate-not-met-error.js';
export { ImmutableFieldError } from './errors/immutable-field-error.js';
export { NameTakenError } from './errors/name-taken-error.js';
export { DependencyUnavailableError } from './errors/dependency-unavailable-error.js';
export { FlagConflictError } from './errors/flag-conflict-error.js';
export {
  FLAG_PURPOSES,
  FLAG_KEYS,
  MAX_FLAG_NAME_LENGTH,
  flagNames,
  flagPrefix,
  flagOwnerMarker,
  flagOwnerOf,
  flagDescription,
  desiredFlags,
  sameDesiredFlag,
  type FlagPurpose,
  type FlagKey,
  type FlagNames,
  type FlagOwner,
  type DesiredFlag,
  type DesiredFlags,
  type FlagStateInput,
  type RampStatus,
} from './flags/desired-flags.js';
export type { FlagControl, FlagState, FlagSummary, EnsureFlagsOptions } from './flags/flag-control.js';
export {
  PHASES,
  WORKING_PHASES,
  STATUSES,
  ACTIONS,
  OPERATOR_ACTIONS,
  isPhase,
  isStatus,
  isWorkingPhase,
  nextPhase,
  previousPhase,
  type Phase,
  type WorkingPhase,
  type Status,
  type Action,
  type OperatorAction,
  type MigrationState,
} from './machine/phases.js';
export {
  TRANSITION_TABLE,
  INITIAL_STATE,
  transition,
  allowedActions,
  isTerminal,
  type TransitionRule,
  type TransitionOutcome,
  type PhaseTarget,
  type StatusTarget,
} from './machine/transition-table.js';
export {
  PhaseHooks,
  type Gate,
  type GateResult,
  type ObservedValue,
  type PhaseAction,
  type PlannedAction,
} from './machine/phase-hooks.js';
export { replayEvents, type ReplayableEvent } from './machine/replay.js';
export {
  IDENTIFIER_PATTERN,
  SLUG_PATTERN,
  isUuid,
  IdentifierSchema,
  SlugSchema,
  TableRefSchema,
  MigrationSpecInputSchema,
  BackfillOptionsSchema,
  ThrottleOptionsSchema,
  LatencyGuardOptionsSchema,
  PrometheusSignalSchema,
  ShadowReadOptionsSchema,
  AbortCriteriaSchema,
  RampOptionsSchema,
  CleanupOptionsSchema,
  SYNC_MODES,
  ABORT_ACTIONS,
  type SyncMode,
  type AbortAction,
  type MigrationSpecInput,
  type TableRefInput,
} from './spec/spec-schema.js';
export {
  SPEC_DEFAULTS,
  type MigrationSpec,
  type TableRef,
  type BackfillOptions,
  type ThrottleOptions,
  type LatencyGuardOptions,
  type PrometheusSignalOptions,
  type ShadowReadOptions,
  type AbortCriteria,
  type RampOptions,
  type CleanupOptions,
} from './spec/migration-spec.js';
export { resolveSpec, checkSpec } from './spec/resolve-spec.js';
export { desiredSync, type SyncState, type DesiredSync } from './sync/desired-sync.js';
export { applySpecPatch, adminOnlyChanges, ADMIN_ONLY_SPEC_FIELDS, MigrationSpecPatchSchema, type MigrationSpecPatch } from './spec/spec-patch.js';
export { nextChunkRows, retryDelayMs, CHUNK_RATE_SMOOTHING, MAX_CHUNK_GROWTH, type ChunkSizingInput } from './backfill/chunk-sizing.js';
export { judgeHealth, rateCapSeconds, type HealthReading, type ThrottleReason } from './backfill/throttle.js';
export { dataErrorSplitBudget, isRowDataError, mayClearByItself, type SkippedRowResolution } from './backfill/skipped-rows.js';
export {
  afterBaseline,
  BASELINE_SCHEDULE,
  baselineDutyCycle,
  initialPaceState,
  latencySetpointMs,
  evidenceSpanMs,
  RECOVERY_MS,
  latencyTargetMs,
  nextPace,
  PACE_TICK_MS,
  quantile,
  SIGNAL_WINDOW_MS,
  SMOOTH_WINDOW_MS,
  BASELINE_POOL,
  HARD_BREACH_RATIO,
  windowQuantiles,
  throughputRatio,
  statementsPerSecond,
  MIN_JUDGED_STATEMENTS,
  type StatementCount,
  type BaselineSchedule,
  type PaceDecision,
  type PaceLimits,
  type PaceState,
  type PaceTick,
  type WindowQuantiles,
} from './backfill/latency-guard.js';
export {
  SHADOW_OUTCOMES,
  ShadowResultSchema,
  ShadowResultBatchSchema,
  DualWriteReportSchema,
  type ShadowOutcome,
  type ShadowResult,
  type ShadowResultBatch,
  type DualWriteReport,
  type FlagReader,
} from './shadow/shadow-contract.js';
export {
  wilsonUpperBound,
  wilsonLowerBound,
  Z_95,
  LATENCY_BUCKETS_MS,
  latencyBucket,
  histogramQuantile,
  interpolatedQuantile,
  evaluateAbortCriteria,
  redact,
  type DivergenceEvidence,
  type Breach,
  type Judgement,
} from './shadow/divergence-math.js';
