import type { BackfillService, ChunkOutcome, RangeOutcome, VerificationService } from '@tideway/engine';
import type { BackfillChunkJob, VerificationRangeJob } from '@tideway/queue';
import { DelayedError, type Job } from 'bullmq';

/**
 * The `backfill.chunk` processor. A throttled chunk goes back to the delayed set for a while
 * (BullMQ's `moveToDelayed` + `DelayedError`), so the worker slot is free and the job keeps its id.
 */
export function backfillChunkProcessor(backfill: BackfillService) {
  return async (job: Job<BackfillChunkJob>, token?: string): Promise<ChunkOutcome> => {
    const outcome = await backfill.runChunk(job.data);
    if (outcome.kind === 'throttled') {
      await job.moveToDelayed(Date.now() + outcome.retryInMs, token);
      throw new DelayedError();
    }
    return outcome;
  };
}

/**
 * The work-queue processor: `backfill.chunk` and `verification.range` jobs share the queue (and its
 * priorities: verification above backfill); both step aside with a delay while throttled.
 */
export function workProcessor(backfill: BackfillService, verification: VerificationService) {
  const chunk = backfillChunkProcessor(backfill);
  return async (job: Job, token?: string): Promise<ChunkOutcome | RangeOutcome> => {
    if (job.name === 'backfill.chunk') return chunk(job as Job<BackfillChunkJob>, token);
    if (job.name === 'verification.range') {
      const outcome = await verification.runRange(job.data as VerificationRangeJob);
      if (outcome.kind === 'throttled') {
        await job.moveToDelayed(Date.now() + outcome.retryInMs, token);
        throw new DelayedError();
      }
      return outcome;
    }
    throw new Error(`unknown work job ${job.name}`);
  };
}
