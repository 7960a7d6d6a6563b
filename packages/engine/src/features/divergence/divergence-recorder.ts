import { LATENCY_BUCKETS_MS, latencyBucket, redact, TidewayError, type DualWriteReport, type ShadowResultBatch } from '@tideway/core';
import type { Database, DivergenceKind } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import { isAcceptedSkipSql } from '../backfill/backfill-repository.js';
import { BackfillService } from '../backfill/backfill-service.js';
import { loadSqlParser } from '../mapping/mapping-validator.js';
import type { EvidenceWindows } from './evidence-windows.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import { recordAppLatency } from '../pace/pace-repository.js';

const HIST = LATENCY_BUCKETS_MS.length + 1;

/** Ledger kinds of failed best-effort writes, re-driven old → new and new → old. */
type WriteFailureKind = 'dual_write_failure' | 'old_write_failure';
const WRITE_FAILURE_KINDS: readonly WriteFailureKind[] = ['dual_write_failure', 'old_write_failure'];

interface Bucket {
  samples: number;
  matches: number;
  mismatches: number;
  newErrors: number;
  dropped: number;
  old: number[];
  new: number[];
  dualWrites: number;
  dualWriteFailures: number;
}

interface LedgerEntry {
  key: string;
  kind: DivergenceKind;
  first: string;
  last: string;
  count: number;
  paths: Set<string>;
  oldValue: unknown;
  newValue: unknown;
  error: string | null;
}

function emptyBucket(): Bucket {
  return { samples: 0, matches: 0, mismatches: 0, newErrors: 0, dropped: 0, old: Array<number>(HIST).fill(0), new: Array<number>(HIST).fill(0), dualWrites: 0, dualWriteFailures: 0 };
}

function minuteOf(iso: string): string {
  const t = Date.parse(iso);
  return new Date(Math.floor((Number.isFinite(t) ? t : Date.now()) / 60_000) * 60_000).toISOString();
}

/**
 * Stores shadow-read results and dual-write reports: per-minute buckets (counts and latency
 * histograms; a batch becomes one upsert per minute it spans) and a ledger with one entry per
 * diverging key (first/last seen, count, the union of differing paths, and the first sample's values
 * with `shadowRead.redact` paths masked). Failed best-effort writes are re-driven at once, and
 * retried on every evaluation round until they succeed.
 */
export class DivergenceRecorder {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly backfill: BackfillService,
    private readonly windows: EvidenceWindows,
  ) {}

  /** Records a batch (≤ 1,000 results). @returns how many results were stored. */
  async recordShadowResults(migration: Migration, batch: ShadowResultBatch): Promise<{ recorded: number }> {
    const buckets = new Map<string, Bucket>();
    const ledger = new Map<string, LedgerEntry>();
    const redactPaths = migration.spec.shadowRead.redact;
    const windowOf = await this.windows.attributor(this.db, migration.id);
    for (const r of batch.results) {
      const minute = minuteOf(r.at);
      const parsed = Date.parse(r.at);
      const slot = `${windowOf(new Date(Number.isFinite(parsed) ? parsed : Date.now()))}|${minute}`;
      let b = buckets.get(slot);
      if (!b) buckets.set(slot, (b = emptyBucket()));
      b.samples++;
      (b.old[latencyBucket(r.oldLatencyMs)] as number)++;
      if (r.newLatencyMs !== undefined) (b.new[latencyBucket(r.newLatencyMs)] as number)++;
      if (r.outcome === 'match') {
        b.matches++;
        continue;
      }
      const kind: DivergenceKind = r.outcome === 'mismatch' ? 'mismatch' : 'new_error';
      if (kind === 'mismatch') b.mismatches++;
      else b.newErrors++;
      const id = `${kind}\u0000${r.key}`;
      const entry = ledger.get(id);
      if (entry) {
        entry.count++;
        if (r.at < entry.first) entry.first = r.at;
        if (r.at > entry.last) entry.last = r.at;
        for (const p of r.diffPaths ?? []) entry.paths.add(p);
      } else {
        ledger.set(id, {
          key: r.key,
          kind,
          first: r.at,
          last: r.at,
          count: 1,
          paths: new Set(r.diffPaths ?? []),
          oldValue: redact(r.oldValue ?? null, redactPaths),
          newValue: redact(r.newValue ?? null, redactPaths),
          error: r.error ?? null,
        });
      }
    }
    const first = [...buckets.values()][0];
    if (first && batch.dropped) first.dropped += batch.dropped;
    await this.db.transaction().execute(async (trx) => {
      await this.#upsertBuckets(trx, migration.id, buckets);
      await this.#upsertLedger(trx, migration.id, [...ledger.values()]);
    });
    return { recorded: batch.results.length };
  }

  /**
   * Records a dual-write report and re-drives its failed keys now: new-side failures are re-copied
   * from old to new, old-side failures (after write cutover) from new to old. When a key has pending
   * failures on both sides, the one seen last (by `at`) decides the direction and the other is
   * superseded (copying it would overwrite the newer write).
   * @returns counts; `redriven` counts this report's keys re-copied now. Keys that could not be (a
   *   datasource down, a row refused) stay pending with the reason and {@link redrivePending}
   *   retries them on every evaluation round.
   * @throws TidewayError `VALIDATION_FAILED` for a key with the wrong number of values (nothing recorded).
   */
  async recordDualWrites(migration: Migration, report: DualWriteReport): Promise<{ failures: number; redriven: number }> {
    const width = migration.spec.source.key.length;
    const bad = report.failures.findIndex((f) => f.key.length !== width);
    if (bad >= 0) {
      throw new TidewayError('VALIDATION_FAILED', `failures[${bad}].key has ${report.failures[bad]?.key.length} values; the source key has ${width}`, {
        problems: [{ field: `failures[${bad}].key`, problem: `must have ${width} value(s), one per source key column` }],
      });
    }
    const now = new Date();
    const slot = `${(await this.windows.attributor(this.db, migration.id))(now)}|${minuteOf(now.toISOString())}`;
    const bucket = emptyBucket();
    bucket.dualWrites = report.writes;
    bucket.dualWriteFailures = report.failures.length;
    const ledger = new Map<string, LedgerEntry>();
    // Per key, the kind of its latest failure in this report (report order is failure order).
    const latestKind = new Map<string, WriteFailureKind>();
    for (const f of report.failures) {
      const key = JSON.stringify(f.key);
      const kind: WriteFailureKind = f.side === 'old' ? 'old_write_failure' : 'dual_write_failure';
      latestKind.set(key, kind);
      const entry = ledger.get(`${kind}:${key}`);
      if (entry) {
        entry.count++;
        entry.last = f.at > entry.last ? f.at : entry.last;
      } else {
        ledger.set(`${kind}:${key}`, { key, kind, first: f.at, last: f.at, count: 1, paths: new Set(), oldValue: null, newValue: null, error: f.error });
      }
    }
    const winners = await this.db.transaction().execute(async (trx) => {
      // The application's own latency rides along: the latency guard's application signal (ADR 014).
      if (report.latency) await recordAppLatency(trx, migration.id, migration.spec.source.datasource, report.latency);
      await this.#upsertBuckets(trx, migration.id, new Map([[slot, bucket]]));
      await this.#upsertLedger(trx, migration.id, [...ledger.values()]);
      if (latestKind.size === 0) return [];
      const pending = await trx
        .selectFrom('divergences')
        .select(['key', 'kind', 'last_seen', 'count'])
        .where('migration_id', '=', migration.id)
        .where('kind', 'in', WRITE_FAILURE_KINDS)
        .where('key', 'in', [...latestKind.keys()])
        .where('redriven_at', 'is', null)
        .forUpdate()
        .execute();
      const byKey = new Map<string, typeof pending>();
      for (const row of pending) byKey.set(row.key, [...(byKey.get(row.key) ?? []), row]);
      const won: { key: string; kind: WriteFailureKind; count: number }[] = [];
      for (const [key, rows] of byKey) {
        const at = (r: (typeof rows)[number]) => new Date(r.last_seen).getTime();
        const winner = rows.reduce((a, b) => (at(b) > at(a) || (at(b) === at(a) && b.kind === latestKind.get(key)) ? b : a));
        won.push({ key, kind: winner.kind as WriteFailureKind, count: winner.count });
        for (const loser of rows.filter((r) => r !== winner)) {
          await trx
            .updateTable('divergences')
            .set({ redriven_at: sql`now()`, error: sql`coalesce(error, '') || ${` (superseded by a later ${winner.kind})`}` })
            .where('migration_id', '=', migration.id)
            .where('kind', '=', loser.kind)
            .where('key', '=', key)
            .execute();
        }
      }
      return won;
    });
    let redriven = 0;
    for (const kind of WRITE_FAILURE_KINDS) {
      const entries = winners.filter((w) => w.kind === kind);
      if (entries.length > 0) redriven += await this.#redriveEntries(migration, kind, entries);
    }
    return { failures: report.failures.length, redriven };
  }

  /**
   * Re-drives the pending write failures of one migration (ledger entries not re-driven since their
   * last failure), up to 1,000 per kind, and marks those re-driven.
   * @param kinds - which ledger kinds, default both.
   * @returns how many keys were re-driven.
   */
  async redrivePending(migration: Migration, kinds: readonly WriteFailureKind[] = WRITE_FAILURE_KINDS): Promise<number> {
    let redriven = 0;
    for (const kind of kinds) {
      const pending = await this.db
        .selectFrom('divergences')
        .select(['key', 'count'])
        .where('migration_id', '=', migration.id)
        .where('kind', '=', kind)
        .where('redriven_at', 'is', null)
        .orderBy('last_seen')
        .limit(1000)
        .execute();
      if (pending.length > 0) redriven += await this.#redriveEntries(migration, kind, pending);
    }
    return redriven;
  }

  /**
   * Copies the given ledger entries' keys (one kind) and marks them re-driven. When the batch fails,
   * its keys are tried one by one, so one key that cannot be copied (a constraint, a value that does
   * not cast) does not hold back the others; keys that still fail stay pending with the reason. A
   * TidewayError (wrong phase, no way back in the spec, datasource down) leaves the whole batch pending.
   * @returns how many keys were copied.
   */
  async #redriveEntries(migration: Migration, kind: WriteFailureKind, entries: readonly { key: string; count: number }[]): Promise<number> {
    const copy = (keys: string[][]) => (kind === 'old_write_failure' ? this.backfill.redriveReverse(migration, keys) : this.backfill.redrive(migration, keys));
    let done: { key: string; count: number }[] = [...entries];
    try {
      await copy(entries.map((e) => JSON.parse(e.key) as string[]));
    } catch (batchError) {
      // Not now (phase), not at all (spec) or not reachable (datasource down): one by one would not help.
      if (batchError instanceof TidewayError) return 0;
      done = [];
      for (const entry of entries) {
        try {
          await copy([JSON.parse(entry.key) as string[]]);
          done.push(entry);
        } catch (error) {
          await this.db
            .updateTable('divergences')
            .set({ error: `re-drive failed: ${error instanceof Error ? error.message : String(error)}`.slice(0, 2000) })
            .where('migration_id', '=', migration.id)
            .where('kind', '=', kind)
            .where('key', '=', entry.key)
            .where('redriven_at', 'is', null)
            .execute();
        }
      }
    }
    if (done.length === 0) return 0;
    // Only entries with no failure reported since they were read (their count is unchanged): a key
    // that failed again meanwhile stays pending. Counts, not the applications' clocks, decide.
    await sql`
      UPDATE divergences d SET redriven_at = now()
      FROM unnest(${done.map((p) => p.key)}::text[], ${done.map((p) => p.count)}::int[]) AS v(key, count)
      WHERE d.migration_id = ${migration.id} AND d.kind = ${kind} AND d.key = v.key AND d.count = v.count AND d.redriven_at IS NULL`.execute(this.db);
    return done.length;
  }

  /**
   * Re-drives again every new-side write failure seen since `since`, whether re-driven already or
   * not (the end of a lock-free backfill: a chunk that copied an older snapshot after an earlier
   * re-drive may have undone it). The entries go back to pending first, so one that fails now
   * stays visible and holds the backfill gate.
   * @throws TidewayError when any of them could not be copied (the run stays open; the reconciler retries).
   */
  async redriveSince(migration: Migration, since: Date): Promise<void> {
    let after = '';
    for (;;) {
      const entries = await this.db
        .selectFrom('divergences as d')
        .select(['d.key', 'd.count'])
        .where('d.migration_id', '=', migration.id)
        .where('d.kind', '=', 'dual_write_failure')
        .where('d.last_seen', '>=', since)
        .where('d.key', '>', after)
        // Rows an admin accepted out of the target keep failing on purpose (issue 18).
        .where(sql<boolean>`NOT ${isAcceptedSkipSql('d')}`)
        .orderBy('key')
        .limit(1000)
        .execute();
      if (entries.length === 0) return;
      await this.db
        .updateTable('divergences')
        .set({ redriven_at: null })
        .where('migration_id', '=', migration.id)
        .where('kind', '=', 'dual_write_failure')
        .where('key', 'in', entries.map((e) => e.key))
        .execute();
      const done = await this.#redriveEntries(migration, 'dual_write_failure', entries);
      if (done < entries.length) {
        throw new TidewayError('DEPENDENCY_UNAVAILABLE', `${entries.length - done} write(s) whose sync failed during the backfill could not be re-driven yet`, {
          dependency: `datasource "${migration.spec.target.datasource}"`,
        });
      }
      after = entries[entries.length - 1]?.key ?? after;
    }
  }

  /**
   * Before a rollback or abort out of cutover (run outside the transition's lock, see
   * `MigrationService.beforeAct`): copies pending old-side write failures from new to old, so old
   * is complete when it becomes authoritative again. Best-effort; {@link assertOldSideCopiedBack}
   * decides under the lock.
   */
  async copyOldSideBack(migration: Migration): Promise<void> {
    // Rounds of up to 1,000 keys until one copies nothing: none left, or none can be copied now
    // (a phase without a way back, a spec without one, the datasource down).
    for (let round = 0; round < 10; round++) if ((await this.redrivePending(migration, ['old_write_failure'])) === 0) return;
  }

  /**
   * Rollback action of `cutover`, run before reads and writes go back to old: refuses while any
   * old-side write failure is still pending (not copied back to old). It only reads, through the
   * transition's own transaction: the copying happened before the lock was taken.
   * Does nothing when the spec has no way back (no reverse mapping, keys not straight both ways):
   * refusing would block the rollback for good; the failures stay visible in the ledger.
   * @throws TidewayError `DEPENDENCY_UNAVAILABLE` naming up to 20 keys with their reasons: the
   *   rollback is refused and changes nothing (new stays authoritative); retry once the cause is fixed.
   */
  async assertOldSideCopiedBack(db: Kysely<Database>, migration: Migration): Promise<void> {
    await loadSqlParser();
    if (!BackfillService.canRedriveReverse(migration.spec)) return;
    const left = await db
      .selectFrom('divergences')
      .select(['key', 'error'])
      .where('migration_id', '=', migration.id)
      .where('kind', '=', 'old_write_failure')
      .where('redriven_at', 'is', null)
      .orderBy('last_seen')
      .limit(20)
      .execute();
    if (left.length === 0) return;
    throw new TidewayError(
      'DEPENDENCY_UNAVAILABLE',
      `${left.length}${left.length === 20 ? '+' : ''} old-side write(s) could not be copied back to old; rolling back now would lose them`,
      { dependency: `datasource "${migration.spec.source.datasource}"`, keys: left.map((l) => ({ key: l.key, error: l.error })) },
    );
  }

  /**
   * {@link redrivePending} for every migration with pending write failures that can be re-driven
   * (dual_write through cleanup, not aborted or completed). Called on every evaluation round.
   * @returns how many keys were re-driven.
   */
  async redriveAllPending(): Promise<number> {
    const rows = await this.db
      .selectFrom('migrations as m')
      .selectAll('m')
      .where('m.phase', 'in', ['dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup'])
      .where('m.status', 'not in', ['aborted', 'completed'])
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('divergences as d')
            .select('d.key')
            .whereRef('d.migration_id', '=', 'm.id')
            .where('d.kind', 'in', ['dual_write_failure', 'old_write_failure'])
            .where('d.redriven_at', 'is', null),
        ),
      )
      .execute();
    let redriven = 0;
    for (const row of rows) redriven += await this.redrivePending(toMigration(row));
    return redriven;
  }

  /** Upserts buckets keyed `<window>|<minute ISO>`. */
  async #upsertBuckets(trx: Kysely<Database>, migrationId: string, buckets: Map<string, Bucket>): Promise<void> {
    if (buckets.size === 0) return;
    await trx
      .insertInto('observation_buckets')
      .values(
        [...buckets].map(([slot, b]) => ({
          migration_id: migrationId,
          window_id: Number(slot.slice(0, slot.indexOf('|'))),
          minute: slot.slice(slot.indexOf('|') + 1),
          samples: b.samples,
          matches: b.matches,
          mismatches: b.mismatches,
          new_errors: b.newErrors,
          dropped: b.dropped,
          old_latency: b.old,
          new_latency: b.new,
          dual_writes: b.dualWrites,
          dual_write_failures: b.dualWriteFailures,
        })),
      )
      .onConflict((oc) =>
        oc.columns(['migration_id', 'window_id', 'minute']).doUpdateSet({
          samples: sql`observation_buckets.samples + excluded.samples`,
          matches: sql`observation_buckets.matches + excluded.matches`,
          mismatches: sql`observation_buckets.mismatches + excluded.mismatches`,
          new_errors: sql`observation_buckets.new_errors + excluded.new_errors`,
          dropped: sql`observation_buckets.dropped + excluded.dropped`,
          old_latency: sql`ARRAY(SELECT a + b FROM unnest(observation_buckets.old_latency, excluded.old_latency) WITH ORDINALITY AS t(a, b, i) ORDER BY i)`,
          new_latency: sql`ARRAY(SELECT a + b FROM unnest(observation_buckets.new_latency, excluded.new_latency) WITH ORDINALITY AS t(a, b, i) ORDER BY i)`,
          dual_writes: sql`observation_buckets.dual_writes + excluded.dual_writes`,
          dual_write_failures: sql`observation_buckets.dual_write_failures + excluded.dual_write_failures`,
        }),
      )
      .execute();
  }

  async #upsertLedger(trx: Kysely<Database>, migrationId: string, entries: LedgerEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await trx
      .insertInto('divergences')
      .values(
        entries.map((e) => ({
          migration_id: migrationId,
          key: e.key,
          kind: e.kind,
          first_seen: e.first,
          last_seen: e.last,
          count: e.count,
          diff_paths: [...e.paths].sort(),
          sample_old: JSON.stringify(e.oldValue ?? null),
          sample_new: JSON.stringify(e.newValue ?? null),
          error: e.error,
        })),
      )
      .onConflict((oc) =>
        oc.columns(['migration_id', 'kind', 'key']).doUpdateSet({
          count: sql`divergences.count + excluded.count`,
          first_seen: sql`least(divergences.first_seen, excluded.first_seen)`,
          last_seen: sql`greatest(divergences.last_seen, excluded.last_seen)`,
          diff_paths: sql`ARRAY(SELECT DISTINCT p FROM unnest(divergences.diff_paths || excluded.diff_paths) AS p ORDER BY p)`,
          redriven_at: sql`CASE WHEN excluded.kind IN ('dual_write_failure', 'old_write_failure') THEN NULL ELSE divergences.redriven_at END`,
        }),
      )
      .execute();
  }
}
