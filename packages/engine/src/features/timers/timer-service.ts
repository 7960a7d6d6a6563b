import type { Database, TimerKind, TimerRow } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../../clock.js';

/** What a timer handler decided: fired (done), or leave it for a later poll (paused, flag server down). */
export type TimerOutcome = 'fired' | 'later';

/** Runs when a timer of its kind is due. Must be idempotent: a crash before the mark repeats it. */
export type TimerHandler = (timer: TimerRow, now: Date) => Promise<TimerOutcome>;

/** How many due timers one poll takes at most. */
export const TIMERS_PER_POLL = 20;
/** How long a poller's claim on a timer lasts while its handler runs, seconds. */
export const TIMER_LEASE_SECONDS = 120;

/**
 * Durable timers: ramp holds, cleanup reminders and deadlines are rows in PostgreSQL, polled by
 * every worker's reconcile tick (claimed with a lease, so each fires once) — nothing about them
 * lives only in Redis, and time comes from the injectable clock, so tests move time instead of
 * waiting for days. Precision is the poll interval (2 s by default).
 */
export class TimerService {
  readonly #handlers = new Map<TimerKind, TimerHandler>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  /** Sets the handler of a timer kind. */
  on(kind: TimerKind, handler: TimerHandler): void {
    this.#handlers.set(kind, handler);
  }

  /** Schedules a timer inside the caller's transaction. */
  async schedule(trx: Kysely<Database>, migrationId: string, kind: TimerKind, dueAt: Date, payload: Record<string, unknown> = {}): Promise<void> {
    await trx.insertInto('timers').values({ migration_id: migrationId, kind, due_at: dueAt, payload: JSON.stringify(payload) }).execute();
  }

  /** Cancels pending timers of a migration (of the given kinds, or all). */
  async cancel(trx: Kysely<Database>, migrationId: string, kinds?: TimerKind[]): Promise<void> {
    let q = trx.updateTable('timers').set({ cancelled_at: sql`now()` }).where('migration_id', '=', migrationId).where('fired_at', 'is', null).where('cancelled_at', 'is', null);
    if (kinds) q = q.where('kind', 'in', kinds);
    await q.execute();
  }

  /** Pending timers of a migration, soonest first. */
  async pending(migrationId: string): Promise<TimerRow[]> {
    return this.db.selectFrom('timers').selectAll().where('migration_id', '=', migrationId).where('fired_at', 'is', null).where('cancelled_at', 'is', null).orderBy('due_at').execute();
  }

  /**
   * Fires every due timer (up to {@link TIMERS_PER_POLL}). Each is first claimed with a short lease
   * (committed), its handler runs holding no lock, then it is marked fired — or released when the
   * handler throws or answers `later`. A worker that dies mid-handler leaves an expiring lease, so
   * the timer fires again elsewhere (handlers are idempotent).
   * @returns how many timers fired.
   */
  async fireDue(now: Date = this.clock.now()): Promise<number> {
    const claimed = await this.db
      .updateTable('timers')
      .set({ lease_until: sql`now() + make_interval(secs => ${TIMER_LEASE_SECONDS})` })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('timers')
          .select('id')
          .where('fired_at', 'is', null)
          .where('cancelled_at', 'is', null)
          .where('due_at', '<=', now)
          .where((w) => w.or([w('lease_until', 'is', null), w('lease_until', '<', sql<Date>`now()`)]))
          .orderBy('due_at')
          .limit(TIMERS_PER_POLL)
          .forUpdate()
          .skipLocked(),
      )
      .returningAll()
      .execute();
    let fired = 0;
    for (const timer of claimed.sort((a, b) => new Date(a.due_at).getTime() - new Date(b.due_at).getTime())) {
      const handler = this.#handlers.get(timer.kind);
      let outcome: TimerOutcome = 'later';
      try {
        if (handler) outcome = await handler(timer, now);
      } catch {
        outcome = 'later';
      }
      if (outcome === 'fired') {
        await this.db.updateTable('timers').set({ fired_at: now, lease_until: null }).where('id', '=', timer.id).execute();
        fired++;
      } else {
        await this.db.updateTable('timers').set({ lease_until: null }).where('id', '=', timer.id).execute();
      }
    }
    return fired;
  }
}
