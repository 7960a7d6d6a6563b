import { DependencyUnavailableError } from '@tideway/core';
import { JOB_CATALOG, workJobId, type WorkJob } from '@tideway/queue';
import type { Queue } from 'bullmq';

/** Longest wait on Redis for one queue operation, milliseconds (issue 11: no request waits longer on a down Redis). */
export const QUEUE_TIMEOUT_MS = 2_000;

/**
 * Runs one Redis operation with a time bound. Any failure — no answer within `timeoutMs`, a refused
 * command (producer connections do not queue commands while Redis is down), a dropped connection —
 * becomes a {@link DependencyUnavailableError} naming `redis`, which the API answers as 503 and
 * leased work treats as transient. An operation still running at the bound is abandoned, not
 * cancelled: its late result is ignored (job ids make a late add harmless, ADR 007).
 *
 * @param what - what was asked, for the message (`add chunk-1-a1-e1`).
 * @throws DependencyUnavailableError.
 * @example
 * ```ts
 * await boundedRedis('ping', () => redis.ping(), 2000);
 * ```
 */
export async function boundedRedis<T>(what: string, op: () => Promise<T>, timeoutMs: number = QUEUE_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      op(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DependencyUnavailableError('redis', `${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    if (error instanceof DependencyUnavailableError) throw error;
    throw new DependencyUnavailableError('redis', `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Where leased work's jobs go: the work queue. PostgreSQL stays the state of record; a job only
 * wakes a worker up to lease its unit, and the reconciler replaces any job Redis lost.
 */
export interface WorkQueue {
  /** Adds a job; adding the same job (same id) twice is a no-op. @throws DependencyUnavailableError naming `redis`. */
  add(job: WorkJob, delayMs?: number): Promise<void>;
  /** True while the job is waiting, delayed, prioritized or active (not failed, completed or gone). @throws DependencyUnavailableError */
  has(job: WorkJob): Promise<boolean>;
  /** Resolves when Redis answers. @throws DependencyUnavailableError naming `redis`. */
  ping(): Promise<void>;
}

/** Options of {@link BullmqWorkQueue}. */
export interface BullmqWorkQueueOptions {
  /** Bound of each operation, milliseconds. @defaultValue {@link QUEUE_TIMEOUT_MS} */
  readonly timeoutMs?: number;
}

const LIVE_STATES = new Set(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);

/** {@link WorkQueue} on a BullMQ queue, with the catalog's priority and options; every operation bounded by {@link boundedRedis}. */
export class BullmqWorkQueue implements WorkQueue {
  readonly #timeoutMs: number;

  constructor(
    private readonly queue: Queue,
    options: BullmqWorkQueueOptions = {},
  ) {
    this.#timeoutMs = options.timeoutMs ?? QUEUE_TIMEOUT_MS;
  }

  async add(job: WorkJob, delayMs = 0): Promise<void> {
    const id = workJobId(job);
    await boundedRedis(`add ${id}`, () => this.queue.add(job.name, job.data, { ...JOB_CATALOG[job.name].options, jobId: id, delay: Math.max(0, Math.round(delayMs)) }), this.#timeoutMs);
  }

  async has(job: WorkJob): Promise<boolean> {
    const id = workJobId(job);
    return LIVE_STATES.has(await boundedRedis(`state of ${id}`, () => this.queue.getJobState(id), this.#timeoutMs));
  }

  async ping(): Promise<void> {
    // Any round trip will do: a count of the queued jobs is one cheap command.
    await boundedRedis('ping', () => this.queue.count(), this.#timeoutMs);
  }
}
