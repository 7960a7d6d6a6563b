export { systemClock, type Clock } from './clock.js';
export { crashFaults, noFaults, type Faults } from './faults.js';
export { Installation, INSTALLATION_PATTERN } from './features/installation/installation.js';
export {
  DesiredStateReconciler,
  CONVERGE_BATCH,
  DRIFT_CHECK_SECONDS,
  markConverged,
  type ConvergeChange,
  type ConvergeTarget,
  type DesiredStateKind,
  type ReconcileReport,
} from './features/desired-state/desired-state.js';
export { createEngine, type Engine, type EngineOptions } from './engine.js';
export { AuditLog, type AuditEntry } from './features/audit/audit-log.js';
export { DatasourceRegistry, DATASOURCE_SEARCH_PATH, SYNCING_SETTING } from './features/datasources/datasource-registry.js';
export { CatalogInspector, type CatalogTable, type CatalogColumn, type SpecInspection } from './features/datasources/catalog-inspector.js';
export {
  ExpressionBinder,
  BIND_LOCK_TIMEOUT_MS,
  BIND_STATEMENT_TIMEOUT_MS,
  type BoundExpression,
  type MappingBinding,
  type SpecBinding,
  type BindOptions,
} from './features/expressions/expression-binder.js';
export {
  describeSignatureChange,
  signatureUses,
  type CatalogSignature,
  type TableSignature,
  type SignatureColumn,
  type ColumnUse,
} from './features/expressions/catalog-signature.js';
export { DependencyJudge, FIRST_UNPINNED_OBJECT_ID, type Dependency, type Refusal } from './features/expressions/dependency-judge.js';
export { IdempotencyStore, IDEMPOTENCY_TTL_HOURS, type IdempotencyClaim } from './features/idempotency/idempotency-store.js';
export { toMigration, toMigrationEvent, type Migration, type MigrationEvent } from './features/migrations/migration.js';
export type { MigrationContext } from './features/migrations/migration-context.js';
export {
  MigrationReadModel,
  InvalidCursorError,
  type Page,
  type MigrationListQuery,
} from './features/migrations/migration-read-model.js';
export {
  KyselyMigrationRepository,
  type MigrationRepository,
  type NewMigrationEvent,
} from './features/migrations/migration-repository.js';
export {
  MigrationService,
  TRANSITION_ATTEMPTS,
  isConflictError,
  type ActOptions,
  type PatchOptions,
  type MigrationView,
  type MigrationServiceDeps,
  type ProgressProvider,
  type TransitionNotice,
  type Converger,
  type PatchStep,
} from './features/migrations/migration-service.js';
export { prepareCatalogCheck } from './features/migrations/prepare-catalog-check.js';
export { ROLES, isRole, roleAllows, type Role } from './features/tokens/roles.js';
export { TokenService, BOOTSTRAP_ADMIN_NAME, TOKEN_CACHE_TTL_MS, type Principal, type TokenInfo } from './features/tokens/token-service.js';
export {
  MAPPING_FUNCTIONS,
  MAPPING_FUNCTION_GROWTH,
  MAX_REPEAT_COUNT,
  MAX_PAD_LENGTH,
  MAX_RESULT_GROWTH,
  MAX_RESULT_CONSTANT_CHARS,
} from './features/mapping/mapping-functions.js';
export {
  loadSqlParser,
  validateMappingExpression,
  analyzeMappingExpression,
  validateMapping,
  MAX_MAPPING_EXPRESSION_LENGTH,
  MAX_MAPPING_EXPRESSION_DEPTH,
  type MappingExpressionResult,
  type MappingExpressionAnalysis,
  type CastTypeName,
  type ResultSize,
} from './features/mapping/mapping-validator.js';
export {
  BackfillService,
  SPLIT_AFTER_TIMEOUTS,
  THROTTLE_RECHECK_MS,
  type ChunkOutcome,
  type BackfillServiceDeps,
} from './features/backfill/backfill-service.js';
export { BackfillRepository, type ClaimedChunk } from './features/backfill/backfill-repository.js';
export { BackfillReadModel, type BackfillProgress, type ChunkView } from './features/backfill/backfill-read-model.js';
export { ChunkCopier, type CopyOptions, type CopyResult } from './features/backfill/chunk-copier.js';
export { LeaseLostError } from './features/leases/lease-lost-error.js';
export {
  LeasedWork,
  CHUNK_WORK,
  RANGE_WORK,
  LEASE_MS,
  HEARTBEAT_MS,
  LOST_JOB_AFTER_SECONDS,
  type LeasedWorkKind,
  type Lease,
  type QueuedUnit,
  type RetryLater,
} from './features/leases/leased-work.js';
export { Heartbeat, type HeartbeatTiming } from './features/leases/heartbeat.js';
export { WorkBlocks, type WorkBlock, type WorkBlockReason } from './features/leases/work-blocks.js';
export {
  isTransientError,
  dependencyOf,
  asDependencyError,
  errorMessage,
  transientRetryDelayMs,
  TRANSIENT_RETRY_BASE_MS,
  TRANSIENT_RETRY_CAP_MS,
} from './features/leases/transient-error.js';
export { cancelOnAbort } from './features/leases/cancel-on-abort.js';
export { HealthProbe } from './features/backfill/health-probe.js';
export { LatencyGuard, GUARD_LEASE_MS, sharedLimits, type LatencyGuardDeps } from './features/pace/latency-guard.js';
export { LatencyProbe, PROBE_INTERVAL_MS, type ProbeTarget } from './features/pace/latency-probe.js';
export { StatementLatency, TIDEWAY_SQL_MARK } from './features/pace/statement-latency.js';
export { queryPrometheus, checkPrometheusLive, PrometheusQueryError, PrometheusSignal } from './features/pace/prometheus-signal.js';
export { PaceRepository, type PaceUpdate } from './features/pace/pace-repository.js';
export { validateProbeSql, checkProbeSqlLive, PROBE_SQL_FIELD } from './features/pace/probe-sql.js';
export { DdlGuard, GUARDED_PHASES, type DdlDetection } from './features/ddl-guard/ddl-guard.js';
export { reverseMappingOf, wayBackProblems, wayBackColumns, type WayBackColumn, type WayBackHow } from './features/way-back/way-back.js';
export { RoundTripCheck, ROUND_TRIP_ALL_ROWS, ROUND_TRIP_SAMPLE_ROWS, type RoundTripResult } from './features/way-back/round-trip-check.js';
export { registerWayBack, judgeRoundTrip, type WayBackView } from './features/way-back/register-way-back.js';
export { SyncObjects, SYNC_LOCK_TIMEOUT_MS, sourceKeyFromTargetKey, type SyncObjectsDeps } from './features/sync/sync-objects.js';
export { SyncFailureCollector, FAILURES_PER_COLLECT, type CollectOutcome } from './features/sync/sync-failure-collector.js';
export { syncObjects, syncTriggerName, syncMarker, parseSyncMarker, failuresTableName, tombstoneTable, tombstoneTableName, idTag, type SyncDirection, type SyncObject, type SyncRole, type SyncPlanInput } from './features/sync/sync-sql.js';
export { TombstoneSweeper, type SweepOutcome } from './features/backfill/tombstone-sweeper.js';
export { TargetPurger, PURGE_BATCH, PURGE_BUDGET_MS, type PurgeOutcome } from './features/backfill/target-purger.js';
export { BullmqWorkQueue, boundedRedis, QUEUE_TIMEOUT_MS, type WorkQueue, type BullmqWorkQueueOptions } from './features/leases/work-queue.js';
export { quoteIdent, qualified, chunkUpsertSql, mappedSelectSql, rangePredicate, type KeyShape, type KeyValue } from './features/backfill/sql.js';
export { ConfigError, intVar, urlVar, datasourcesVar, logLevelVar, webhookUrlsVar, webhookSecretVar, unleashVar, installationVar, crashPointsVar, type UnleashSettings } from './config-parsing.js';
export { DivergenceRecorder } from './features/divergence/divergence-recorder.js';
export { DivergenceReadModel, type DivergenceWindow, type DivergenceItem } from './features/divergence/divergence-read-model.js';
export { EvidenceWindows, type EvidenceWindow } from './features/divergence/evidence-windows.js';
export { AbortEvaluator, EVALUATION_WINDOW_SECONDS, WATCHED_PHASES, type EvaluationResult } from './features/abort/abort-evaluator.js';
export { WebhookNotifier, BullmqControlQueue, deliverWebhook, signWebhook, WEBHOOK_TIMEOUT_MS, type ControlQueue } from './features/webhooks/webhook-notifier.js';
export {
  VerificationService,
  VERIFY_RANGE_ROWS,
  EXACT_DIFF_ROWS,
  SAMPLE_KEYS,
  SETTLE_ROUNDS,
  SETTLE_DELAY_MS,
  type VerificationView,
  type VerificationRepairView,
  type VerificationRepairResult,
  type FindingKind,
  type RangeOutcome,
} from './features/verification/verification-service.js';
export { findingsOf, outcomeOf, type VerificationOutcome, type VerificationFindings } from './features/verification/verification-findings.js';
export { TimerService, TIMERS_PER_POLL, type TimerHandler, type TimerOutcome } from './features/timers/timer-service.js';
export type { FlagControl } from '@tideway/core';
export { RampService, type RampView, type RampWaitsFor, type RampWaitNotice, type CutoverDryRun } from './features/cutover/ramp-service.js';
export { FlagsKind, ORPHAN_FLAG_GRACE_SECONDS, type FlagsKindDeps } from './features/flags/flags-kind.js';
export { CleanupService, REMINDER_DAYS, type CleanupView } from './features/cleanup/cleanup-service.js';
