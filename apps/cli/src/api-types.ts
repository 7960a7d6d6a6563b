import type { Action, Phase, Status } from '@tideway/core';

/**
 * The shapes of the control plane's answers, as the CLI reads them (see
 * `apps/control-plane/src/routes/**`). Only what the CLI prints is spelled out.
 */

/** A page of a keyset-paginated list. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Gate {
  name: string;
  passed: boolean;
  message: string;
  observed: Record<string, unknown>;
}

/** `progress` of a migration in or after backfill (every field absent before backfill). */
export interface BackfillProgress {
  rowsCopied?: number;
  rowsEstimated?: number;
  chunksDone?: number;
  chunksTotal?: number;
  chunksFailed?: number;
  chunksPending?: number;
  chunksRunning?: number;
  chunksSkipped?: number;
  /** Rows left out because of their data (absent from older control planes). */
  skippedRows?: { unresolved: number; redriven: number; accepted: number };
  rowsPerSecond?: number;
  etaSeconds?: number | null;
  planningDone?: boolean;
  throttled?: { reason: string; since: string; observedP99Ms?: number | null; baselineP99Ms?: number | null; paceRowsPerSecond?: number | null; measuringBaseline?: boolean; signal?: 'read' | 'commit' | 'statements' | 'throughput' | 'application' | 'prometheus'; prometheusValue?: number | null; prometheusMax?: number; statementsObservedMeanMs?: number | null; statementsBaselineMeanMs?: number | null; statementsPerSecond?: number | null; baselineStatementsPerSecond?: number | null } | null;
  /** The datasource's latency guard while the backfill is guarded (absent from older control planes). */
  latencyGuard?: { mode: 'baseline' | 'guarding'; holding: boolean; paceRowsPerSecond: number | null; observedP99Ms: number | null; baselineP99Ms: number | null; targetP99Ms: number | null; prometheus?: { value: number | null; max: number; error: string | null } | null; throughput?: { baselinePerSecond: number | null; observedPerSecond: number | null } | null } | null;
  completedAt?: string | null;
}

/** The read ramp of a migration in cutover (`progress.ramp`), when the API reports one. */
export interface RampProgress {
  /** Index into `spec.ramp.steps`; -1 before the first step. */
  step: number;
  percent: number;
  nextAt: string | null;
  /** `holding`, `awaiting_approval`, … (absent from older control planes). */
  status?: string;
}

export interface MigrationResource {
  id: string;
  name: string;
  phase: Phase;
  status: Status;
  version: number;
  spec: Record<string, unknown>;
  progress: BackfillProgress & { ramp?: RampProgress } & Record<string, unknown>;
  gates: Gate[];
  allowedActions: Action[];
  phaseEnteredAt: string;
  createdAt: string;
  updatedAt: string;
  /** Not in the API yet; read when present. */
  ramp?: RampProgress;
}

export interface MigrationEvent {
  seq: number;
  actor: string;
  action: string;
  fromPhase: Phase | null;
  fromStatus: Status | null;
  toPhase: Phase | null;
  toStatus: Status | null;
  reason: string | null;
  details: Record<string, unknown>;
  at: string;
}

export const CHUNK_STATUSES = ['pending', 'running', 'done', 'failed', 'split', 'skipped'] as const;
export type ChunkStatus = (typeof CHUNK_STATUSES)[number];

export interface Chunk {
  id: number;
  lowerKey: string[] | null;
  upperKey: string[] | null;
  status: ChunkStatus;
  attempts: number;
  timeouts: number;
  rowsCopied: number | null;
  durationMs: number | null;
  worker: string | null;
  leaseExpiresAt: string | null;
  lastError: string | null;
  finishedAt: string | null;
}

export interface DivergenceWindow {
  samples: number;
  mismatches: number;
  errors: number;
  rate: number;
  rateUpper95: number;
  oldP99Ms: number | null;
  newP99Ms: number | null;
  dualWrites: number;
  dualWriteFailures: number;
  dropped: number;
}

export const DIVERGENCE_KINDS = ['mismatch', 'new_error', 'dual_write_failure', 'old_write_failure'] as const;
export type DivergenceKind = (typeof DIVERGENCE_KINDS)[number];

export interface DivergenceItem {
  key: string;
  kind: DivergenceKind;
  firstSeen: string;
  lastSeen: string;
  count: number;
  diffPaths: string[];
  error: string | null;
  redrivenAt: string | null;
}

export interface Divergences {
  totals: { samples: number; mismatches: number; errors: number };
  rate: number;
  rateUpper95: number;
  all: DivergenceWindow;
  window5m: DivergenceWindow;
  items: DivergenceItem[];
  nextCursor: string | null;
}

export type FindingKind = 'missing' | 'extra' | 'different';

/** A repair of a verification's findings (`POST …/verifications/:vid/repair`, `repairs` of a verification). */
export interface VerificationRepair {
  id: string;
  verificationId: string;
  actor: string;
  status: 'running' | 'finished' | 'failed';
  /** Findings no earlier repair had fixed when this one started. */
  keysAttempted: number;
  upserted: number;
  deleted: number;
  fixed: number;
  stillDifferent: number;
  error: string | null;
  /** Up to 20 re-checked keys, the still-different first. */
  sampleKeys: { key: string[]; kind: FindingKind; outcome: 'fixed' | 'still_different' }[];
  startedAt: string;
  finishedAt: string | null;
}

/** What `POST …/verifications/:vid/repair` answers: the repair and the verification after it. */
export interface VerificationRepairResult extends VerificationRepair {
  verification: Verification;
}

/**
 * A verification. `status` and the finding counts are what the check found (a repair never
 * changes them); `outcome` is `repaired` once repairs fixed every finding, `null` while running.
 */
export interface Verification {
  id: string;
  migrationId: string;
  status: 'running' | 'passed' | 'failed';
  outcome: 'passed' | 'failed' | 'repaired' | null;
  createdBy: string;
  rangesTotal: number;
  rangesChecked: number;
  rowsCompared: number;
  missingInTarget: number;
  extraInTarget: number;
  different: number;
  repaired: number;
  unrepaired: number;
  /** Up to 20 findings, unrepaired first. */
  sampleKeys: { key: string[]; kind: FindingKind; repairedBy: string | null }[];
  /** Oldest first. */
  repairs: VerificationRepair[];
  startedAt: string;
  finishedAt: string | null;
}

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Token {
  name: string;
  role: Role;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/**
 * An item of `GET /v1/cleanups`: a migration whose old side waits for cleanup. The brief named the
 * deadline `cleanupDeadline`; the route as built names it `deadline`: both are read.
 */
export interface CleanupItem {
  migrationId: string;
  name: string;
  phase?: string;
  status?: string;
  cleanupDeadline?: string | null;
  deadline?: string | null;
  overdue: boolean;
  executedAt?: string | null;
  [field: string]: unknown;
}
