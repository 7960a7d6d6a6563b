import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Faults } from '../../faults.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { MigrationRepository } from '../migrations/migration-repository.js';

/** One change a converge made outside the orchestrator database, as the audit log shows it. */
export interface ConvergeChange {
  /** The kind that made it (`datasource`, `flags`). */
  readonly kind: string;
  readonly action: 'created' | 'replaced' | 'removed' | 'updated';
  /** What changed, e.g. `trigger "public"."orders"."tideway_sync_0123456789ab_ins"` or `flag tideway.k3x9q2ma.orders-v2.read-new`. */
  readonly object: string;
  /** Why or how, for a person (`drifted: function body differs`, `rollout 25 → 0`). */
  readonly detail?: string;
}

/** What a kind converges to: a migration, in the state to converge to, and the orchestrator executor to read its other rows with. */
export interface ConvergeTarget {
  /**
   * The migration in the state the world must match. Inside a transition this is the state about to
   * commit (the transition's transaction holds the row lock); in the periodic pass, the committed state.
   */
  readonly migration: Migration;
  /** The transaction holding the migration's row lock (ramps, cleanups and runs are read through it). */
  readonly db: Kysely<Database>;
  /**
   * Set by the periodic pass: look at the world rather than trust what the kind recorded as last
   * applied (a kind may skip its requests inside a transition when the desired state did not change,
   * leaving drift to this pass). @defaultValue false
   */
  readonly verify?: boolean;
}

/**
 * One kind of object Tideway keeps outside its own database (sync triggers and their tables on
 * datasources, flags on the flag server). A kind derives the set of objects a migration's state
 * implies, compares it with what exists (objects carry a Tideway marker naming the installation and
 * the migration), installs what is missing, replaces what drifted and removes what is not wanted.
 *
 * Implementations are level-triggered and idempotent: converging twice changes nothing the second
 * time, and a crash halfway leaves a state the next converge completes.
 */
export interface DesiredStateKind {
  readonly name: string;
  /**
   * Makes the world match `target.migration`'s state.
   * @returns what was changed (empty when everything already matched).
   * @throws DependencyUnavailableError when the datasource or flag server cannot be reached, or the
   *   database error (e.g. a lock timeout); what was done before the throw is completed by a later converge.
   */
  converge(target: ConvergeTarget): Promise<ConvergeChange[]>;
  /**
   * Removes objects of this installation whose migration does not exist (any more) in the
   * orchestrator database. Optional.
   * @param known - ids of every migration in the orchestrator database.
   */
  sweepOrphans?(known: ReadonlySet<string>): Promise<ConvergeChange[]>;
  /**
   * One cheap look at the whole world at the start of a periodic pass (e.g. one list request to the
   * flag server). Optional.
   * @returns ids of migrations found out of step (or with a converge left unfinished): the pass
   *   converges them now, whatever their version and the age of their last check.
   */
  observe?(): Promise<ReadonlySet<string>>;
}

/** What one periodic pass did. */
export interface ReconcileReport {
  /** Migrations looked at. */
  readonly migrations: number;
  /** Changes made (drift repaired, crash leftovers removed, orphans swept). */
  readonly changes: ConvergeChange[];
  /** Migrations whose converge failed this pass, with the reason; retried on the next pass. */
  readonly failures: { readonly migrationId: string; readonly error: string }[];
}

/** Migrations converged per pass, at most. */
export const CONVERGE_BATCH = 50;
/** A migration whose world was last checked longer ago than this is checked again for drift, seconds. @defaultValue 20 */
export const DRIFT_CHECK_SECONDS = 20;

/**
 * Desired state, converged (shared/DESIGN.md §2; Kubernetes controllers are the model): transitions
 * change the state, this changes the world.
 *
 * - Inside a transition, {@link converge} runs after the new state is written and before the
 *   transaction commits: a failure cancels the transition, and a crash before the commit leaves
 *   the world ahead of the state — and a committed intent, so the next periodic pass brings it back.
 * - {@link reconcileAll}, run by every worker every reconcile interval, first lets each kind
 *   `observe` the world cheaply, then converges each migration a kind found out of step, whose
 *   version moved past the last converged one, or that has an intent left by a transition that did
 *   not commit, and re-checks the others for drift every
 *   {@link DRIFT_CHECK_SECONDS}, each under the migration's row lock (`FOR UPDATE SKIP LOCKED`: a
 *   migration in the middle of a transition is left to the transition). Every change it makes is
 *   an audit event `converge` with the changes; then it removes orphans of this installation.
 */
export class DesiredStateReconciler {
  readonly #kinds: DesiredStateKind[] = [];

  constructor(
    private readonly db: Kysely<Database>,
    private readonly repository: MigrationRepository,
    private readonly faults: Faults,
  ) {}

  /** Adds a kind; kinds converge in registration order (datasource objects before flags). */
  register(kind: DesiredStateKind): void {
    this.#kinds.push(kind);
  }

  /** The registered kinds' names, in order. */
  kinds(): string[] {
    return this.#kinds.map((k) => k.name);
  }

  /**
   * Commits an intent to converge a migration, before the caller opens the transaction that will
   * {@link converge} (so it costs no second connection while that transaction holds the row lock).
   * @returns the intent's id, for {@link converge}.
   */
  async intend(migrationId: string): Promise<number> {
    const row = await this.db.insertInto('converge_intents').values({ migration_id: migrationId }).returning('id').executeTakeFirstOrThrow();
    return row.id;
  }

  /**
   * Converges every kind for one migration inside the caller's transaction, which holds the
   * migration's row lock (a transition, a ramp's write cutover): the kinds converge in order
   * (stopping at the first failure), then — in the caller's transaction — the intent is deleted and
   * `target.migration.version` marked converged. So when the caller's transaction does not commit
   * (a crash, a failed step after this), the intent stays and the next {@link reconcileAll}
   * converges the world back to the committed state.
   *
   * @param intent - the id {@link intend} returned, or `null` when the caller made none.
   * @throws what the failing kind threw (the caller's transaction should then roll back).
   */
  async converge(target: ConvergeTarget, intent: number | null = null): Promise<ConvergeChange[]> {
    const changes = await this.#convergeKinds(target);
    if (intent !== null) await target.db.deleteFrom('converge_intents').where('id', '=', intent).execute();
    await markConverged(target.db, target.migration.id, target.migration.version);
    return changes;
  }

  async #convergeKinds(target: ConvergeTarget): Promise<ConvergeChange[]> {
    const changes: ConvergeChange[] = [];
    for (const kind of this.#kinds) {
      changes.push(...(await kind.converge(target)));
      this.faults.crashPoint(`converge:${kind.name}:done`);
    }
    return changes;
  }

  /**
   * The periodic pass. Never throws for one migration's failure (it is reported and retried);
   * throws only when the orchestrator database cannot be read at all.
   */
  async reconcileAll(options: { driftCheckSeconds?: number } = {}): Promise<ReconcileReport> {
    const drift = options.driftCheckSeconds ?? DRIFT_CHECK_SECONDS;
    const failures: { migrationId: string; error: string }[] = [];
    const observed = new Set<string>();
    for (const kind of this.#kinds) {
      try {
        for (const id of (await kind.observe?.()) ?? []) observed.add(id);
      } catch (error) {
        failures.push({ migrationId: '*', error: `${kind.name} observe: ${error instanceof Error ? error.message : String(error)}` });
      }
    }
    const outOfStep = [...observed];
    const due = await this.db
      .selectFrom('migrations')
      .select('id')
      .where((eb) =>
        eb.or([
          eb('converged_version', '<', eb.ref('version')),
          eb('id', 'in', eb.selectFrom('converge_intents').select('migration_id')),
          ...(outOfStep.length > 0 ? [eb('id', 'in', outOfStep)] : []),
          eb.and([
            eb('status', 'not in', ['aborted', 'completed']),
            eb.or([eb('converged_at', 'is', null), eb('converged_at', '<', sql<Date>`now() - make_interval(secs => ${drift})`)]),
          ]),
        ]),
      )
      .$if(outOfStep.length > 0, (qb) => qb.orderBy(sql`id = any(${outOfStep}::uuid[])`, 'desc'))
      .orderBy(sql`converged_version < version`, 'desc')
      .orderBy('converged_at', (ob) => ob.asc().nullsFirst())
      .limit(CONVERGE_BATCH)
      .execute();
    const changes: ConvergeChange[] = [];
    for (const { id } of due) {
      try {
        changes.push(...(await this.#reconcileOne(id)));
      } catch (error) {
        failures.push({ migrationId: id, error: error instanceof Error ? error.message : String(error) });
      }
    }
    const sweepers = this.#kinds.filter((k) => k.sweepOrphans);
    if (sweepers.length > 0) {
      const known = new Set((await this.db.selectFrom('migrations').select('id').execute()).map((r) => r.id));
      for (const kind of sweepers) {
        try {
          changes.push(...((await kind.sweepOrphans?.(known)) ?? []));
        } catch (error) {
          failures.push({ migrationId: '*', error: `${kind.name} orphan sweep: ${error instanceof Error ? error.message : String(error)}` });
        }
      }
    }
    return { migrations: due.length, changes, failures };
  }

  async #reconcileOne(id: string): Promise<ConvergeChange[]> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('migrations').selectAll().where('id', '=', id).forUpdate().skipLocked().executeTakeFirst();
      if (!row) return []; // a transition holds it: it converges for itself
      const migration = toMigration(row);
      const changes = await this.#convergeKinds({ migration, db: trx, verify: true });
      // Intents written before this pass took the lock are answered by it. (One of a transition still
      // waiting for the lock goes too; should that transition then die after changing the world, the
      // drift check converges it within DRIFT_CHECK_SECONDS.)
      await trx.deleteFrom('converge_intents').where('migration_id', '=', id).where('since', '<', sql<Date>`statement_timestamp()`).execute();
      if (changes.length > 0) {
        const state = { phase: migration.phase, status: migration.status };
        await this.repository.appendEvent(trx, {
          migrationId: id,
          actor: 'tideway:reconciler',
          action: 'converge',
          from: state,
          to: state,
          reason: 'the world did not match the state (a crash, a failed step or a change made by hand)',
          details: { changes: changes.map((c) => ({ ...c })), version: migration.version },
        });
      }
      await markConverged(trx, id, migration.version);
      return changes;
    });
  }
}

/** Records that `version`'s desired state is converged (inside the caller's transaction). */
export async function markConverged(trx: Kysely<Database>, migrationId: string, version: number): Promise<void> {
  await trx.updateTable('migrations').set({ converged_version: version, converged_at: sql`now()` }).where('id', '=', migrationId).execute();
}
