import { isTransientError, transientRetryDelayMs, type BackfillService, type ChunkOutcome, type RangeOutcome, type VerificationService } from '@tideway/engine';
import type { BackfillChunkJob, VerificationRangeJob } from '@tideway/queue';
import { DelayedError, type Job } from 'bullmq';

type LeasedJob = BackfillChunkJob | VerificationRangeJob;

/**
 * Runs one leased-work job. A throttled unit goes back to the delayed set for a while (BullMQ's
 * `moveToDelayed` + `DelayedError`), so the worker slot is free and the job keeps its id. A
 * transient error (the orchestrator database or a datasource not answering before the unit was
 * leased) does the same with backoff and jitter, counted in the job's `transientRetries`: the job
 * is retried, never failed, and the process carries on (ADR 007). Should a job fail anyway, the
 * reconciler replaces it under a new enqueue generation.
 */
async function runLeased<D extends LeasedJob, O extends { kind: string }>(job: Job<D>, token: string | undefined, run: (data: D) => Promise<O>): Promise<O> {
  let outcome: O;
  try {
    outcome = await run(job.data);
  } catch (error) {
    if (!isTransientError(error)) throw error;
    const retries = (job.data.transientRetries ?? 0) + 1;
    await job.updateData({ ...job.data, transientRetries: retries });
    await job.moveToDelayed(Date.now() + transientRetryDelayMs(retries), token);
    throw new DelayedError();
  }
  const retryInMs = (outcome as { retryInMs?: number }).retryInMs;
  if (outcome.kind === 'throttled' && retryInMs !== undefined) {
    await job.moveToDelayed(Date.now() + retryInMs, token);
    throw new DelayedError();
  }
  return outcome;
}

/** The `backfill.chunk` processor (see {@link workProcessor}). */
export function backfillChunkProcessor(backfill: BackfillService) {
  return (job: Job<BackfillChunkJob>, token?: string): Promise<ChunkOutcome> => runLeased(job, token, (data) => backfill.runChunk(data));
}

/**
 * The work-queue processor: `backfill.chunk` and `verification.range` jobs share the queue (and its
 * priorities: verification above backfill) and the same handling of throttling and transient errors.
 */
export function workProcessor(backfill: BackfillService, verification: VerificationService) {
  const chunk = backfillChunkProcessor(backfill);
  return async (job: Job, token?: string): Promise<ChunkOutcome | RangeOutcome> => {
    if (job.name === 'backfill.chunk') return chunk(job as Job<BackfillChunkJob>, token);
    if (job.name === 'verification.range') return runLeased(job as Job<VerificationRangeJob>, token, (data) => verification.runRange(data));
    throw new Error(`unknown work job ${job.name}`);
  };
}
