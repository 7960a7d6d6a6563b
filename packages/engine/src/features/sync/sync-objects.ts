import { desiredSync, TidewayError, type MigrationSpec } from '@tideway/core';
import { reverseMappingOf } from '../way-back/way-back.js';
import { copiedColumn, loadSqlParser } from '../mapping/mapping-validator.js';
import type pg from 'pg';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { Faults } from '../../faults.js';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { ConvergeChange, ConvergeTarget, DesiredStateKind } from '../desired-state/desired-state.js';
import type { Installation } from '../installation/installation.js';
import type { Migration } from '../migrations/migration.js';
import { idTag, parseSyncMarker, syncObjects, type SyncDirection, type SyncObject } from './sync-sql.js';
import { TIDEWAY_SQL_MARK } from '../pace/statement-latency.js';

/** How long a converge's DDL may wait for a table lock held by writers, milliseconds. */
export const SYNC_LOCK_TIMEOUT_MS = 5000;

/** A sync object as found in a datasource's catalog. */
interface Observed {
  readonly kind: 'table' | 'function' | 'trigger';
  readonly schema: string;
  readonly name: string;
  readonly table: string | null;
  readonly comment: string | null;
  readonly enabled: boolean;
  /** Functions: md5 of the body. */
  readonly srcMd5: string | null;
}

/*
 * Every object that looks like a sync object of one migration (by its name tag) or carries a
 * marker: functions without arguments, triggers (not internal), tables. Inputs: $1 the migration's
 * name tag pattern for functions and triggers (`tideway\_sync\_<tag>%`), $2 for tables
 * (`tideway\_%\_<tag>%`), $3 a marker prefix (`tideway:<installation>:<migration id>:` or
 * `tideway:<installation>:` for the orphan sweep).
 */
const OBSERVE_SQL = `${TIDEWAY_SQL_MARK}
SELECT 'function' AS kind, n.nspname AS schema, p.proname AS name, NULL::text AS table_name,
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment, true AS enabled, pg_catalog.md5(p.prosrc) AS src_md5
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE p.pronargs = 0 AND (p.proname LIKE $1 OR pg_catalog.starts_with(coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), ''), $3))
UNION ALL
SELECT 'trigger', n.nspname, t.tgname, c.relname,
       (SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = t.oid AND d.classoid = 'pg_catalog.pg_trigger'::pg_catalog.regclass),
       t.tgenabled IN ('O', 'A'), NULL
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND (t.tgname LIKE $1 OR pg_catalog.starts_with(coalesce((SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = t.oid AND d.classoid = 'pg_catalog.pg_trigger'::pg_catalog.regclass), ''), $3))
UNION ALL
SELECT 'table', n.nspname, c.relname, NULL, pg_catalog.obj_description(c.oid, 'pg_class'), true, NULL
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND (c.relname LIKE $2 OR pg_catalog.starts_with(coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), ''), $3))`;

const DROP_ORDER: Record<Observed['kind'], number> = { trigger: 0, function: 1, table: 2 };

function label(o: Observed): string {
  const q = (n: string) => `"${n.replace(/"/g, '""')}"`;
  if (o.kind === 'trigger') return `trigger ${q(o.name)} on ${q(o.schema)}.${q(o.table ?? '?')}`;
  if (o.kind === 'function') return `function ${q(o.schema)}.${q(o.name)}()`;
  return `table ${q(o.schema)}.${q(o.name)}`;
}

function dropStatement(o: Observed): string {
  const q = (n: string) => `"${n.replace(/"/g, '""')}"`;
  if (o.kind === 'trigger') return `DROP TRIGGER IF EXISTS ${q(o.name)} ON ${q(o.schema)}.${q(o.table ?? '')}`;
  if (o.kind === 'function') return `DROP FUNCTION IF EXISTS ${q(o.schema)}.${q(o.name)}()`;
  return `DROP TABLE IF EXISTS ${q(o.schema)}.${q(o.name)}`;
}

const sameObject = (a: { kind: string; schema: string; name: string; table: string | null }, b: { kind: string; schema: string; name: string; table: string | null }) =>
  a.kind === b.kind && a.schema === b.schema && a.name === b.name && (a.kind !== 'trigger' || a.table === b.table);

/** Dependencies of {@link SyncObjects}. */
export interface SyncObjectsDeps {
  /** The orchestrator database (to find migrations whose reverse-sync grace ended). */
  readonly db: Kysely<Database>;
  readonly datasources: DatasourceRegistry;
  readonly catalog: CatalogInspector;
  readonly installation: Installation;
  readonly faults: Faults;
}

/**
 * The datasource kind of the desired state (shared/DESIGN.md §2): a migration's trigger sync —
 * per direction three statement-level triggers, their function, a failures table and (forward) the
 * tombstone table — derived from its state with `desiredSync`, compared with the objects found in
 * the datasource's catalog (each carries the marker `tideway:<installation>:<migration id>:…` with a
 * hash of its definition), and converged in one datasource transaction with a lock timeout: what
 * is missing or drifted (another definition, a disabled trigger, a lost comment) is created, what is
 * not wanted is removed, triggers first. Objects another installation marked are never touched.
 *
 * Also removes objects of a migration written by earlier Tideway versions (row-level
 * `tideway_sync_<tag>` triggers), which carry no marker but the migration's name tag.
 */
export class SyncObjects implements DesiredStateKind {
  readonly name = 'datasource';

  constructor(private readonly deps: SyncObjectsDeps) {}

  /** The objects the migration's state wants, in creation order. */
  async desired(migration: Migration, ramp: { reverseSync: boolean; reverseUntil: Date | null; now?: Date }): Promise<SyncObject[]> {
    const spec = migration.spec;
    await loadSqlParser();
    const want = desiredSync({ phase: migration.phase, status: migration.status, syncMode: spec.syncMode, reverseSync: ramp.reverseSync, reverseUntil: ramp.reverseUntil, ...(ramp.now ? { now: ramp.now } : {}), wayBack: reverseMappingOf(spec) !== null });
    if (!want.forward && !want.reverse) return [];
    const installation = await this.deps.installation.id();
    const out: SyncObject[] = [];
    if (want.forward) {
      const writtenKeyTypes = await this.deps.catalog.columnTypes(spec.target, spec.target.key);
      out.push(...syncObjects({ spec, migrationId: migration.id, installation, direction: 'forward', mapping: spec.mapping, writtenKeyTypes }));
    }
    if (want.reverse) {
      const reverse = reverseMappingOf(spec);
      if (!reverse) throw new TidewayError('INVALID_SPEC', 'reverse sync needs a reverse mapping (reverseMapping)', { field: 'reverseMapping' });
      const writtenKeyTypes = await this.deps.catalog.columnTypes(spec.source, spec.source.key);
      out.push(...syncObjects({ spec, migrationId: migration.id, installation, direction: 'reverse', mapping: reverse, writtenKeyTypes }));
    }
    return out;
  }

  /**
   * {@inheritDoc DesiredStateKind.observe}: migrations whose reverse-sync grace (`ramps.reverse_until`)
   * ended after their last converge — aborted ones too, which the drift check leaves alone — so the
   * reverse sync a rollback or abort kept goes as soon as no instance may still write new.
   */
  async observe(): Promise<ReadonlySet<string>> {
    const rows = await this.deps.db
      .selectFrom('ramps')
      .innerJoin('migrations', 'migrations.id', 'ramps.migration_id')
      .select('ramps.migration_id')
      .where('ramps.reverse_until', '<', sql<Date>`now()`)
      .where(sql<boolean>`ramps.reverse_until > coalesce(migrations.converged_at, '-infinity'::timestamptz)`)
      .execute();
    return new Set(rows.map((r) => r.migration_id));
  }

  /** {@inheritDoc DesiredStateKind.converge} */
  async converge(target: ConvergeTarget): Promise<ConvergeChange[]> {
    const { migration } = target;
    const spec = migration.spec;
    if (spec.syncMode !== 'trigger' || !this.deps.datasources.has(spec.source.datasource)) return [];
    // The grace is judged on database time, as `observe` judges its end: one clock, whatever the workers' skew.
    const ramp = await target.db.selectFrom('ramps').select(['reverse_sync', 'reverse_until', sql<Date>`now()`.as('now')]).where('migration_id', '=', migration.id).executeTakeFirst();
    const desired = await this.desired(migration, { reverseSync: ramp?.reverse_sync ?? false, reverseUntil: ramp?.reverse_until ?? null, now: ramp?.now ?? new Date() });
    const installation = await this.deps.installation.id();
    return this.deps.datasources.withClient(spec.source.datasource, async (client) => {
      const observed = await this.#observe(client, migration.id, installation);
      const mine = observed.filter((o) => this.#ownedBy(o, installation, migration.id));
      const foreign = observed.filter((o) => !mine.includes(o));
      const create = desired.filter((d) => {
        const found = mine.find((o) => sameObject(o, d));
        return !found || found.comment !== d.marker || !found.enabled || (d.bodyMd5 !== undefined && found.srcMd5 !== d.bodyMd5);
      });
      const remove = mine.filter((o) => !desired.some((d) => sameObject(o, d)));
      for (const d of create) {
        const clash = foreign.find((o) => sameObject(o, d));
        if (clash) throw new TidewayError('INVALID_SPEC', `${d.label} exists and belongs to another installation (${clash.comment ?? 'no marker'})`, { field: 'source.table' });
      }
      if (create.length === 0 && remove.length === 0) return [];
      const changes: ConvergeChange[] = [];
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL lock_timeout = ${SYNC_LOCK_TIMEOUT_MS}`);
        for (const o of [...remove].sort((a, b) => DROP_ORDER[a.kind] - DROP_ORDER[b.kind])) {
          if (migration.phase !== 'done' && o.kind === 'table' && parseSyncMarker(o.comment)?.role === 'failures' && parseSyncMarker(o.comment)?.direction === 'reverse') {
            // Its triggers are gone (dropped above, under the table lock): no writer can record more.
            // What it holds are writes old missed; dropping them would lose them on the way back
            // (at done, old is retired and they no longer matter).
            const left = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${o.schema.replace(/"/g, '""')}"."${o.name.replace(/"/g, '""')}"`);
            const n = left.rows[0]?.n ?? 0;
            if (n > 0) {
              throw new TidewayError('DEPENDENCY_UNAVAILABLE', `${n} write(s) to the new table could not be synced back to old; they are re-driven first — retry in a moment`, {
                dependency: `datasource "${spec.source.datasource}"`,
                failuresTable: `${o.schema}.${o.name}`,
              });
            }
          }
          await client.query(dropStatement(o));
          changes.push({ kind: this.name, action: 'removed', object: label(o) });
        }
        for (const d of create) {
          const existed = mine.some((o) => sameObject(o, d) && !remove.includes(o));
          for (const statement of d.create) await client.query(statement);
          changes.push({ kind: this.name, action: existed ? 'replaced' : 'created', object: d.label, ...(existed ? { detail: 'its definition or state had drifted' } : {}) });
        }
        this.deps.faults.crashPoint('converge:datasource:before-commit');
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
      return changes;
    });
  }

  /** {@inheritDoc DesiredStateKind.sweepOrphans} */
  async sweepOrphans(known: ReadonlySet<string>): Promise<ConvergeChange[]> {
    const installation = await this.deps.installation.id();
    const changes: ConvergeChange[] = [];
    for (const datasource of this.deps.datasources.names()) {
      const found = await this.deps.datasources
        .withClient(datasource, (client) => this.#observe(client, null, installation))
        .catch(() => [] as Observed[]); // unreachable now: the next pass sweeps it
      const orphans = found.filter((o) => {
        const m = parseSyncMarker(o.comment);
        return m !== null && m.installation === installation && !known.has(m.migrationId);
      });
      if (orphans.length === 0) continue;
      await this.deps.datasources.withClient(datasource, async (client) => {
        await client.query('BEGIN');
        try {
          await client.query(`SET LOCAL lock_timeout = ${SYNC_LOCK_TIMEOUT_MS}`);
          for (const o of orphans.sort((a, b) => DROP_ORDER[a.kind] - DROP_ORDER[b.kind])) await client.query(dropStatement(o));
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      });
      for (const o of orphans) changes.push({ kind: this.name, action: 'removed', object: label(o), detail: `orphan on datasource "${datasource}": its migration ${parseSyncMarker(o.comment)?.migrationId} is unknown here` });
    }
    return changes;
  }

  /** Whether the direction's sync is installed now (its three triggers, enabled and current). */
  async isInstalled(migration: Migration, direction: SyncDirection): Promise<boolean> {
    const installation = await this.deps.installation.id();
    return this.deps.datasources.withClient(migration.spec.source.datasource, async (client) => {
      const observed = await this.#observe(client, migration.id, installation);
      const triggers = observed.filter((o) => o.kind === 'trigger' && o.enabled && parseSyncMarker(o.comment)?.direction === direction && parseSyncMarker(o.comment)?.migrationId === migration.id);
      return triggers.length === 3;
    });
  }

  #ownedBy(o: Observed, installation: string, migrationId: string): boolean {
    const marker = parseSyncMarker(o.comment);
    if (marker) return marker.installation === installation && marker.migrationId === migrationId;
    // No marker (an earlier Tideway version's object, or its comment was removed): ours by its name tag.
    return o.comment === null && o.name.includes(idTag(migrationId));
  }

  async #observe(client: pg.ClientBase, migrationId: string | null, installation: string): Promise<Observed[]> {
    const tag = migrationId ? idTag(migrationId) : '-'; // '-' is in no tag: match by marker only
    const prefix = migrationId ? `tideway:${installation}:${migrationId}:` : `tideway:${installation}:`;
    const r = await client.query<{ kind: Observed['kind']; schema: string; name: string; table_name: string | null; comment: string | null; enabled: boolean; src_md5: string | null }>(OBSERVE_SQL, [
      `tideway\\_sync\\_${tag}%`,
      `tideway\\_%\\_${tag}%`,
      prefix,
    ]);
    return r.rows.map((row) => ({ kind: row.kind, schema: row.schema, name: row.name, table: row.table_name, comment: row.comment, enabled: row.enabled, srcMd5: row.src_md5 }));
  }
}

/** The spec's source key values in `spec.source.key` order, from key values of the target table (straight key mapping), or `null`. */
export function sourceKeyFromTargetKey(spec: MigrationSpec, targetKey: readonly string[]): string[] | null {
  const out: string[] = [];
  for (const column of spec.source.key) {
    const i = spec.target.key.findIndex((t) => copiedColumn(spec.mapping[t] ?? '') === column);
    if (i < 0 || targetKey[i] === undefined) return null;
    out.push(targetKey[i] as string);
  }
  return out;
}
