import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';

/** One evidence window of a migration. */
export interface EvidenceWindow {
  /** 0 for the window opened at creation, then 1, 2, 3 … */
  readonly id: number;
  readonly openedAt: Date;
  /** What opened it: `create`, a transition's action (`advance`, `rollback`, `resume`, …) or `ramp.step`. */
  readonly reason: string;
  readonly phase: string;
  /** Index into `spec.ramp.steps` for a window opened by a ramp step, else `null`. */
  readonly rampStep: number | null;
}

/** Windows looked at to attribute a late observation. */
const RECENT_WINDOWS = 8;

/**
 * Evidence windows (shared/DESIGN.md §4): the scope of the numbers that justify an action. Every
 * transition and every ramp step opens a new window; shadow-read results and dual writes are
 * counted in the window their time falls in, and gates, abort criteria and ramp steps judge only
 * the current window. So an automatic action acts once per breach — the transition it makes opens a
 * new, empty window — and a phase entered again, or a migration resumed, starts with fresh evidence.
 */
export class EvidenceWindows {
  /**
   * Opens the next window inside the caller's transaction (which holds the migration's row lock).
   * @returns the new window's id.
   */
  async open(trx: Kysely<Database>, migrationId: string, reason: string, phase: string, rampStep: number | null = null): Promise<number> {
    const row = await trx
      .updateTable('migrations')
      .set({ evidence_window: sql`evidence_window + 1` })
      .where('id', '=', migrationId)
      .returning('evidence_window')
      .executeTakeFirstOrThrow();
    await trx.insertInto('evidence_windows').values({ migration_id: migrationId, id: row.evidence_window, reason, phase, ramp_step: rampStep }).execute();
    return row.evidence_window;
  }

  /** The current window of a migration; `null` for an unknown migration. */
  async current(db: Kysely<Database>, migrationId: string): Promise<EvidenceWindow | null> {
    const m = await db.selectFrom('migrations').select(['evidence_window', 'created_at', 'phase']).where('id', '=', migrationId).executeTakeFirst();
    if (!m) return null;
    if (m.evidence_window === 0) return { id: 0, openedAt: m.created_at, reason: 'create', phase: 'draft', rampStep: null };
    const w = await db.selectFrom('evidence_windows').selectAll().where('migration_id', '=', migrationId).where('id', '=', m.evidence_window).executeTakeFirst();
    return w ? toWindow(w) : { id: m.evidence_window, openedAt: m.created_at, reason: 'unknown', phase: m.phase, rampStep: null };
  }

  /**
   * A function giving the window an instant falls in: the latest window opened at or before it (so
   * a result the SDK observed before a transition but delivered after it counts where it was seen).
   * Instants older than the recent windows fall in the oldest of them: they are never judged (only
   * the current window is). One query.
   */
  async attributor(db: Kysely<Database>, migrationId: string): Promise<(at: Date) => number> {
    const recent = await db
      .selectFrom('evidence_windows')
      .select(['id', 'opened_at'])
      .where('migration_id', '=', migrationId)
      .orderBy('id', 'desc')
      .limit(RECENT_WINDOWS)
      .execute();
    const opened = recent.map((r) => ({ id: r.id, at: new Date(r.opened_at).getTime() }));
    return (at) => {
      const t = at.getTime();
      const w = opened.find((r) => r.at <= t);
      return w ? w.id : opened.length < RECENT_WINDOWS ? 0 : (opened[opened.length - 1]?.id ?? 0);
    };
  }
}

function toWindow(w: { id: number; opened_at: Date | string; reason: string; phase: string; ramp_step: number | null }): EvidenceWindow {
  return { id: w.id, openedAt: new Date(w.opened_at), reason: w.reason, phase: w.phase, rampStep: w.ramp_step };
}
