import type { Database, WorkKind } from '@tideway/db';
import type { WorkJob, WorkJobName } from '@tideway/queue';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { Heartbeat } from './heartbeat.js';
import { LeaseLostError } from './lease-lost-error.js';
import { dependencyOf, errorMessage } from './transient-error.js';
import type { WorkBlocks } from './work-blocks.js';
import type { WorkQueue } from './work-queue.js';

/**
 * Lease length, milliseconds. Short, because the heartbeat renews it while the unit runs: a worker
 * that dies (SIGKILL, OOM, a lost host) holds its unit for at most this long before the reconciler
 * releases it to another worker. (Before heartbeats a chunk's lease had to outlast its statement
 * timeout: 35 s by default, 60 s for a range.)
 */
export const LEASE_MS = 10_000;

/**
 * Pause between lease renewals, milliseconds: a third of {@link LEASE_MS}, so two renewals in a row
 * may fail (an orchestrator restart) before the lease is given up.
 */
export const HEARTBEAT_MS = 3_000;

/** A queued unit whose job is not in Redis after this long, seconds, is re-driven (lost job). */
export const LOST_JOB_AFTER_SECONDS = 5;

/**
 * One kind of leased work: a table of units that share the lifecycle's columns (`status` pending /
 * running / …, `attempts`, `interruptions`, `enqueues`, `enqueued_at`, `not_before`, `worker`,
 * `lease_token`, `lease_expires_at`, `last_error`, `started_at`) and the job that points at a unit.
 * The SQL fragments are constants of Tideway's own schema (no user input), over the unit row `u`.
 */
export interface LeasedWorkKind {
  /** The kind, as `work_blocks.kind` and in audit events. */
  readonly work: WorkKind;
  /** The job name on the work queue. */
  readonly job: WorkJobName;
  readonly table: 'backfill_chunks' | 'verification_ranges';
  /** The column naming the unit's owner (its migration or verification). */
  readonly parentColumn: 'migration_id' | 'verification_id';
  /** True while the owner wants the work done (SQL over `u`): the migration is in backfill and active, the verification running. */
  readonly liveSql: string;
  /** The unit's migration id (SQL over `u`). */
  readonly migrationSql: string;
  /** The job of one enqueue of a unit. */
  jobOf(unit: QueuedUnit): WorkJob;
}

/** Backfill chunks (`backfill_chunks`), run while their migration is in backfill and active. */
export const CHUNK_WORK: LeasedWorkKind = {
  work: 'backfill',
  job: 'backfill.chunk',
  table: 'backfill_chunks',
  parentColumn: 'migration_id',
  liveSql: `EXISTS (SELECT 1 FROM migrations m WHERE m.id = u.migration_id AND m.phase = 'backfill' AND m.status = 'active')`,
  migrationSql: 'u.migration_id',
  jobOf: (u) => ({ name: 'backfill.chunk', data: { migrationId: u.parent, chunkId: u.id, attempt: u.attempts + 1, enqueue: u.enqueues } }),
};

/** Verification ranges (`verification_ranges`), run while their verification is running. */
export const RANGE_WORK: LeasedWorkKind = {
  work: 'verification',
  job: 'verification.range',
  table: 'verification_ranges',
  parentColumn: 'verification_id',
  liveSql: `EXISTS (SELECT 1 FROM verifications v WHERE v.id = u.verification_id AND v.status = 'running')`,
  migrationSql: '(SELECT v.migration_id FROM verifications v WHERE v.id = u.verification_id)',
  jobOf: (u) => ({ name: 'verification.range', data: { verificationId: u.parent, rangeId: u.id, attempt: u.attempts + 1, enqueue: u.enqueues } }),
};

/** A unit handed (or about to be handed) to the queue. */
export interface QueuedUnit {
  readonly id: number;
  /** The owner: a migration id (chunks) or a verification id (ranges). */
  readonly parent: string;
  readonly migrationId: string;
  /** Attempts so far; the job is for attempt `attempts + 1`. */
  readonly attempts: number;
  /** The enqueue generation the job carries. */
  readonly enqueues: number;
  /** Not runnable before this (backoff); `null` = now. */
  readonly notBefore: Date | null;
}

/** A lease this process holds on one unit. */
export interface Lease {
  readonly id: number;
  readonly migrationId: string;
  /** Fences every write of the holder: it holds only while the row still carries this token. */
  readonly token: string;
  /** Attempts including this one. */
  readonly attempts: number;
  /** Earlier attempts ended by a transient error. */
  readonly interruptions: number;
  /** `performance.now()` when the claim was sent (the lease is good at least until then + {@link LEASE_MS}). */
  readonly sentAt: number;
}

/** How an attempt hands its unit back for a later one. */
export interface RetryLater {
  /** Recorded as `last_error`. */
  readonly error: string;
  /** Runnable again after this long, milliseconds. */
  readonly delayMs: number;
  /** The attempt was cut short by a transient error: counted in `interruptions`, not toward `maxAttempts`. */
  readonly interrupted: boolean;
  /** More assignments for the kind's own columns (e.g. `timeouts = timeouts + 1`). */
  readonly extraSet?: RawBuilder<unknown>;
}

interface UnitRow {
  id: number;
  parent: string;
  migration_id: string;
  attempts: number;
  enqueues: number;
  not_before: Date | null;
}

const toUnit = (r: UnitRow): QueuedUnit => ({ id: r.id, parent: r.parent, migrationId: r.migration_id, attempts: r.attempts, enqueues: r.enqueues, notBefore: r.not_before });

/**
 * The lifecycle of one kind of leased work (shared/DESIGN.md §3, ADR 007), the same for backfill
 * chunks and verification ranges:
 *
 * 1. **Enqueue** ({@link take} then {@link send}): a pending unit no job points at takes a new enqueue
 *    generation (`enqueues + 1`, `enqueued_at`) in PostgreSQL first, then its job is added under the
 *    id `<kind>-<id>-a<attempt>-e<generation>`. A failed add marks it unqueued again.
 * 2. **Claim** ({@link claim}): only the job of the unit's current generation, once its backoff has
 *    passed and while its owner is live, in one statement: status running, attempts + 1, a fresh
 *    lease token, `lease_expires_at = now() + LEASE_MS`.
 * 3. **Run** ({@link run}): a {@link Heartbeat} renews the lease every {@link HEARTBEAT_MS}; the unit's
 *    writes are fenced by the token (the chunk copier checks {@link holds} right before COMMIT).
 * 4. **Finish**, kind-specific (the chunk's checkpoint, the range's result), fenced by the token;
 *    or **retry later** ({@link retryLater}): back to pending with a backoff, an interruption when the
 *    error was transient.
 * 5. **Reconcile** ({@link releaseExpired}, {@link findLost}): leases that ran out go back to pending;
 *    a queued unit whose job is not live in Redis any more (failed, completed, flushed) is marked
 *    unqueued, so the next pump gives it a new generation — and so a new job id.
 *
 * Units whose work cannot go on because a dependency is down are reported through
 * {@link WorkBlocks} (`progress.blocked`, one audit event when blocked and one when cleared).
 */
export class LeasedWork {
  constructor(
    readonly kind: LeasedWorkKind,
    private readonly db: Kysely<Database>,
    private readonly queue: WorkQueue | null,
    readonly blocks: WorkBlocks,
  ) {}

  /** Whether jobs can be sent at all (a process without a queue only records work). */
  get hasQueue(): boolean {
    return this.queue !== null;
  }

  /**
   * Gives every pending, unqueued, live unit that `scope` selects a new enqueue generation and
   * returns them in id order, to {@link send} after the caller's transaction commits. Nothing is
   * taken without a queue.
   *
   * @param scope - a condition over `u` (e.g. `u.migration_id = $1`).
   */
  async take(trx: Kysely<Database>, scope: RawBuilder<boolean>): Promise<QueuedUnit[]> {
    if (!this.queue) return [];
    const k = this.kind;
    const r = await sql<UnitRow>`
      UPDATE ${sql.table(k.table)} AS u SET enqueued_at = now(), enqueues = u.enqueues + 1
       WHERE u.status = 'pending' AND u.enqueued_at IS NULL AND ${scope} AND ${sql.raw(k.liveSql)}
      RETURNING u.id, u.${sql.ref(k.parentColumn)} AS parent, ${sql.raw(k.migrationSql)} AS migration_id, u.attempts, u.enqueues, u.not_before`.execute(trx);
    return r.rows.map(toUnit).sort((a, b) => a.id - b.id);
  }

  /**
   * Adds the jobs of units {@link take} returned, in order. On the first failure (Redis down) it
   * marks that unit and the rest unqueued again (so the next pump retries them under a new
   * generation), reports the migrations as blocked on the queue, and throws.
   *
   * @param delayMs - per unit, milliseconds until its job may run. @defaultValue until `notBefore`
   * @returns the number of jobs added.
   * @throws DependencyUnavailableError naming `redis`.
   */
  async send(units: readonly QueuedUnit[], delayMs: (unit: QueuedUnit, index: number) => number = (u) => (u.notBefore ? u.notBefore.getTime() - Date.now() : 0)): Promise<number> {
    if (!this.queue || units.length === 0) return 0;
    for (let i = 0; i < units.length; i++) {
      const unit = units[i] as QueuedUnit;
      try {
        await this.queue.add(this.kind.jobOf(unit), delayMs(unit, i));
      } catch (error) {
        const rest = units.slice(i);
        await Promise.all(rest.map((u) => this.markUnqueued(u.id, u.enqueues).catch(() => undefined)));
        await this.#blockOnQueue(rest, error);
        throw error;
      }
    }
    return units.length;
  }

  /** Marks a pending unit unqueued again, if it is still at generation `enqueue`. */
  async markUnqueued(id: number, enqueue: number): Promise<void> {
    await sql`UPDATE ${sql.table(this.kind.table)} SET enqueued_at = NULL WHERE id = ${id} AND status = 'pending' AND enqueues = ${enqueue}`.execute(this.db);
  }

  /**
   * Takes the lease of unit `id` for the job of generation `enqueue`: only while the unit is pending,
   * at that generation, past its backoff and its owner is live. Returns the lease and the unit's row
   * (every column), or `undefined` when another job or worker has it or it is not runnable.
   */
  async claim<R>(id: number, enqueue: number, worker: string): Promise<{ lease: Lease; row: R } | undefined> {
    const k = this.kind;
    const sentAt = performance.now();
    const r = await sql<R & { lease_token: string; attempts: number; interruptions: number; tideway_migration_id: string }>`
      UPDATE ${sql.table(k.table)} AS u
         SET status = 'running', attempts = u.attempts + 1, worker = ${worker}, lease_token = gen_random_uuid(),
             lease_expires_at = now() + make_interval(secs => ${LEASE_MS / 1000}), started_at = now()
       WHERE u.id = ${id} AND u.status = 'pending' AND u.enqueues = ${enqueue}
         AND (u.not_before IS NULL OR u.not_before <= now()) AND ${sql.raw(k.liveSql)}
      RETURNING u.*, ${sql.raw(k.migrationSql)} AS tideway_migration_id`.execute(this.db);
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      lease: { id, migrationId: row.tideway_migration_id, token: row.lease_token, attempts: row.attempts, interruptions: row.interruptions, sentAt },
      row,
    };
  }

  /**
   * Extends the lease by {@link LEASE_MS} from now, if it is still this token's and has not run out.
   * A lease that ran out is never revived, even before the reconciler released it: that is what
   * keeps ADR 005's argument (a copy that passed the lease check began before its lease expired).
   */
  async renew(lease: Lease): Promise<boolean> {
    const r = await sql`
      UPDATE ${sql.table(this.kind.table)} SET lease_expires_at = now() + make_interval(secs => ${LEASE_MS / 1000})
       WHERE id = ${lease.id} AND lease_token = ${lease.token} AND status = 'running' AND lease_expires_at > now()`.execute(this.db);
    return Number(r.numAffectedRows ?? 0) === 1;
  }

  /** True while the lease is this token's, the unit running and the lease not run out: the fence right before a commit. */
  async holds(lease: Lease): Promise<boolean> {
    const r = await sql`
      SELECT 1 FROM ${sql.table(this.kind.table)}
       WHERE id = ${lease.id} AND lease_token = ${lease.token} AND status = 'running' AND lease_expires_at > now()`.execute(this.db);
    return r.rows.length === 1;
  }

  /**
   * Runs `fn` while a {@link Heartbeat} keeps the lease; `fn` gets the heartbeat's signal, aborted when
   * the lease is given up (stop early; the pre-commit check is the fence). When `fn` fails after the
   * lease was given up, the failure is reported as {@link LeaseLostError} (its cause the original).
   *
   * @throws LeaseLostError, or whatever `fn` throws.
   */
  async run<T>(lease: Lease, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const beat = new Heartbeat(() => this.renew(lease), { leaseMs: LEASE_MS, intervalMs: HEARTBEAT_MS }, lease.sentAt);
    try {
      return await fn(beat.signal);
    } catch (error) {
      if (beat.lost !== null && !(error instanceof LeaseLostError)) throw new LeaseLostError(`the lease was given up: ${beat.lost}`, { cause: error });
      throw error;
    } finally {
      beat.stop();
    }
  }

  /** Hands the unit back for a later attempt (see {@link RetryLater}), if the lease is still this token's. */
  async retryLater(lease: Lease, retry: RetryLater): Promise<void> {
    await sql`
      UPDATE ${sql.table(this.kind.table)}
         SET status = 'pending', lease_token = NULL, lease_expires_at = NULL, enqueued_at = NULL,
             not_before = now() + make_interval(secs => ${Math.max(0, retry.delayMs) / 1000}), last_error = ${retry.error},
             interruptions = interruptions + ${retry.interrupted ? 1 : 0}${retry.extraSet ? sql`, ${retry.extraSet}` : sql``}
       WHERE id = ${lease.id} AND lease_token = ${lease.token}`.execute(this.db);
  }

  /** A condition for a finishing statement's RETURNING: whether the lease's migration has this kind of work blocked. */
  blockedSql(lease: Lease): RawBuilder<boolean> {
    return sql<boolean>`EXISTS (SELECT 1 FROM work_blocks WHERE migration_id = ${lease.migrationId} AND kind = ${this.kind.work})`;
  }

  /** Leases that ran out (their worker died or stalled): back to pending and unqueued. Returns the units released. */
  async releaseExpired(): Promise<{ id: number; parent: string }[]> {
    const k = this.kind;
    const r = await sql<{ id: number; parent: string }>`
      UPDATE ${sql.table(k.table)} AS u
         SET status = 'pending', lease_token = NULL, lease_expires_at = NULL, worker = NULL, enqueued_at = NULL, last_error = 'lease expired'
       WHERE u.status = 'running' AND u.lease_expires_at < now()
      RETURNING u.id, u.${sql.ref(k.parentColumn)} AS parent`.execute(this.db);
    return r.rows;
  }

  /**
   * Queued, live units whose job is not live in Redis (failed, completed without leasing, lost to a
   * FLUSHALL), queued longer ago than {@link LOST_JOB_AFTER_SECONDS}: marked unqueued, so the next
   * pump sends them again under a new generation. Returns the units found.
   *
   * @throws DependencyUnavailableError naming `redis` when the queue does not answer.
   */
  async findLost(): Promise<QueuedUnit[]> {
    if (!this.queue) return [];
    const k = this.kind;
    const r = await sql<UnitRow>`
      SELECT u.id, u.${sql.ref(k.parentColumn)} AS parent, ${sql.raw(k.migrationSql)} AS migration_id, u.attempts, u.enqueues, u.not_before
        FROM ${sql.table(k.table)} AS u
       WHERE u.status = 'pending' AND u.enqueued_at < now() - make_interval(secs => ${LOST_JOB_AFTER_SECONDS}) AND ${sql.raw(k.liveSql)}`.execute(this.db);
    const units = r.rows.map(toUnit);
    const lost: QueuedUnit[] = [];
    for (const unit of units) {
      let live: boolean;
      try {
        live = await this.queue.has(this.kind.jobOf(unit));
      } catch (error) {
        // The queue does not answer: no queued unit can reach a worker.
        await this.#blockOnQueue(units, error);
        throw error;
      }
      if (live) continue;
      await this.markUnqueued(unit.id, unit.enqueues);
      lost.push(unit);
    }
    return lost;
  }

  /** Marks the migrations of `units` blocked on the queue (best effort: this runs while something is already failing). */
  async #blockOnQueue(units: readonly QueuedUnit[], error: unknown): Promise<void> {
    for (const migrationId of new Set(units.map((u) => u.migrationId))) {
      await this.blocks
        .block(migrationId, this.kind.work, { reason: 'queue-unavailable', dependency: dependencyOf(error, 'redis'), message: errorMessage(error) })
        .catch(() => undefined);
    }
  }
}
