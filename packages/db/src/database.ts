import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Timestamps come back as `Date`; inserts may leave them to the database default. */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** A JSON column: read as the parsed value, written as a JSON string or object. */
type Json<T> = ColumnType<T, string | T, string | T>;

/** `migrations`: one row per migration, the state of record. */
export interface MigrationsTable {
  id: Generated<string>;
  /** Creation order (identity); the keyset of list pagination. */
  seq: ColumnType<number, never, never>;
  name: string;
  /** The resolved spec (`MigrationSpec` of @tideway/core). */
  spec: Json<unknown>;
  phase: string;
  status: string;
  /** Optimistic-concurrency version, +1 on every change. */
  version: Generated<number>;
  phase_entered_at: Timestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** The `version` whose desired state was last converged outside the orchestrator database. */
  converged_version: Generated<number>;
  converged_at: Date | null;
  /** The current evidence window's id (0: the window opened at creation). */
  evidence_window: Generated<number>;
}

/** `evidence_windows`: the windows observations are judged in; a transition or a ramp step opens one. */
export interface EvidenceWindowsTable {
  migration_id: string;
  /** 1, 2, 3 … per migration; 0 (no row) is the window opened at creation. */
  id: number;
  opened_at: Timestamp;
  /** What opened it: a transition's action (`advance`, `rollback`, …) or `ramp.step`. */
  reason: string;
  phase: string;
  ramp_step: number | null;
}

/** `converge_intents`: a transition that is changing (or crashed while changing) things outside the orchestrator database. */
export interface ConvergeIntentsTable {
  id: ColumnType<number, never, never>;
  migration_id: string;
  since: Timestamp;
}

/** `ddl_guards`: the catalog signature a migration's expressions were bound against, and the DDL last detected since. */
export interface DdlGuardsTable {
  migration_id: string;
  /** A `CatalogSignature` of @tideway/engine. */
  signature: Json<unknown>;
  bound_at: Timestamp;
  /** Sentences naming what changed (`column name of public.orders was dropped`), or null. */
  detected: Json<string[]> | null;
  detected_at: Date | null;
}

/** `way_backs`: every old column on the way back (a `WayBackColumn[]` of @tideway/engine), planned at start. */
export interface WayBacksTable {
  migration_id: string;
  columns: Json<{ column: string; how: string; expression: string | null }[]>;
  planned_at: Timestamp;
}

/** `round_trip_checks`: reverse(mapping(old row)) compared with the old row on a sample. */
export interface RoundTripChecksTable {
  id: ColumnType<number, never, never>;
  migration_id: string;
  started_at: Timestamp;
  finished_at: Date | null;
  rows_checked: Generated<number>;
  mismatches: Generated<number>;
  /** Old column → rows whose value did not come back. */
  columns: Json<Record<string, number>>;
  /** Source keys of up to 10 rows that did not come back. */
  sample_keys: Json<string[][]>;
  error: string | null;
  passed: Generated<boolean>;
}

/** `installation`: one row, the id that marks everything this orchestrator creates outside its database. */
export interface InstallationTable {
  singleton: Generated<boolean>;
  /** Eight lower-case letters and digits. */
  id: string;
  created_at: Timestamp;
}

/** `migration_events`: the append-only audit log (a database trigger refuses UPDATE and DELETE). */
export interface MigrationEventsTable {
  id: ColumnType<number, never, never>;
  migration_id: string;
  /** 1, 2, 3 … per migration, no gaps. */
  seq: number;
  /** Token name of the caller, or `tideway:<component>` for Tideway's own actions. */
  actor: string;
  action: string;
  from_phase: string | null;
  from_status: string | null;
  to_phase: string | null;
  to_status: string | null;
  reason: string | null;
  details: Json<Record<string, unknown>>;
  at: Timestamp;
}

/** `api_tokens`: bearer tokens, stored as the SHA-256 of the secret only. */
export interface ApiTokensTable {
  id: Generated<string>;
  name: string;
  role: string;
  secret_sha256: Buffer;
  created_by: string;
  created_at: Timestamp;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

/** `audit_events`: append-only audit of mutations not tied to one migration (tokens). */
export interface AuditEventsTable {
  id: ColumnType<number, never, never>;
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  details: Json<Record<string, unknown>>;
  at: Timestamp;
}

/** `idempotency_keys`: first answer to a POST with an `Idempotency-Key`, per actor and key. */
export interface IdempotencyKeysTable {
  actor: string;
  key: string;
  method: string;
  path: string;
  request_sha256: string;
  state: 'in_progress' | 'done';
  response_status: number | null;
  response_body: Json<unknown> | null;
  created_at: Timestamp;
  completed_at: Date | null;
}

/** `backfill_runs`: one per migration that entered backfill. */
export interface BackfillRunsTable {
  migration_id: string;
  datasource: string;
  key_columns: Json<string[]>;
  key_types: Json<string[]>;
  planned_through: Json<string[]> | null;
  planning_done: Generated<boolean>;
  chunk_rows: number;
  ewma_rows_per_ms: number | null;
  rows_estimated: number;
  throttled_reason: string | null;
  throttled_since: Date | null;
  started_at: Timestamp;
  completed_at: Date | null;
  /** Rate cap pacing: earliest start of the next chunk (GCRA theoretical arrival time); null = now. */
  rate_tat: Date | null;
  /** Chunks run without source row locks and the run ends with a tombstone sweep (ADR 005). */
  lock_free: Generated<boolean>;
  /** Keyset position (target key, text values) of the purge of what an earlier run left in the target. */
  purged_through: Json<string[]> | null;
  /** When the target was emptied of rows no chunk of this run wrote; chunks are planned only after it. */
  target_purged_at: Date | null;
  /** Chunks split because they failed on their data (issue 18): bounded, so an error on every row fails instead of bisecting the table. */
  data_error_splits: Generated<number>;
  rows_purged: Generated<number>;
}

/** Chunk statuses; `split` chunks were replaced by two halves after repeated timeouts. */
export type ChunkStatus = 'pending' | 'running' | 'done' | 'failed' | 'split' | 'skipped';

/** `backfill_skipped_rows`: a source row a chunk left out because of its data (issue 18), until resolved. */
export interface BackfillSkippedRowsTable {
  migration_id: string;
  /** Source key, one text value per key column (`spec.source.key` order). */
  key_values: Json<string[]>;
  /** The single-row chunk that found it. */
  chunk_id: number;
  error: string;
  sqlstate: string;
  constraint_name: string | null;
  detected_at: Timestamp;
  resolution: 'redriven' | 'accepted' | null;
  resolved_at: Date | null;
  resolved_by: string | null;
  reason: string | null;
}

/** `backfill_chunks`: one keyset range of a backfill. */
export interface BackfillChunksTable {
  id: ColumnType<number, never, never>;
  migration_id: string;
  lower_key: Json<string[]> | null;
  upper_key: Json<string[]> | null;
  status: ChunkStatus;
  attempts: Generated<number>;
  timeouts: Generated<number>;
  rows_copied: number | null;
  /** The rows the chunk was planned for (its keyset OFFSET; fewer for the last one); null for chunks planned before it was recorded. */
  planned_rows: number | null;
  duration_ms: number | null;
  worker: string | null;
  lease_token: string | null;
  lease_expires_at: Date | null;
  not_before: Date | null;
  enqueued_at: Date | null;
  /** Times the chunk was handed to the queue; part of its job id (ADR 007). */
  enqueues: Generated<number>;
  /** Attempts ended by a transient error; they do not count toward `maxAttempts` (ADR 007). */
  interruptions: Generated<number>;
  last_error: string | null;
  created_at: Timestamp;
  started_at: Date | null;
  finished_at: Date | null;
}

/** `observation_buckets`: per-minute shadow-read and dual-write evidence of a migration. */
export interface ObservationBucketsTable {
  migration_id: string;
  /** The evidence window the observations belong to. */
  window_id: Generated<number>;
  minute: Date | string;
  samples: Generated<number>;
  matches: Generated<number>;
  mismatches: Generated<number>;
  new_errors: Generated<number>;
  dropped: Generated<number>;
  old_latency: number[];
  new_latency: number[];
  dual_writes: Generated<number>;
  dual_write_failures: Generated<number>;
}

/** Ledger kinds: a shadow mismatch, a new-side read error, a failed new-side write (re-driven old → new), a failed old-side write after write cutover (re-driven new → old). */
export type DivergenceKind = 'mismatch' | 'new_error' | 'dual_write_failure' | 'old_write_failure';

/** `divergences`: one row per migration, kind and key. */
export interface DivergencesTable {
  migration_id: string;
  key: string;
  kind: DivergenceKind;
  first_seen: Date | string;
  last_seen: Date | string;
  count: number;
  diff_paths: Generated<string[]>;
  sample_old: Json<unknown> | null;
  sample_new: Json<unknown> | null;
  error: string | null;
  redriven_at: Date | null;
}

/** `verifications`: one diff of mapping(source) against target. */
export interface VerificationsTable {
  id: Generated<string>;
  migration_id: string;
  status: 'running' | 'passed' | 'failed';
  key_columns: Json<string[]>;
  key_types: Json<string[]>;
  target_key_columns: Json<string[]>;
  target_key_types: Json<string[]>;
  /** Target column → SQL type, for casting mapped source values before hashing. */
  target_types: Json<Record<string, string>>;
  ranges_total: Generated<number>;
  ranges_checked: Generated<number>;
  rows_compared: Generated<number>;
  created_by: string;
  started_at: Timestamp;
  finished_at: Date | null;
  repaired_at: Date | null;
}

/** `verification_ranges`: a key range compared by count and aggregate hash. */
export interface VerificationRangesTable {
  id: ColumnType<number, never, never>;
  verification_id: string;
  lower_key: Json<string[]> | null;
  upper_key: Json<string[]> | null;
  depth: Generated<number>;
  status: 'pending' | 'running' | 'done';
  attempts: Generated<number>;
  lease_token: string | null;
  lease_expires_at: Date | null;
  enqueued_at: Date | null;
  /** Times the range was handed to the queue; part of its job id (ADR 007). */
  enqueues: Generated<number>;
  /** Attempts ended by a transient error (ADR 007). */
  interruptions: Generated<number>;
  /** Runnable again from then on (backoff after a failed attempt); null = now. */
  not_before: Date | null;
  worker: string | null;
  last_error: string | null;
  started_at: Date | null;
  source_rows: number | null;
  target_rows: number | null;
  outcome: 'matched' | 'diffed' | 'split' | null;
  finished_at: Date | null;
}

/** Kinds of leased work (shared/DESIGN.md §3). */
export type WorkKind = 'backfill' | 'verification';

/** `work_blocks`: leased work of a migration that cannot make progress, one row per kind. */
export interface WorkBlocksTable {
  migration_id: string;
  kind: WorkKind;
  /** `datasource-unavailable` or `queue-unavailable`. */
  reason: string;
  /** What does not answer: `datasource "main"`, `redis`, `postgres`. */
  dependency: string;
  message: string;
  since: Timestamp;
}

/** `verification_diffs`: a key the check found missing in target, extra in target, or different (never changed by a repair but for `repaired_by`). */
export interface VerificationDiffsTable {
  verification_id: string;
  key: Json<string[]>;
  kind: 'missing' | 'extra' | 'different';
  /** The repair that re-copied the key and re-checked it equal; null while no repair has fixed it. */
  repaired_by: string | null;
}

/** Statuses of a verification repair: `running` until it ends (a crash leaves it so), `failed` when it threw. */
export type VerificationRepairStatus = 'running' | 'finished' | 'failed';

/** `verification_repairs`: one repair of a verification's findings (re-copy from the source, then re-check). */
export interface VerificationRepairsTable {
  id: Generated<string>;
  verification_id: string;
  /** Token name of the caller. */
  actor: string;
  status: VerificationRepairStatus;
  /** Findings no earlier repair had fixed when this one started. */
  keys_attempted: Generated<number>;
  /** Target rows the re-copy upserted (source row present) and deleted (source row gone). */
  upserted: Generated<number>;
  deleted: Generated<number>;
  /** Keys equal on both sides after the re-copy, and keys still different. */
  fixed: Generated<number>;
  still_different: Generated<number>;
  error: string | null;
  started_at: Timestamp;
  finished_at: Date | null;
}

/** `verification_repair_keys`: the outcome of one key a repair re-checked. */
export interface VerificationRepairKeysTable {
  repair_id: string;
  key: Json<string[]>;
  /** What the verification had found for the key. */
  kind: 'missing' | 'extra' | 'different';
  outcome: 'fixed' | 'still_different';
}

/** Ramp statuses inside the cutover phase. */
export type RampStatus = 'holding' | 'awaiting_approval' | 'write_cutover' | 'rolled_back';

/** `ramps`: the read ramp of a migration in cutover. */
export interface RampsTable {
  migration_id: string;
  step: Generated<number>;
  percent: Generated<number>;
  status: RampStatus;
  hold_started_at: Date | null;
  next_at: Date | null;
  paused_at: Date | null;
  write_cutover_at: Date | null;
  reverse_sync: Generated<boolean>;
  /**
   * Set when a rollback or abort turned `write-new` off: the reverse sync stays until then, however
   * far the migration went back, for instances that still write new until the flag reaches them.
   */
  reverse_until: Date | null;
  history: ColumnType<{ step: number; percent: number; at: string; event: string }[], string | undefined, string>;
  updated_at: Timestamp;
  /**
   * What a hold that ended waits for before its step can be taken: `flag-server` (unreachable) or
   * what the step's evidence lacks (`samples`, `divergence`, `new-errors`, …), or null.
   */
  waits_for: string | null;
  waiting_since: Date | null;
  /** The last error or judgement behind {@link RampsTable.waits_for}. */
  waiting_reason: string | null;
}

/** `flag_states`: per migration, the desired flag states last converged on the flag server. */
export interface FlagStatesTable {
  migration_id: string;
  /** `DesiredFlags` of `@tideway/core`, as JSON. */
  applied: ColumnType<Record<string, unknown>, string, string>;
  updated_at: Timestamp;
}

/** Timer kinds: a ramp hold ending, a cleanup reminder, the cleanup deadline. */
export type TimerKind = 'ramp_hold' | 'cleanup_reminder' | 'cleanup_deadline';

/** `timers`: durable timers, fired by whichever worker polls first. */
export interface TimersTable {
  id: ColumnType<number, never, never>;
  migration_id: string;
  kind: TimerKind;
  due_at: Date | string;
  payload: Json<Record<string, unknown>>;
  fired_at: Date | null;
  cancelled_at: Date | null;
  lease_until: Date | null;
  created_at: Timestamp;
}

/** `cleanups`: the cleanup deadline of a migration in cleanup. */
export interface CleanupsTable {
  migration_id: string;
  deadline: Date | string;
  reminders: ColumnType<{ kind: string; at: string }[], string | undefined, string>;
  overdue_since: Date | null;
  executed_at: Date | null;
  archived_table: string | null;
}

/** `datasource_paces`: the latency guard of one datasource (ADR 014). */
export interface DatasourcePacesTable {
  datasource: string;
  /** The worker running the guard, and until when its lease holds. */
  holder: string | null;
  lease_until: Date | null;
  /** 'baseline' while the backfill is held back to measure the baseline, else 'guarding'. */
  mode: Generated<'baseline' | 'guarding'>;
  mode_since: Generated<Date>;
  next_baseline_at: Date | null;
  /** The pace every chunk on the datasource obeys, rows/s; null before the first baseline. */
  pace_rows_per_second: number | null;
  baseline_p50_ms: number | null;
  baseline_p99_ms: number | null;
  observed_p50_ms: number | null;
  observed_p99_ms: number | null;
  /** The commit probe's p99 with the backfill held back, and over the last 2 s, ms (null without commit probes). */
  commit_baseline_p99_ms: number | null;
  commit_observed_p99_ms: number | null;
  /** Which signal rose more over its baseline at the last tick (the one the controller judged). */
  worse_signal: 'read' | 'commit' | 'prometheus' | 'statements' | 'throughput' | 'application' | null;
  /** The Prometheus signal's newest fresh value (the query's unit), its ceiling, and why its newest query failed; null without one. */
  prometheus_value: number | null;
  prometheus_max: number | null;
  prometheus_error: string | null;
  /** Mean execution time of other clients' statements (pg_stat_statements) with the backfill held back, and over the last 5 s, ms; null without the extension. */
  statements_baseline_ms: number | null;
  statements_observed_ms: number | null;
  /** Other clients' statements per second (pg_stat_statements) with the backfill held back, and over the last 5 s; null without the extension. */
  throughput_baseline_per_second: number | null;
  throughput_observed_per_second: number | null;
  /** The application's p99 (SDK reports) with the backfill held back, and over the last 5 s, ms; null without reports. */
  application_baseline_p99_ms: number | null;
  application_observed_p99_ms: number | null;
  probe_samples: Generated<number>;
  holding: Generated<boolean>;
  /** The controller's `PaceState`. */
  controller: Json<unknown> | null;
  /** Pacing of the datasource's chunks (GCRA theoretical arrival time); null = now. */
  rate_tat: Date | null;
  updated_at: Generated<Date>;
}

/** The application's old-store latency, one row per SDK dual-write report that carried it (kept 10 minutes). */
export interface AppLatencyReportsTable {
  id: Generated<number>;
  migration_id: string;
  /** The migration's source datasource: the guard sums the reports of every migration on it. */
  datasource: string;
  received_at: Generated<Date>;
  /** Calls per bucket of `LATENCY_BUCKETS_MS` (the last one open-ended). */
  counts: number[];
  sum_ms: number;
  calls: number;
}

/** The orchestrator database, as Kysely sees it. */
export interface Database {
  migrations: MigrationsTable;
  migration_events: MigrationEventsTable;
  api_tokens: ApiTokensTable;
  idempotency_keys: IdempotencyKeysTable;
  audit_events: AuditEventsTable;
  backfill_runs: BackfillRunsTable;
  backfill_chunks: BackfillChunksTable;
  backfill_skipped_rows: BackfillSkippedRowsTable;
  observation_buckets: ObservationBucketsTable;
  divergences: DivergencesTable;
  verifications: VerificationsTable;
  verification_ranges: VerificationRangesTable;
  verification_diffs: VerificationDiffsTable;
  verification_repairs: VerificationRepairsTable;
  verification_repair_keys: VerificationRepairKeysTable;
  work_blocks: WorkBlocksTable;
  ramps: RampsTable;
  flag_states: FlagStatesTable;
  timers: TimersTable;
  cleanups: CleanupsTable;
  installation: InstallationTable;
  converge_intents: ConvergeIntentsTable;
  evidence_windows: EvidenceWindowsTable;
  ddl_guards: DdlGuardsTable;
  way_backs: WayBacksTable;
  round_trip_checks: RoundTripChecksTable;
  datasource_paces: DatasourcePacesTable;
  app_latency_reports: AppLatencyReportsTable;
}

export type MigrationRow = Selectable<MigrationsTable>;
export type DatasourcePaceRow = Selectable<DatasourcePacesTable>;
export type NewMigrationRow = Insertable<MigrationsTable>;
export type MigrationRowUpdate = Updateable<MigrationsTable>;
export type MigrationEventRow = Selectable<MigrationEventsTable>;
export type NewMigrationEventRow = Insertable<MigrationEventsTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;
export type NewApiTokenRow = Insertable<ApiTokensTable>;
export type IdempotencyKeyRow = Selectable<IdempotencyKeysTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
export type BackfillRunRow = Selectable<BackfillRunsTable>;
export type BackfillChunkRow = Selectable<BackfillChunksTable>;
export type DivergenceRow = Selectable<DivergencesTable>;
export type VerificationRow = Selectable<VerificationsTable>;
export type VerificationRepairRow = Selectable<VerificationRepairsTable>;
export type RampRow = Selectable<RampsTable>;
export type TimerRow = Selectable<TimersTable>;
export type CleanupRow = Selectable<CleanupsTable>;
