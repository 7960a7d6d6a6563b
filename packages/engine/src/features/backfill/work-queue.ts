import { JOB_CATALOG, chunkJobId, type BackfillChunkJob } from '@tideway/queue';
import type { Queue } from 'bullmq';

/** Where chunk jobs go. PostgreSQL stays the state of record; this only wakes workers up. */
export interface WorkQueue {
  /** Adds the job of a chunk attempt; adding the same attempt twice is a no-op. */
  enqueueChunk(job: BackfillChunkJob, delayMs: number): Promise<void>;
  /** True when the job of that chunk attempt is still in the queue (waiting, delayed or active). */
  hasChunkJob(chunkId: number, attempt: number): Promise<boolean>;
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

  async hasChunkJob(chunkId: number, attempt: number): Promise<boolean> {
    const job = await this.queue.getJob(chunkJobId(chunkId, attempt));
    if (!job) return false;
    const state = await job.getState();
    return state === 'waiting' || state === 'delayed' || state === 'active' || state === 'prioritized' || state === 'waiting-children';
  }
}
