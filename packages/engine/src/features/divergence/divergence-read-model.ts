import { LATENCY_BUCKETS_MS, histogramQuantile, wilsonUpperBound, type DivergenceEvidence } from '@tideway/core';
import type { Database, DivergenceKind } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import { InvalidCursorError, type Page } from '../migrations/migration-read-model.js';

const HIST = LATENCY_BUCKETS_MS.length + 1;

/** Counts and rates over a span of buckets. */
export interface DivergenceWindow {
  readonly samples: number;
  readonly mismatches: number;
  readonly errors: number;
  /** mismatches / samples (0 without samples). */
  readonly rate: number;
  /** Wilson score upper bound (95 %) of the mismatch rate. */
  readonly rateUpper95: number;
  readonly oldP99Ms: number | null;
  readonly newP99Ms: number | null;
  readonly dualWrites: number;
  readonly dualWriteFailures: number;
  readonly dropped: number;
}

/** One ledger entry as listed. */
export interface DivergenceItem {
  readonly key: string;
  readonly kind: DivergenceKind;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly count: number;
  readonly diffPaths: string[];
  readonly sampleOld: unknown;
  readonly sampleNew: unknown;
  readonly error: string | null;
  readonly redrivenAt: string | null;
}

interface BucketRow {
  samples: number;
  mismatches: number;
  new_errors: number;
  dropped: number;
  dual_writes: number;
  dual_write_failures: number;
  old_latency: number[];
  new_latency: number[];
}

function summarize(rows: BucketRow[]): DivergenceWindow {
  const sum = (f: (r: BucketRow) => number) => rows.reduce((a, r) => a + Number(f(r)), 0);
  const hist = (f: (r: BucketRow) => number[]) => {
    const out = Array<number>(HIST).fill(0);
    for (const r of rows) f(r).forEach((v, i) => (out[i] = (out[i] ?? 0) + Number(v)));
    return out;
  };
  const samples = sum((r) => r.samples);
  const mismatches = sum((r) => r.mismatches);
  return {
    samples,
    mismatches,
    errors: sum((r) => r.new_errors),
    rate: samples ? mismatches / samples : 0,
    rateUpper95: wilsonUpperBound(mismatches, samples),
    oldP99Ms: histogramQuantile(hist((r) => r.old_latency), 0.99),
    newP99Ms: histogramQuantile(hist((r) => r.new_latency), 0.99),
    dualWrites: sum((r) => r.dual_writes),
    dualWriteFailures: sum((r) => r.dual_write_failures),
    dropped: sum((r) => r.dropped),
  };
}

/** Reads the divergence evidence of a migration. */
export class DivergenceReadModel {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Buckets whose minute is within the last `seconds` (all when `null`), of every evidence window
   * (`scope: 'all'`, the default) or of the current one only (`'current'`, what gates and abort
   * criteria judge, see `EvidenceWindows`).
   */
  async window(migrationId: string, seconds: number | null, scope: 'all' | 'current' = 'all'): Promise<DivergenceWindow> {
    let q = this.db
      .selectFrom('observation_buckets')
      .select(['samples', 'mismatches', 'new_errors', 'dropped', 'dual_writes', 'dual_write_failures', 'old_latency', 'new_latency'])
      .where('migration_id', '=', migrationId);
    if (seconds !== null) q = q.where('minute', '>=', sql<Date>`date_trunc('minute', now() - make_interval(secs => ${seconds}))`);
    if (scope === 'current') q = q.where('window_id', '=', (eb) => eb.selectFrom('migrations').select('evidence_window').where('id', '=', migrationId));
    return summarize((await q.execute()) as unknown as BucketRow[]);
  }

  /**
   * Evidence for the abort criteria and gates: the current evidence window, over its last `seconds`
   * (all of it when `null`); failed chunks count over the whole backfill run.
   */
  async evidence(migrationId: string, seconds: number | null): Promise<DivergenceEvidence & { window: DivergenceWindow }> {
    const [w, failed] = await Promise.all([
      this.window(migrationId, seconds, 'current'),
      this.db
        .selectFrom('backfill_chunks')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('migration_id', '=', migrationId)
        .where('status', '=', 'failed')
        .executeTakeFirstOrThrow(),
    ]);
    return {
      samples: w.samples,
      mismatches: w.mismatches,
      newErrors: w.errors,
      oldP99Ms: w.oldP99Ms,
      newP99Ms: w.newP99Ms,
      dualWrites: w.dualWrites,
      dualWriteFailures: w.dualWriteFailures,
      failedChunks: failed.n,
      window: w,
    };
  }

  /** The ledger in (kind, key) order. @throws InvalidCursorError for a cursor not issued here. */
  async ledger(migrationId: string, query: { kind?: DivergenceKind; limit?: number; cursor?: string }): Promise<Page<DivergenceItem>> {
    const limit = query.limit ?? 100;
    let q = this.db.selectFrom('divergences').selectAll().where('migration_id', '=', migrationId).orderBy('kind').orderBy('key').limit(limit + 1);
    if (query.kind) q = q.where('kind', '=', query.kind);
    if (query.cursor !== undefined) {
      let after: [string, string];
      try {
        after = JSON.parse(Buffer.from(query.cursor, 'base64url').toString()) as [string, string];
        if (!Array.isArray(after) || after.length !== 2 || !after.every((x) => typeof x === 'string')) throw new Error('shape');
      } catch {
        throw new InvalidCursorError(`cursor "${query.cursor}" is not valid`);
      }
      q = q.where(sql<boolean>`(kind, key) > (${after[0]}, ${after[1]})`);
    }
    const rows = await q.execute();
    const items = rows.slice(0, limit).map((r) => ({
      key: r.key,
      kind: r.kind,
      firstSeen: new Date(r.first_seen).toISOString(),
      lastSeen: new Date(r.last_seen).toISOString(),
      count: r.count,
      diffPaths: r.diff_paths,
      sampleOld: r.sample_old,
      sampleNew: r.sample_new,
      error: r.error,
      redrivenAt: r.redriven_at ? r.redriven_at.toISOString() : null,
    }));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? Buffer.from(JSON.stringify([last.kind, last.key])).toString('base64url') : null };
  }
}
