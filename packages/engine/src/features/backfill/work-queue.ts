import { JOB_CATALOG, chunkJobId, rangeJobId, type BackfillChunkJob, type VerificationRangeJob } from '@tideway/queue';
import type { Queue } from 'bullmq';

/** Where chunk jobs go. PostgreSQL stays the state of record; this only wakes workers up. */
export interface WorkQueue {
  /** Adds the job of a chunk attempt; adding the same attempt twice is a no-op. */
  enqueueChunk(job: BackfillChunkJob, delayMs: number): Promise<void>;
  /** True when the job of that chunk attempt is still in the queue (waiting, delayed or active). */
  hasChunkJob(chunkId: number, attempt: number): Promise<boolean>;
  /** Adds the job of a verification range attempt; idempotent like chunks. */
  enqueueRange(job: VerificationRangeJob): Promise<void>;
  hasRangeJob(rangeId: number, attempt: number): Promise<boolean>;
}

/** {@link WorkQueue} on a BullMQ queue, with the catalog's priority and options. */
export class BullmqWorkQueue implements WorkQueue {
  constructor(private readonly queue: Queue) {}

  async enqueueChunk(job: BackfillChunkJob, delayMs: number): Promise<void> {
    await this.queue.add('backfill.chunk', job, {
      ...JOB_CATALOG['backfill.chunk'].options,
      jobId: chunkJobId(job.chunkId, job.attempt),
      delay: Math.max(0, Math.round(delayMs)),
    });
  }

  async enqueueRange(job: VerificationRangeJob): Promise<void> {
    await this.queue.add('verification.range', job, { ...JOB_CATALOG['verification.range'].options, jobId: rangeJobId(job.rangeId, job.attempt) });
  }

  async hasRangeJob(rangeId: number, attempt: number): Promise<boolean> {
    return this.#has(rangeJobId(rangeId, attempt));
  }

  async hasChunkJob(chunkId: number, attempt: number): Promise<boolean> {
    return this.#has(chunkJobId(chunkId, attempt));
  }

  async #has(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) return false;
    const state = await job.getState();
    return state === 'waiting' || state === 'delayed' || state === 'active' || state === 'prioritized' || state === 'waiting-children';
  }
}
