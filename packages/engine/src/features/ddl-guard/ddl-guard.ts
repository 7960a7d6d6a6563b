import { InvalidSpecError } from '@tideway/core';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import { describeSignatureChange, type CatalogSignature } from '../expressions/catalog-signature.js';
import type { ExpressionBinder } from '../expressions/expression-binder.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';

/** Phases in which the guard watches a migration's tables (prepare until the cleanup is executed). */
export const GUARDED_PHASES = ['prepare', 'dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup'] as const;

/** What the guard found last, as shown in `progress.ddl`. */
export interface DdlDetection {
  /** Sentences naming each change (`column name of public.orders was dropped`). */
  readonly changes: readonly string[];
  readonly detectedAt: string;
}

const ACTOR = 'tideway:ddl-guard';

/**
 * The DDL guard (issue 11 §5): a schema change to a column a migration uses — read by the mapping,
 * written, a key, or either of these for the way back — pauses the migration with the change named,
 * before a chunk copies or a gate judges anything against a table that is no longer the one its
 * expressions were bound to.
 *
 * The signature of both tables (relation oids; per column attnum, name, type, typmod, not-null) is
 * recorded when the expressions are bound at `start` and compared with the live catalog before
 * every chunk and on every reconcile round (a catalog read, no lock). Event triggers would see the
 * DDL before it commits but need superuser; the sync trigger meanwhile records the writes it cannot
 * apply instead of failing them (ADR 009), so the application keeps writing.
 *
 * `resume` after a detected change re-binds the spec against the live catalog: when it still binds
 * (a widened type, a column renamed back), the new signature is recorded and the migration goes
 * on; otherwise the resume is refused with every problem (422), and the way out is a rollback or abort.
 */
export class DdlGuard {
  constructor(
    private readonly deps: {
      readonly db: Kysely<Database>;
      readonly binder: ExpressionBinder;
      readonly catalog: CatalogInspector;
      readonly migrations: MigrationService;
    },
  ) {}

  /** Records the signature the expressions were just bound against (inside the caller's transaction); clears a detection. */
  async record(trx: Kysely<Database>, migrationId: string, signature: CatalogSignature): Promise<void> {
    await trx
      .insertInto('ddl_guards')
      .values({ migration_id: migrationId, signature: JSON.stringify(signature) })
      .onConflict((oc) => oc.column('migration_id').doUpdateSet({ signature: JSON.stringify(signature), bound_at: sql`now()`, detected: null, detected_at: null }))
      .execute();
  }

  /** The live catalog against the recorded signature: the changes that matter (empty when none, or nothing recorded). */
  async changes(migration: Migration): Promise<string[]> {
    const row = await this.deps.db.selectFrom('ddl_guards').select('signature').where('migration_id', '=', migration.id).executeTakeFirst();
    if (!row) return [];
    return describeSignatureChange(row.signature as CatalogSignature, await this.deps.binder.catalogSignature(migration.spec));
  }

  /**
   * Compares now; on a change, records it (once per distinct change) and pauses an active migration
   * with the change named (actor `tideway:ddl-guard`, `details.ddl`). A migration already paused or
   * failed keeps its status and shows the change in `progress.ddl`.
   * @returns the changes found (empty when none).
   * @throws DependencyUnavailableError when a datasource cannot be reached.
   */
  async check(migration: Migration): Promise<string[]> {
    const changes = await this.changes(migration);
    if (changes.length === 0) return [];
    const recorded = await this.deps.db
      .updateTable('ddl_guards')
      .set({ detected: JSON.stringify(changes), detected_at: sql`coalesce(detected_at, now())` })
      .where('migration_id', '=', migration.id)
      .where(sql<boolean>`detected IS DISTINCT FROM ${JSON.stringify(changes)}::jsonb`)
      .executeTakeFirst();
    if (migration.status === 'active') {
      await this.deps.migrations
        .act(migration.id, 'pause', {
          actor: ACTOR,
          expectedVersion: migration.version,
          reason: `DDL on the migration's tables: ${changes.join('; ')}`,
          details: { ddl: changes },
        })
        .catch(() => undefined); // changed meanwhile: the next round judges again
    } else if (Number(recorded.numUpdatedRows) > 0) {
      await this.deps.migrations.recordEvent(migration.id, 'ddl.detected', { actor: ACTOR, reason: changes.join('; '), details: { ddl: changes } }).catch(() => undefined);
    }
    return changes;
  }

  /** {@link check} for every migration in a guarded phase that is not aborted or completed. @returns how many had changes. */
  async checkAll(): Promise<number> {
    const rows = await this.deps.db
      .selectFrom('migrations as m')
      .innerJoin('ddl_guards as g', 'g.migration_id', 'm.id')
      .selectAll('m')
      .where('m.phase', 'in', [...GUARDED_PHASES])
      .where('m.status', 'not in', ['aborted', 'completed'])
      .execute();
    let n = 0;
    for (const row of rows) {
      try {
        if ((await this.check(toMigration(row))).length > 0) n++;
      } catch {
        // a datasource down: the next round checks again
      }
    }
    return n;
  }

  /**
   * At `resume`, inside its transaction: when the tables changed since they were bound, binds the
   * spec again against the live catalog and records the new signature, or refuses.
   * @throws InvalidSpecError listing every problem when the spec no longer binds (the resume is refused).
   */
  async rebindIfChanged(trx: Kysely<Database>, migration: Migration): Promise<void> {
    if ((await this.changes(migration)).length === 0) return;
    const inspection = await this.deps.catalog.inspectSpec(migration.spec);
    if (inspection.problems.length > 0 || !inspection.binding) throw new InvalidSpecError(inspection.problems);
    await this.record(trx, migration.id, inspection.binding.signature);
  }

  /** What the guard found last and still stands (for `progress.ddl`), or `null`. */
  async detection(migrationId: string): Promise<DdlDetection | null> {
    const row = await this.deps.db.selectFrom('ddl_guards').select(['detected', 'detected_at']).where('migration_id', '=', migrationId).executeTakeFirst();
    if (!row?.detected || !row.detected_at) return null;
    return { changes: row.detected, detectedAt: row.detected_at.toISOString() };
  }
}
