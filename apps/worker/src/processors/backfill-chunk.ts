import type { BackfillService, ChunkOutcome } from '@tideway/engine';
import type { BackfillChunkJob } from '@tideway/queue';
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
