import type { JobsOptions } from 'bullmq';

/** The queues Tideway uses. Every key is namespaced by the configured prefix (`{tideway}` by default). */
export const QUEUE_NAMES = {
  /** Chunk copies and verification ranges: bulk work, low priority. */
  work: 'tideway-work',
  /** Transitions, abort-criteria evaluations and timers: small, urgent. */
  control: 'tideway-control',
} as const;
export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

/**
 * BullMQ priorities (1 is the highest). Every job gets one on purpose: in BullMQ a job without a
 * priority runs before every prioritised job.
 */
export const PRIORITIES = { control: 1, verification: 50, backfill: 100 } as const;

/** Data of a `backfill.chunk` job: ids only, never rows or secrets. */
export interface BackfillChunkJob {
  readonly migrationId: string;
  readonly chunkId: number;
  /** The chunk attempt this job is for (attempts + 1 at enqueue time); part of the job id. */
  readonly attempt: number;
  /**
   * The chunk's enqueue generation (`backfill_chunks.enqueues` after this enqueue); part of the job
   * id. Only the job of the chunk's current generation may lease it (ADR 007).
   */
  readonly enqueue: number;
  /** Transient failures of this job before it reached its chunk (orchestrator database down); set by the worker. */
  readonly transientRetries?: number;
}

/** Data of a `verification.range` job: ids only. */
export interface VerificationRangeJob {
  readonly verificationId: string;
  readonly rangeId: number;
  /** The range attempt this job is for (attempts + 1 at enqueue time). */
  readonly attempt: number;
  /** The range's enqueue generation (`verification_ranges.enqueues`), as for chunks. */
  readonly enqueue: number;
  /** As {@link BackfillChunkJob.transientRetries}. */
  readonly transientRetries?: number;
}

/** Data of a `control.evaluate` job: judge the abort criteria of every active migration. */
export type EvaluateJob = Record<string, never>;

/** Data of a `webhook.deliver` job: one event to one URL (the body is signed when sent). */
export interface WebhookJob {
  readonly url: string;
  readonly event: string;
  readonly payload: Record<string, unknown>;
}

/** Every job type: its queue, its data, and its default options. */
export const JOB_CATALOG = {
  'backfill.chunk': {
    queue: QUEUE_NAMES.work,
    options: {
      priority: PRIORITIES.backfill,
      // Retries are counted in PostgreSQL (backfill_chunks.attempts) and re-enqueued with backoff
      // by the engine, so a FLUSHALL cannot reset them: one BullMQ attempt per job. A failed job is
      // kept (for inspection) and replaced under a new id by the reconciler (ADR 007).
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: { count: 1000 },
    },
  },
  'verification.range': {
    queue: QUEUE_NAMES.work,
    options: { priority: PRIORITIES.verification, attempts: 1, removeOnComplete: true, removeOnFail: { count: 1000 } },
  },
  'control.evaluate': {
    queue: QUEUE_NAMES.control,
    options: { priority: PRIORITIES.control, attempts: 1, removeOnComplete: true, removeOnFail: { count: 100 } },
  },
  'webhook.deliver': {
    queue: QUEUE_NAMES.control,
    // Retries with exponential backoff and jitter: 1 s, 2 s, 4 s … (± half), 8 attempts (~4 min).
    options: { priority: PRIORITIES.control, attempts: 8, backoff: { type: 'exponential', delay: 1000, jitter: 0.5 }, removeOnComplete: true, removeOnFail: { count: 1000 } },
  },
} as const satisfies Record<string, { queue: QueueName; options: JobsOptions }>;

/** Id of the job scheduler that runs `control.evaluate` every interval. */
export const EVALUATE_SCHEDULER_ID = 'abort-criteria';
export type JobName = keyof typeof JOB_CATALOG;

/**
 * Deterministic job id of one enqueue of a verification range: `vrange-<id>-a<attempt>-e<enqueue>`.
 * @see chunkJobId
 */
export function rangeJobId(rangeId: number, attempt: number, enqueue: number): string {
  return `vrange-${rangeId}-a${attempt}-e${enqueue}`;
}

/**
 * Deterministic job id of one enqueue of a chunk: `chunk-<id>-a<attempt>-e<enqueue>`. Adding the
 * same id twice is a no-op in BullMQ (two reconcilers cannot queue one enqueue twice), and every
 * re-drive from PostgreSQL takes a new enqueue generation first, so a job that failed or completed
 * and still sits in BullMQ under its id never swallows the replacement (ADR 007).
 *
 * @example
 * ```ts
 * chunkJobId(42, 1, 3); // 'chunk-42-a1-e3'
 * ```
 */
export function chunkJobId(chunkId: number, attempt: number, enqueue: number): string {
  return `chunk-${chunkId}-a${attempt}-e${enqueue}`;
}

/** The job names on the work queue: one per kind of leased work. */
export type WorkJobName = 'backfill.chunk' | 'verification.range';

/** A job on the work queue: its name and data. */
export type WorkJob =
  | { readonly name: 'backfill.chunk'; readonly data: BackfillChunkJob }
  | { readonly name: 'verification.range'; readonly data: VerificationRangeJob };

/** The deterministic id of a work-queue job ({@link chunkJobId} or {@link rangeJobId}). */
export function workJobId(job: WorkJob): string {
  return job.name === 'backfill.chunk'
    ? chunkJobId(job.data.chunkId, job.data.attempt, job.data.enqueue)
    : rangeJobId(job.data.rangeId, job.data.attempt, job.data.enqueue);
}
