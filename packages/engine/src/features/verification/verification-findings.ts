import type { Database, VerificationRow } from '@tideway/db';
import { sql, type Kysely } from 'kysely';

/**
 * What a verification came to: `passed` (the check found no difference), `failed` (it found some
 * that no repair has fixed yet) or `repaired` (it found some, and repairs re-copied and re-checked
 * every one). `null` while it runs.
 */
export type VerificationOutcome = 'passed' | 'failed' | 'repaired';

/** The findings of one verification as the check recorded them, and how far repairs got. */
export interface VerificationFindings {
  /** Keys in source, not in target (as found; a repair does not change these counts). */
  readonly missingInTarget: number;
  readonly extraInTarget: number;
  readonly different: number;
  /** Findings a repair re-copied and re-checked equal. */
  readonly repaired: number;
  /** Findings no repair has fixed yet. */
  readonly unrepaired: number;
  /** The repair that fixed the latest-fixed finding (the one the gate relies on when `unrepaired` is 0), or null. */
  readonly lastRepairId: string | null;
}

const NONE: VerificationFindings = { missingInTarget: 0, extraInTarget: 0, different: 0, repaired: 0, unrepaired: 0, lastRepairId: null };

/**
 * The findings of `ids`, one query (verifications without findings map to all zeros).
 * @param db - the orchestrator database or a transaction on it.
 */
export async function findingsOf(db: Kysely<Database>, ids: readonly string[]): Promise<Map<string, VerificationFindings>> {
  const out = new Map<string, VerificationFindings>(ids.map((id) => [id, NONE]));
  if (ids.length === 0) return out;
  const rows = await db
    .selectFrom('verification_diffs as d')
    .leftJoin('verification_repairs as r', 'r.id', 'd.repaired_by')
    .select([
      'd.verification_id',
      sql<number>`count(*) FILTER (WHERE d.kind = 'missing')::int`.as('missing'),
      sql<number>`count(*) FILTER (WHERE d.kind = 'extra')::int`.as('extra'),
      sql<number>`count(*) FILTER (WHERE d.kind = 'different')::int`.as('different'),
      sql<number>`count(d.repaired_by)::int`.as('repaired'),
      sql<string | null>`(array_agg(d.repaired_by ORDER BY r.finished_at DESC NULLS LAST, r.id DESC) FILTER (WHERE d.repaired_by IS NOT NULL))[1]`.as('last_repair_id'),
    ])
    .where('d.verification_id', 'in', ids)
    .groupBy('d.verification_id')
    .execute();
  for (const r of rows) {
    const total = r.missing + r.extra + r.different;
    out.set(r.verification_id, { missingInTarget: r.missing, extraInTarget: r.extra, different: r.different, repaired: r.repaired, unrepaired: total - r.repaired, lastRepairId: r.last_repair_id });
  }
  return out;
}

/**
 * The outcome of a verification from its status (what the check found) and its findings.
 * @example
 * outcomeOf('failed', { missingInTarget: 1, extraInTarget: 0, different: 0, repaired: 1, unrepaired: 0, lastRepairId: 'r' }); // 'repaired'
 */
export function outcomeOf(status: VerificationRow['status'], findings: VerificationFindings): VerificationOutcome | null {
  if (status === 'running') return null;
  if (status === 'passed') return 'passed';
  return findings.missingInTarget + findings.extraInTarget + findings.different > 0 && findings.unrepaired === 0 ? 'repaired' : 'failed';
}
