import { copiedColumn, loadSqlParser } from '../mapping/mapping-validator.js';
import { judgeHealth, retryDelayMs, TidewayError, type MigrationSpec, type ThrottleReason } from '@tideway/core';
import type { Database, VerificationRangesTable, VerificationRepairRow, VerificationRow } from '@tideway/db';
import type { VerificationRangeJob } from '@tideway/queue';
import { sql, type Kysely, type Selectable } from 'kysely';
import type pg from 'pg';
import type { BackfillService } from '../backfill/backfill-service.js';
import type { HealthProbe } from '../backfill/health-probe.js';
import { qualified, toSpecKeyOrder, type KeyShape, type KeyValue } from '../backfill/sql.js';
import type { LeasedWork } from '../leases/leased-work.js';
import { LeaseLostError } from '../leases/lease-lost-error.js';
import { dependencyOf, errorMessage, isTransientError, transientRetryDelayMs } from '../leases/transient-error.js';
import type { WorkQueue } from '../leases/work-queue.js';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import { InvalidCursorError } from '../migrations/migration-read-model.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { findingsOf, outcomeOf, type VerificationOutcome } from './verification-findings.js';
import { keyAtSql, sourceFingerprintSql, sourceRowsSql, targetFingerprintSql, targetRowsSql, type VerifyShape } from './verification-sql.js';

type VerificationRangeRow = Selectable<VerificationRangesTable>;

/** Rows per initial range. */
export const VERIFY_RANGE_ROWS = 20_000;
/** A mismatching range with at most this many rows on either side is diffed key by key. */
export const EXACT_DIFF_ROWS = 500;
/** Keys kept as samples in the verification resource. */
export const SAMPLE_KEYS = 20;
/**
 * A range found different is diffed again this many times before its differences count: a key
 * counts only if it differs in every round, so a write in flight (a best-effort second write of the
 * SDK, or a trigger-synced commit landing between the source and the target reads) is not a finding.
 * @defaultValue 3
 */
export const SETTLE_ROUNDS = 3;
/**
 * The pause before each settle round, milliseconds: an application-sync second write is
 * asynchronous (milliseconds, more under load); a trigger-synced one commits with its source row.
 */
export const SETTLE_DELAY_MS = { application: 500, trigger: 50 } as const;

/** Audit actor of what verification does by itself (finishing). */
const ACTOR = 'tideway:verification';

/** What a check found for a key. */
export type FindingKind = 'missing' | 'extra' | 'different';

/**
 * A repair of a verification's findings (its own record; the verification keeps what it found).
 * `keysAttempted` are the findings no earlier repair had fixed; each was re-copied from the source
 * (`upserted` target rows, `deleted` where the source row is gone) and re-checked: `fixed` are equal
 * now, `stillDifferent` are not. `status` is `running` until the repair ends (a crash leaves it so),
 * `failed` with `error` when it threw. `sampleKeys`: up to {@link SAMPLE_KEYS} re-checked keys, the
 * still-different first.
 */
export interface VerificationRepairView {
  readonly id: string;
  readonly verificationId: string;
  readonly actor: string;
  readonly status: 'running' | 'finished' | 'failed';
  readonly keysAttempted: number;
  readonly upserted: number;
  readonly deleted: number;
  readonly fixed: number;
  readonly stillDifferent: number;
  readonly error: string | null;
  readonly sampleKeys: { key: string[]; kind: FindingKind; outcome: 'fixed' | 'still_different' }[];
  readonly startedAt: string;
  readonly finishedAt: string | null;
}

/**
 * The verification resource. `status` and the finding counts (`missingInTarget`, `extraInTarget`,
 * `different`) are what the check found and never change after it finished; `repaired` of them a
 * repair fixed and re-checked, `unrepaired` not yet. `outcome` sums it up ({@link VerificationOutcome},
 * `null` while running). `sampleKeys`: up to {@link SAMPLE_KEYS} findings, unrepaired first, each
 * with the repair that fixed it. `repairs`: oldest first.
 */
export interface VerificationView {
  readonly id: string;
  readonly migrationId: string;
  readonly status: 'running' | 'passed' | 'failed';
  readonly outcome: VerificationOutcome | null;
  readonly createdBy: string;
  readonly rangesTotal: number;
  readonly rangesChecked: number;
  readonly rowsCompared: number;
  readonly missingInTarget: number;
  readonly extraInTarget: number;
  readonly different: number;
  readonly repaired: number;
  readonly unrepaired: number;
  readonly sampleKeys: { key: string[]; kind: FindingKind; repairedBy: string | null }[];
  readonly repairs: VerificationRepairView[];
  readonly startedAt: string;
  readonly finishedAt: string | null;
}

/** What `POST …/verifications/:vid/repair` answers: the repair record and the verification after it. */
export interface VerificationRepairResult extends VerificationRepairView {
  readonly verification: VerificationView;
}

/** What one range job did. */
export type RangeOutcome =
  | { readonly kind: 'matched' | 'diffed' | 'split'; readonly sourceRows: number; readonly targetRows: number }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'retrying'; readonly error: string; readonly retryInMs: number }
  | { readonly kind: 'throttled'; readonly reason: ThrottleReason; readonly retryInMs: number };

interface Deps {
  readonly db: Kysely<Database>;
  readonly datasources: DatasourceRegistry;
  readonly catalog: CatalogInspector;
  readonly health: HealthProbe;
  readonly backfill: BackfillService;
  /** Writes the `verification.*` audit events. */
  readonly migrations: Pick<MigrationService, 'recordEvent'>;
  /** The ranges' leased-work lifecycle (`RANGE_WORK`). */
  readonly ranges: LeasedWork;
  /** Checked before a verification is created; `null` where no queue is configured. */
  readonly queue: WorkQueue | null;
  readonly workerName: string;
}

function shapeOf(v: VerificationRow): VerifyShape {
  return {
    sourceKey: { columns: v.key_columns, types: v.key_types },
    targetKey: { columns: v.target_key_columns, types: v.target_key_types },
    targetTypes: v.target_types,
  };
}

/**
 * Verification like Vitess VDiff, by checksummed key ranges: the source key space is cut into
 * ranges; each range is compared by (row count, sum of 64-bit row hashes) of mapping(source) against
 * target; a range that differs is split in two until it holds at most {@link EXACT_DIFF_ROWS} rows,
 * then diffed key by key into missing / extra / different. The source and the target are read in
 * two snapshots, and under live traffic a key may be mid-write between them, so a diffed range is
 * diffed again {@link SETTLE_ROUNDS} times, {@link SETTLE_DELAY_MS} apart, and only keys different
 * in every round are findings (the re-read of a mismatch that online-migration shadow readers such
 * as GitHub's Scientist leave to the caller). Ranges are leased jobs on the work queue at
 * verification priority, throttled like chunks, and re-created from PostgreSQL after a crash.
 */
export class VerificationService {
  constructor(private readonly deps: Deps) {}

  /**
   * Starts a verification: checks the keys are copied across (a column or a cast of one) and that the work queue answers,
   * plans the ranges and enqueues them. A verification is work for workers: with Redis down none is
   * created (503), rather than one nobody can run yet. The verification, its ranges and the audit
   * event `verification.started` (actor, `rangesPlanned`) commit together, under the migration's
   * row lock (taken first), where the phase is checked again.
   * @throws TidewayError `INVALID_SPEC` when a key column is not copied across;
   *   `INVALID_TRANSITION` before the backfill phase or on a finished migration;
   *   DependencyUnavailableError naming `redis` (within `QUEUE_TIMEOUT_MS`) or a datasource; nothing is created then.
   */
  async start(migration: Migration, actor: string): Promise<VerificationView> {
    const spec = migration.spec;
    assertVerifiable(migration);
    const [source, target] = await Promise.all([this.deps.catalog.describe(spec.source), this.deps.catalog.describe(spec.target)]);
    if (!source || !target) throw new TidewayError('INVALID_SPEC', 'source or target table is gone', { field: source ? 'target.table' : 'source.table' });
    const wanted = [...spec.source.key].sort().join(',');
    const order = source.uniqueKeys.find((c) => [...c].sort().join(',') === wanted) ?? spec.source.key;
    await loadSqlParser();
    const targetKey = order.map((c) => spec.target.key.find((t) => copiedColumn(spec.mapping[t] ?? '') === c));
    if (targetKey.some((t) => t === undefined)) {
      throw new TidewayError('INVALID_SPEC', 'verification needs every source key column copied to a target key column (e.g. "id": "id" or "id": "id::bigint")', { field: 'mapping' });
    }
    const targetTypes = Object.fromEntries(Object.keys(spec.mapping).map((c) => [c, target.columns.get(c)?.type ?? 'text']));
    const key: KeyShape = { columns: [...order], types: order.map((c) => source.columns.get(c)?.type ?? 'text') };
    await this.deps.queue?.ping();
    const boundaries = await this.#plan(spec, key);
    const id = await this.deps.db.transaction().execute(async (trx) => {
      assertVerifiable(await lockMigration(trx, migration.id));
      const v = await trx
        .insertInto('verifications')
        .values({
          migration_id: migration.id,
          status: 'running',
          key_columns: JSON.stringify(key.columns),
          key_types: JSON.stringify(key.types),
          target_key_columns: JSON.stringify(targetKey),
          target_key_types: JSON.stringify((targetKey as string[]).map((c) => target.columns.get(c)?.type ?? 'text')),
          target_types: JSON.stringify(targetTypes),
          ranges_total: boundaries.length + 1,
          created_by: actor,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const bounds: (KeyValue | null)[] = [null, ...boundaries, null];
      await trx
        .insertInto('verification_ranges')
        .values(bounds.slice(0, -1).map((lower, i) => ({ verification_id: v.id, lower_key: lower ? JSON.stringify(lower) : null, upper_key: bounds[i + 1] ? JSON.stringify(bounds[i + 1]) : null, status: 'pending' as const })))
        .execute();
      await this.deps.migrations.recordEvent(migration.id, 'verification.started', { actor, details: { verificationId: v.id, rangesPlanned: boundaries.length + 1, keyColumns: key.columns } }, trx);
      return v.id;
    });
    // Recorded: should Redis fail right now, the reconciler sends the ranges once it answers.
    await this.pump(id).catch(() => undefined);
    return this.view(id);
  }

  async #plan(spec: MigrationSpec, key: KeyShape): Promise<KeyValue[]> {
    const out: KeyValue[] = [];
    let after: KeyValue | null = null;
    return this.deps.datasources.withClient(spec.source.datasource, async (client) => {
      for (;;) {
        const q = keyAtSql(qualified(spec.source), key, after, null, VERIFY_RANGE_ROWS - 1);
        const row = (await client.query<Record<string, string>>(q.sql, q.params)).rows[0];
        if (!row) return out;
        after = key.columns.map((_, i) => row[`k${i}`] as string);
        out.push(after);
      }
    });
  }

  /**
   * Sends a job for every pending range of the verification no job points at, each under a new
   * enqueue generation (ADR 007). @returns the number sent.
   * @throws DependencyUnavailableError naming `redis` (the ranges stay unqueued for the next pump).
   */
  async pump(verificationId: string): Promise<number> {
    const units = await this.deps.ranges.take(this.deps.db, sql<boolean>`u.verification_id = ${verificationId}`);
    return this.deps.ranges.send(units);
  }

  /**
   * Runs one range job: throttle check, lease, then under a heartbeat the fingerprints and a match /
   * exact diff / split, recorded behind the lease token. A failed attempt goes back to pending with
   * backoff (an interruption when the error is transient, see ADR 007).
   *
   * @throws a transient error met before the range was leased (the worker retries the job).
   */
  async runRange(job: VerificationRangeJob): Promise<RangeOutcome> {
    const { db, ranges } = this.deps;
    const [v, range] = await Promise.all([
      db.selectFrom('verifications').selectAll().where('id', '=', job.verificationId).executeTakeFirst(),
      db.selectFrom('verification_ranges').select(['status', 'enqueues']).where('id', '=', job.rangeId).executeTakeFirst(),
    ]);
    if (!v || v.status !== 'running') return { kind: 'skipped', reason: 'verification is not running' };
    if (!range || range.status !== 'pending') return { kind: 'skipped', reason: `range is ${range?.status ?? 'gone'}` };
    if (range.enqueues !== job.enqueue) return { kind: 'skipped', reason: 'stale job for an earlier enqueue' };
    const row = await db.selectFrom('migrations').selectAll().where('id', '=', v.migration_id).executeTakeFirstOrThrow();
    const migration = toMigration(row);
    const spec = migration.spec;
    let reading;
    try {
      reading = await this.deps.health.read(spec.source.datasource);
    } catch (error) {
      if (isTransientError(error)) await this.#blockOn(migration.id, error, `datasource "${spec.source.datasource}"`);
      throw error;
    }
    const reason = judgeHealth(reading, spec.throttle, null);
    if (reason) return { kind: 'throttled', reason, retryInMs: 1000 };
    const taken = await ranges.claim<VerificationRangeRow>(job.rangeId, job.enqueue, this.deps.workerName);
    if (!taken) return { kind: 'skipped', reason: 'range not claimable (leased elsewhere or backing off)' };
    const { lease, row: claimed } = taken;
    const shape = shapeOf(v);
    const lower = claimed.lower_key;
    const upper = claimed.upper_key;
    let checked: { sourceRows: number; targetRows: number; outcome: 'matched' | 'diffed' | 'split'; children: [KeyValue | null, KeyValue | null][]; diffs: { key: string[]; kind: 'missing' | 'extra' | 'different' }[] };
    try {
      checked = await ranges.run(lease, () => this.#check(spec, shape, lower, upper));
    } catch (error) {
      if (error instanceof LeaseLostError) return { kind: 'skipped', reason: `range ${lease.id}: ${error.message}` };
      const message = errorMessage(error);
      const transient = isTransientError(error);
      const delay = transient ? transientRetryDelayMs(lease.interruptions + 1) : retryDelayMs(lease.attempts - lease.interruptions);
      await ranges.retryLater(lease, { error: message, delayMs: delay, interrupted: transient });
      if (transient) await this.#blockOn(migration.id, error, `datasource "${spec.source.datasource}"`);
      await this.pump(v.id).catch(() => undefined);
      return { kind: 'retrying', error: message, retryInMs: delay };
    }
    const { sourceRows, targetRows, outcome, children } = checked;
    // A row an admin accepted out of the target (skipped on its data, issue 18) is missing there
    // on purpose: not a finding. The accepted list only grows while a run lasts.
    const diffs = await withoutAcceptedSkips(db, migration.id, checked.diffs, (k) => toSpecKeyOrder(spec.source.key, shape.sourceKey.columns, k));
    // Under the migration's row lock, taken first: range completions of a verification commit one
    // after another, so the last one sees every other range done and finishes the verification in
    // the same transaction (with its audit event), exactly once.
    const blocked = await db.transaction().execute(async (trx) => {
      await lockMigration(trx, migration.id);
      const done = await trx
        .updateTable('verification_ranges')
        .set({ status: 'done', outcome, source_rows: sourceRows, target_rows: targetRows, finished_at: sql`now()`, lease_token: null, lease_expires_at: null, last_error: null })
        .where('id', '=', lease.id)
        .where('lease_token', '=', lease.token)
        .returning(ranges.blockedSql(lease).as('blocked'))
        .executeTakeFirst();
      if (!done) return false;
      if (children.length) {
        await trx
          .insertInto('verification_ranges')
          .values(children.map(([l, u]) => ({ verification_id: v.id, lower_key: l ? JSON.stringify(l) : null, upper_key: u ? JSON.stringify(u) : null, depth: claimed.depth + 1, status: 'pending' as const })))
          .execute();
      }
      if (diffs.length) {
        await trx
          .insertInto('verification_diffs')
          .values(diffs.map((d) => ({ verification_id: v.id, key: JSON.stringify(d.key), kind: d.kind })))
          .onConflict((oc) => oc.columns(['verification_id', 'key']).doUpdateSet({ kind: sql`excluded.kind` }))
          .execute();
      }
      await trx
        .updateTable('verifications')
        .set({
          ranges_checked: sql`ranges_checked + 1`,
          ranges_total: sql`ranges_total + ${children.length}`,
          rows_compared: sql`rows_compared + ${outcome === 'split' ? 0 : Math.max(sourceRows, targetRows)}`,
        })
        .where('id', '=', v.id)
        .execute();
      await this.#finish(trx, v.id, migration.id);
      return done.blocked;
    });
    if (blocked) await ranges.blocks.clear(migration.id, 'verification', `range ${lease.id} finished`).catch(() => undefined);
    await this.pump(v.id).catch(() => undefined);
    return { kind: outcome, sourceRows, targetRows };
  }

  /** Fingerprints a range on both sides, then: matched, diffed key by key, or split in two. */
  async #check(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
    const [src, tgt] = await Promise.all([
      this.#one(spec.source.datasource, sourceFingerprintSql(spec, shape, lower, upper)),
      this.#one(spec.target.datasource, targetFingerprintSql(spec, shape, lower, upper)),
    ]);
    const sourceRows = Number(src.n);
    const targetRows = Number(tgt.n);
    let outcome: 'matched' | 'diffed' | 'split';
    let children: [KeyValue | null, KeyValue | null][] = [];
    const diffs: { key: string[]; kind: 'missing' | 'extra' | 'different' }[] = [];
    if (sourceRows === targetRows && src.h === tgt.h) outcome = 'matched';
    else if (Math.max(sourceRows, targetRows) <= EXACT_DIFF_ROWS) {
      outcome = 'diffed';
      diffs.push(...(await this.#settledDiff(spec, shape, lower, upper)));
    } else {
      outcome = 'split';
      const middle = await this.#middle(spec, shape, lower, upper, sourceRows, targetRows);
      children = [
        [lower, middle],
        [middle, upper],
      ];
    }
    return { sourceRows, targetRows, outcome, children, diffs };
  }

  /** Marks the migration's verification work blocked on what `error` names (not the orchestrator: that is where it would be written). */
  async #blockOn(migrationId: string, error: unknown, fallback: string): Promise<void> {
    const dependency = dependencyOf(error, fallback);
    if (dependency === 'postgres') return;
    await this.deps.ranges.blocks.block(migrationId, 'verification', { reason: 'datasource-unavailable', dependency, message: errorMessage(error) }).catch(() => undefined);
  }

  async #one(datasource: string, q: { sql: string; params: string[] }): Promise<{ n: string; h: string }> {
    return this.deps.datasources.withClient(datasource, async (c) => (await c.query<{ n: string; h: string }>(q.sql, q.params)).rows[0] as { n: string; h: string });
  }

  async #rows(datasource: string, q: { sql: string; params: string[] }, width: number): Promise<Map<string, string>> {
    return this.deps.datasources.withClient(datasource, async (c: pg.PoolClient) => {
      const r = await c.query<Record<string, string>>(q.sql, q.params);
      return new Map(r.rows.map((row) => [JSON.stringify(Array.from({ length: width }, (_, i) => row[`k${i}`])), row['h'] as string]));
    });
  }

  async #exactDiff(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
    const width = shape.sourceKey.columns.length;
    const [src, tgt] = await Promise.all([
      this.#rows(spec.source.datasource, sourceRowsSql(spec, shape, lower, upper), width),
      this.#rows(spec.target.datasource, targetRowsSql(spec, shape, lower, upper), width),
    ]);
    const out: { key: string[]; kind: 'missing' | 'extra' | 'different' }[] = [];
    for (const [k, h] of src) {
      const t = tgt.get(k);
      if (t === undefined) out.push({ key: JSON.parse(k) as string[], kind: 'missing' });
      else if (t !== h) out.push({ key: JSON.parse(k) as string[], kind: 'different' });
    }
    for (const k of tgt.keys()) if (!src.has(k)) out.push({ key: JSON.parse(k) as string[], kind: 'extra' });
    return out;
  }

  /** {@link #exactDiff}, then again each settle round: the keys different in every round, as the last round found them. */
  async #settledDiff(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null) {
    let diffs = await this.#exactDiff(spec, shape, lower, upper);
    for (let round = 0; round < SETTLE_ROUNDS && diffs.length > 0; round++) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_DELAY_MS[spec.syncMode]));
      const before = new Set(diffs.map((d) => JSON.stringify(d.key)));
      diffs = (await this.#exactDiff(spec, shape, lower, upper)).filter((d) => before.has(JSON.stringify(d.key)));
    }
    return diffs;
  }

  async #middle(spec: MigrationSpec, shape: VerifyShape, lower: KeyValue | null, upper: KeyValue | null, sourceRows: number, targetRows: number): Promise<KeyValue> {
    const fromSource = sourceRows >= targetRows;
    const q = fromSource
      ? keyAtSql(qualified(spec.source), shape.sourceKey, lower, upper, sourceRows / 2 - 1)
      : keyAtSql(qualified(spec.target), shape.targetKey, lower, upper, targetRows / 2 - 1);
    const row = await this.deps.datasources.withClient(fromSource ? spec.source.datasource : spec.target.datasource, async (c) => (await c.query<Record<string, string>>(q.sql, q.params)).rows[0]);
    if (!row) throw new Error('range could not be split');
    return shape.sourceKey.columns.map((_, i) => row[`k${i}`] as string);
  }

  /**
   * Marks the verification passed or failed once no range is pending or running, with the audit
   * event `verification.finished`. {@link VerificationService.runRange} does this in the
   * transaction of the last range (ADR 010); this is the safety net the reconciler runs for a
   * verification left running with no live range. Cheap when the verification is not done: the
   * migration's row lock is taken only when no range looks live.
   *
   * @returns true when this call finished the verification.
   */
  async finishIfDone(verificationId: string): Promise<boolean> {
    const { db } = this.deps;
    const v = await db.selectFrom('verifications').select(['migration_id', 'status']).where('id', '=', verificationId).executeTakeFirst();
    if (!v || v.status !== 'running') return false;
    const live = await db.selectFrom('verification_ranges').select(sql`1`.as('x')).where('verification_id', '=', verificationId).where('status', 'in', ['pending', 'running']).limit(1).executeTakeFirst();
    if (live) return false;
    return db.transaction().execute(async (trx) => {
      await lockMigration(trx, v.migration_id);
      return this.#finish(trx, verificationId, v.migration_id);
    });
  }

  /**
   * Inside `trx`, which holds the migration's row lock: marks the verification passed or failed
   * when it is running and no range is pending or running, and then (only then) writes the audit
   * event `verification.finished` (status, rows compared, missing / extra / different counts,
   * duration). Racing callers serialize on the lock; the status condition lets one of them through.
   * @returns true when this call finished it.
   */
  async #finish(trx: Kysely<Database>, verificationId: string, migrationId: string): Promise<boolean> {
    const done = await trx
      .updateTable('verifications')
      .set({
        finished_at: sql`now()`,
        status: sql`CASE WHEN EXISTS (SELECT 1 FROM verification_diffs d WHERE d.verification_id = verifications.id) THEN 'failed' ELSE 'passed' END`,
      })
      .where('id', '=', verificationId)
      .where('status', '=', 'running')
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('verification_ranges').select(sql`1`.as('x')).where('verification_id', '=', verificationId).where('status', 'in', ['pending', 'running']))),
      )
      .returning(['status', 'rows_compared', 'ranges_checked', 'created_by', sql<number>`round(extract(epoch FROM now() - started_at) * 1000)::int`.as('duration_ms')])
      .executeTakeFirst();
    if (!done) return false;
    const found = (await findingsOf(trx, [verificationId])).get(verificationId);
    await this.deps.migrations.recordEvent(
      migrationId,
      'verification.finished',
      {
        actor: ACTOR,
        details: {
          verificationId,
          status: done.status,
          startedBy: done.created_by,
          rangesChecked: done.ranges_checked,
          rowsCompared: Number(done.rows_compared),
          missingInTarget: found?.missingInTarget ?? 0,
          extraInTarget: found?.extraInTarget ?? 0,
          different: found?.different ?? 0,
          durationMs: done.duration_ms,
        },
      },
      trx,
    );
    return true;
  }

  /**
   * Repairs the findings of a finished verification that no repair has fixed yet, as a record of
   * its own (`verification_repairs`, status `running` from the start): re-copies those keys from
   * the source (missing and different rows upserted, extra rows deleted), re-checks each key, then
   * in one transaction (migration row locked first) records every key's outcome, marks the fixed
   * findings with this repair, finishes the record and writes the audit event
   * `verification.repaired` (keys attempted, upserted, deleted, fixed, still different, duration).
   * The verification itself keeps what it found: its `outcome` becomes `repaired` once every
   * finding is fixed. A repair that throws is recorded `failed` with the error and the event
   * `verification.repair_failed`. Repairs of one verification may overlap: each records what it
   * attempted and saw; a finding belongs to the first repair that committed its fix.
   *
   * @param actor - token name of the caller (audit).
   * @throws TidewayError `MIGRATION_NOT_FOUND` for an unknown verification; `INVALID_TRANSITION`
   *   while it runs, when the migration cannot re-copy keys (outside dual_write…cleanup, finished),
   *   or after write cutover (new is authoritative: old must not overwrite it) — nothing is
   *   recorded then; DependencyUnavailableError when a datasource cannot be reached.
   */
  async repair(verificationId: string, actor: string): Promise<VerificationRepairResult> {
    const { db } = this.deps;
    const v = await db.selectFrom('verifications').selectAll().where('id', '=', verificationId).executeTakeFirst();
    if (!v) throw new TidewayError('MIGRATION_NOT_FOUND', `verification ${verificationId} does not exist`, { verificationId });
    if (v.status === 'running') throw new TidewayError('INVALID_TRANSITION', 'the verification is still running', { action: 'repair', status: v.status, allowed: [] });
    const migration = toMigration(await db.selectFrom('migrations').selectAll().where('id', '=', v.migration_id).executeTakeFirstOrThrow());
    this.deps.backfill.assertRedrivable(migration, 'repair');
    // After write cutover new is authoritative: copying old over it would lose its newer writes.
    const ramp = await db.selectFrom('ramps').select(['status', 'write_cutover_at']).where('migration_id', '=', migration.id).executeTakeFirst();
    if (ramp?.status === 'write_cutover' || migration.phase === 'cleanup') {
      throw new TidewayError('INVALID_TRANSITION', 'after write cutover the new table is authoritative: a repair would overwrite its writes with the old table\'s rows; roll back to shadow_read first, or fix the rows on the new table', {
        action: 'repair',
        phase: migration.phase,
        status: migration.status,
        allowed: [],
        writeCutoverAt: ramp?.write_cutover_at ? ramp.write_cutover_at.toISOString() : null,
      });
    }
    const open = await db.selectFrom('verification_diffs').select(['key', 'kind']).where('verification_id', '=', v.id).where('repaired_by', 'is', null).orderBy('key').execute();
    const { id: repairId } = await db
      .insertInto('verification_repairs')
      .values({ verification_id: v.id, actor, status: 'running', keys_attempted: open.length })
      .returning('id')
      .executeTakeFirstOrThrow();
    const began = performance.now();
    const shape = shapeOf(v);
    // Keys are stored in index order; re-drive takes spec.source.key order.
    const toSpecOrder = (k: string[]) => toSpecKeyOrder(migration.spec.source.key, shape.sourceKey.columns, k);
    const copied = { upserted: 0, deleted: 0 };
    const outcomes: { key: string[]; kind: FindingKind; outcome: 'fixed' | 'still_different' }[] = [];
    try {
      for (let i = 0; i < open.length; i += 1000) {
        const r = await this.deps.backfill.redrive(migration, open.slice(i, i + 1000).map((d) => toSpecOrder(d.key)));
        copied.upserted += r.upserted;
        copied.deleted += r.deleted;
      }
      for (const d of open) outcomes.push({ key: d.key, kind: d.kind, outcome: (await this.#exactDiffKey(migration.spec, shape, d.key)) ? 'still_different' : 'fixed' });
    } catch (error) {
      const message = errorMessage(error);
      // Best effort: the orchestrator database may be what failed (the record then stays `running`).
      await db
        .transaction()
        .execute(async (trx) => {
          await lockMigration(trx, v.migration_id);
          await trx.updateTable('verification_repairs').set({ status: 'failed', error: message.slice(0, 1000), ...copied, finished_at: sql`now()` }).where('id', '=', repairId).execute();
          await this.deps.migrations.recordEvent(v.migration_id, 'verification.repair_failed', { actor, reason: message.slice(0, 1000), details: { verificationId: v.id, repairId, keysAttempted: open.length, ...copied } }, trx);
        })
        .catch(() => undefined);
      throw error;
    }
    const fixed = outcomes.filter((o) => o.outcome === 'fixed');
    await db.transaction().execute(async (trx) => {
      await lockMigration(trx, v.migration_id);
      for (let i = 0; i < outcomes.length; i += 1000) {
        await trx
          .insertInto('verification_repair_keys')
          .values(outcomes.slice(i, i + 1000).map((o) => ({ repair_id: repairId, key: JSON.stringify(o.key), kind: o.kind, outcome: o.outcome })))
          .execute();
      }
      for (let i = 0; i < fixed.length; i += 1000) {
        await trx
          .updateTable('verification_diffs')
          .set({ repaired_by: repairId })
          .where('verification_id', '=', v.id)
          .where('repaired_by', 'is', null)
          .where('key', 'in', fixed.slice(i, i + 1000).map((o) => JSON.stringify(o.key)))
          .execute();
      }
      await trx
        .updateTable('verification_repairs')
        .set({ status: 'finished', ...copied, fixed: fixed.length, still_different: outcomes.length - fixed.length, finished_at: sql`now()` })
        .where('id', '=', repairId)
        .execute();
      await trx.updateTable('verifications').set({ repaired_at: sql`now()` }).where('id', '=', v.id).execute();
      await this.deps.migrations.recordEvent(
        v.migration_id,
        'verification.repaired',
        {
          actor,
          details: {
            verificationId: v.id,
            repairId,
            keysAttempted: outcomes.length,
            ...copied,
            fixed: fixed.length,
            stillDifferent: outcomes.length - fixed.length,
            durationMs: Math.round(performance.now() - began),
          },
        },
        trx,
      );
    });
    const [repair, verification] = await Promise.all([this.repairView(repairId), this.view(v.id)]);
    return { ...repair, verification };
  }

  /** One repair record. @throws TidewayError `MIGRATION_NOT_FOUND` for an unknown id. */
  async repairView(repairId: string): Promise<VerificationRepairView> {
    const r = await this.deps.db.selectFrom('verification_repairs').selectAll().where('id', '=', repairId).executeTakeFirst();
    if (!r) throw new TidewayError('MIGRATION_NOT_FOUND', `verification repair ${repairId} does not exist`, { repairId });
    return (await this.#repairViews([r]))[0] as VerificationRepairView;
  }

  /** Views of `rows`, in their order, with up to SAMPLE_KEYS re-checked keys each (still different first), one query. */
  async #repairViews(rows: readonly VerificationRepairRow[]): Promise<VerificationRepairView[]> {
    if (rows.length === 0) return [];
    const samples = await this.deps.db
      .selectFrom((eb) =>
        eb
          .selectFrom('verification_repair_keys')
          .select(['repair_id', 'key', 'kind', 'outcome', sql<number>`row_number() OVER (PARTITION BY repair_id ORDER BY outcome = 'fixed', key)`.as('n')])
          .where('repair_id', 'in', rows.map((r) => r.id))
          .as('k'),
      )
      .select(['repair_id', 'key', 'kind', 'outcome'])
      .where('n', '<=', SAMPLE_KEYS)
      .orderBy('repair_id')
      .orderBy('n')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      verificationId: r.verification_id,
      actor: r.actor,
      status: r.status,
      keysAttempted: r.keys_attempted,
      upserted: r.upserted,
      deleted: r.deleted,
      fixed: r.fixed,
      stillDifferent: r.still_different,
      error: r.error,
      sampleKeys: samples.filter((k) => k.repair_id === r.id).map((k) => ({ key: k.key, kind: k.kind, outcome: k.outcome })),
      startedAt: r.started_at.toISOString(),
      finishedAt: r.finished_at ? r.finished_at.toISOString() : null,
    }));
  }

  /** True when the key still differs between mapping(source) and target. */
  async #exactDiffKey(spec: MigrationSpec, shape: VerifyShape, key: string[]): Promise<boolean> {
    const width = shape.sourceKey.columns.length;
    const [src, tgt] = await Promise.all([
      this.#rows(spec.source.datasource, eq(sourceRowsSql(spec, shape, null, null), shape.sourceKey, key), width),
      this.#rows(spec.target.datasource, eq(targetRowsSql(spec, shape, null, null), shape.targetKey, key), width),
    ]);
    const k = JSON.stringify(key);
    return src.get(k) !== tgt.get(k);
  }

  /** The verification resource. @throws TidewayError `MIGRATION_NOT_FOUND` for an unknown id. */
  async view(verificationId: string): Promise<VerificationView> {
    const v = await this.deps.db.selectFrom('verifications').selectAll().where('id', '=', verificationId).executeTakeFirst();
    if (!v) throw new TidewayError('MIGRATION_NOT_FOUND', `verification ${verificationId} does not exist`, { verificationId });
    return (await this.#views([v]))[0] as VerificationView;
  }

  /**
   * A migration's verifications, newest first, keyset-paginated on (started_at, id).
   * @param query.limit - 1–100. @defaultValue 20
   * @param query.cursor - an opaque `nextCursor` of the previous page.
   * @throws InvalidCursorError for a cursor not issued here.
   */
  async list(migrationId: string, query: { limit?: number; cursor?: string } = {}): Promise<{ items: VerificationView[]; nextCursor: string | null }> {
    const limit = query.limit ?? 20;
    let q = this.deps.db
      .selectFrom('verifications')
      .selectAll()
      // started_at as text keeps its microseconds for the cursor (a JS Date would cut them and skip rows).
      .select(sql<string>`started_at::text`.as('at'))
      .where('migration_id', '=', migrationId)
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (query.cursor !== undefined) {
      const [at, id] = decodeListCursor(query.cursor);
      q = q.where(sql<boolean>`(started_at, id) < (${at}::timestamptz, ${id}::uuid)`);
    }
    const rows = await q.execute();
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: await this.#views(page),
      nextCursor: rows.length > limit && last ? Buffer.from(`v1:${last.at}|${last.id}`).toString('base64url') : null,
    };
  }

  /** Resources of `rows`, in their order: findings, up to SAMPLE_KEYS sample keys and the repairs of each, four queries in all. */
  async #views(rows: readonly VerificationRow[]): Promise<VerificationView[]> {
    if (rows.length === 0) return [];
    const { db } = this.deps;
    const ids = rows.map((r) => r.id);
    const [findings, samples, repairRows] = await Promise.all([
      findingsOf(db, ids),
      db
        .selectFrom((eb) =>
          eb
            .selectFrom('verification_diffs')
            .select(['verification_id', 'key', 'kind', 'repaired_by', sql<number>`row_number() OVER (PARTITION BY verification_id ORDER BY repaired_by IS NOT NULL, key)`.as('n')])
            .where('verification_id', 'in', ids)
            .as('d'),
        )
        .select(['verification_id', 'key', 'kind', 'repaired_by'])
        .where('n', '<=', SAMPLE_KEYS)
        .orderBy('verification_id')
        .orderBy('n')
        .execute(),
      db.selectFrom('verification_repairs').selectAll().where('verification_id', 'in', ids).orderBy('started_at').orderBy('id').execute(),
    ]);
    const repairs = await this.#repairViews(repairRows);
    return rows.map((v) => {
      const f = findings.get(v.id);
      if (!f) throw new Error(`no findings read for verification ${v.id}`);
      return {
        id: v.id,
        migrationId: v.migration_id,
        status: v.status,
        outcome: outcomeOf(v.status, f),
        createdBy: v.created_by,
        rangesTotal: v.ranges_total,
        rangesChecked: v.ranges_checked,
        rowsCompared: Number(v.rows_compared),
        missingInTarget: f.missingInTarget,
        extraInTarget: f.extraInTarget,
        different: f.different,
        repaired: f.repaired,
        unrepaired: f.unrepaired,
        sampleKeys: samples.filter((x) => x.verification_id === v.id).map((x) => ({ key: x.key, kind: x.kind, repairedBy: x.repaired_by })),
        repairs: repairs.filter((r) => r.verificationId === v.id),
        startedAt: v.started_at.toISOString(),
        finishedAt: v.finished_at ? v.finished_at.toISOString() : null,
      };
    });
  }

  /** The newest verification of a migration, or `undefined`. */
  async latest(migrationId: string): Promise<VerificationRow | undefined> {
    return this.deps.db.selectFrom('verifications').selectAll().where('migration_id', '=', migrationId).orderBy('started_at', 'desc').limit(1).executeTakeFirst();
  }

  /**
   * Re-creates lost range work from PostgreSQL: leases that ran out go back to pending, queued ranges
   * whose job is not live in Redis are marked unqueued, then every running verification with
   * unqueued ranges is pumped (new enqueue generations); a running verification with no live range
   * left is finished ({@link finishIfDone}); blocks with no live range left are cleared.
   *
   * @returns the number of ranges sent.
   * @throws the first error met (Redis down), after doing everything else it could.
   */
  async reconcile(): Promise<number> {
    const { db, ranges } = this.deps;
    const errors: unknown[] = [];
    await ranges.releaseExpired();
    await ranges.findLost().catch((error: unknown) => errors.push(error));
    const owners = await db
      .selectFrom('verification_ranges as r')
      .innerJoin('verifications as v', 'v.id', 'r.verification_id')
      .select('r.verification_id')
      .distinct()
      .where('v.status', '=', 'running')
      .where('r.status', '=', 'pending')
      .where('r.enqueued_at', 'is', null)
      .execute();
    let n = 0;
    for (const { verification_id } of owners) {
      n += await this.pump(verification_id).catch((error: unknown) => {
        errors.push(error);
        return 0;
      });
    }
    // The last range's transaction finishes its verification; one still running with no live range
    // (left by an older version) is finished here. finishIfDone is safe to race.
    const unfinished = await db
      .selectFrom('verifications as v')
      .select('v.id')
      .where('v.status', '=', 'running')
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('verification_ranges as r').select(sql`1`.as('x')).whereRef('r.verification_id', '=', 'v.id').where('r.status', 'in', ['pending', 'running']))))
      .execute();
    for (const { id } of unfinished) await this.finishIfDone(id).catch((error: unknown) => errors.push(error));
    await ranges.blocks.sweep(ranges.kind).catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
    return n;
  }
}

/** @throws TidewayError `INVALID_TRANSITION` unless the migration is from backfill on and not finished. */
function assertVerifiable(migration: Migration): void {
  if (['backfill', 'shadow_read', 'cutover', 'cleanup'].includes(migration.phase) && !['aborted', 'completed'].includes(migration.status)) return;
  throw new TidewayError('INVALID_TRANSITION', `verification needs a migration from backfill on, not ${migration.phase}/${migration.status}`, {
    phase: migration.phase,
    status: migration.status,
    action: 'verify',
    allowed: [],
  });
}

/**
 * Row-locks the migration inside `trx` (`FOR UPDATE`): the first lock of every transaction that
 * writes an audit event, so verification rows are always locked after the migration row (the order
 * a transition and `recordEvent` take them in).
 */
async function lockMigration(trx: Kysely<Database>, migrationId: string): Promise<Migration> {
  return toMigration(await trx.selectFrom('migrations').selectAll().where('id', '=', migrationId).forUpdate().executeTakeFirstOrThrow());
}

/** Adds `AND key = value` to a keyed rows query (used to re-check single keys). */
function eq(q: { sql: string; params: string[] }, key: KeyShape, value: KeyValue): { sql: string; params: string[] } {
  const start = q.params.length;
  const cond = key.columns.map((c, i) => `"${c.replace(/"/g, '""')}" = $${start + i + 1}::text::${key.types[i]}`).join(' AND ');
  return { sql: `${q.sql} AND ${cond}`, params: [...q.params, ...value] };
}

/** `[started_at as PostgreSQL text, id]` of a list cursor. @throws InvalidCursorError */
function decodeListCursor(cursor: string): [string, string] {
  const m = /^v1:(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}(?::\d{2})?)\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(
    Buffer.from(cursor, 'base64url').toString(),
  );
  if (!m?.[1] || !m[2]) throw new InvalidCursorError(`cursor "${cursor}" is not valid`);
  return [m[1], m[2]];
}

/**
 * Drops the `missing` findings whose key is a row the backfill skipped on its data and an admin
 * accepted out of the target (`backfill_skipped_rows.resolution = 'accepted'`). Findings hold keys
 * in the key index's order, skipped rows in `spec.source.key` order: `toSpecOrder` converts.
 */
async function withoutAcceptedSkips<D extends { key: string[]; kind: FindingKind }>(db: Kysely<Database>, migrationId: string, diffs: D[], toSpecOrder: (key: string[]) => string[]): Promise<D[]> {
  const specKey = (d: D) => JSON.stringify(toSpecOrder(d.key));
  const missing = diffs.filter((d) => d.kind === 'missing').map(specKey);
  if (missing.length === 0) return diffs;
  const rows = await db
    .selectFrom('backfill_skipped_rows')
    .select(sql<string>`key_values::text`.as('key'))
    .where('migration_id', '=', migrationId)
    .where('resolution', '=', 'accepted')
    .where(sql<boolean>`key_values = ANY(${sql.val(missing)}::jsonb[])`)
    .execute();
  if (rows.length === 0) return diffs;
  const accepted = new Set(rows.map((r) => JSON.stringify(JSON.parse(r.key) as string[])));
  return diffs.filter((d) => d.kind !== 'missing' || !accepted.has(specKey(d)));
}
