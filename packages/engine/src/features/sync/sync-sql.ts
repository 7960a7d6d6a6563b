import { createHash } from 'node:crypto';
import type { MigrationSpec, TableRef } from '@tideway/core';
import { SYNCING_SETTING } from '../datasources/datasource-registry.js';
import { idTag, qualified, quoteIdent, reverseSpec, SOURCE_ALIAS, tombstoneTableName, upsertClause } from '../backfill/sql.js';

export { idTag, tombstoneTable, tombstoneTableName } from '../backfill/sql.js';

/*
 * SQL of trigger sync (ADR 004, 005, 009). Inputs: identifiers (validated against IDENTIFIER_PATTERN
 * and always quoted), key types read from the live catalog (`format_type`), mapping expressions
 * that passed the allowlist and were bound against the live catalog (ADR 006), the installation id
 * and the migration id (both validated shapes). No value from a row ever enters the text.
 */

/** Which way a sync copies: source → target from dual_write on, target → source after write cutover. */
export type SyncDirection = 'forward' | 'reverse';

/** What a sync object is for; part of its marker. */
export type SyncRole =
  | 'tombstones'
  | 'failures'
  | 'function'
  | 'trigger-insert'
  | 'trigger-update'
  | 'trigger-delete';

/** The events a sync has one statement-level trigger for (transition tables allow one event per trigger). */
const EVENTS = [
  { role: 'trigger-insert', event: 'INSERT', suffix: 'ins', referencing: 'REFERENCING NEW TABLE AS tw_new' },
  { role: 'trigger-update', event: 'UPDATE', suffix: 'upd', referencing: 'REFERENCING OLD TABLE AS tw_old NEW TABLE AS tw_new' },
  { role: 'trigger-delete', event: 'DELETE', suffix: 'del', referencing: 'REFERENCING OLD TABLE AS tw_old' },
] as const;

/** Base name of a migration's sync objects: `tideway_sync_<tag>` (`_rev` for reverse). */
export function syncTriggerName(migrationId: string, direction: SyncDirection = 'forward'): string {
  return `tideway_sync_${idTag(migrationId)}${direction === 'reverse' ? '_rev' : ''}`;
}

/** Unqualified name of a direction's failures table (beside the table its trigger is on). */
export function failuresTableName(migrationId: string, direction: SyncDirection): string {
  return `tideway_fail_${idTag(migrationId)}${direction === 'reverse' ? '_rev' : ''}`;
}

/**
 * The marker every sync object carries as its comment: `tideway:<installation>:<migration id>:<direction>:<role>:<hash>`.
 * The hash (of the object's definition) tells a drifted or stale object from a current one.
 */
export function syncMarker(installation: string, migrationId: string, direction: SyncDirection, role: SyncRole, hash: string): string {
  return `tideway:${installation}:${migrationId}:${direction}:${role}:${hash}`;
}

/** A parsed marker, or `null` for a comment that is not one. */
export function parseSyncMarker(comment: string | null): { installation: string; migrationId: string; direction: SyncDirection; role: SyncRole; hash: string } | null {
  const m = /^tideway:([a-z0-9]{1,16}):([0-9a-f-]{36}):(forward|reverse):([a-z-]+):([0-9a-f]{16})$/.exec(comment ?? '');
  if (!m) return null;
  return { installation: m[1] as string, migrationId: m[2] as string, direction: m[3] as SyncDirection, role: m[4] as SyncRole, hash: m[5] as string };
}

/** One object a sync needs on a datasource, with the statements that create and drop it. */
export interface SyncObject {
  readonly kind: 'table' | 'function' | 'trigger';
  readonly direction: SyncDirection;
  readonly role: SyncRole;
  readonly schema: string;
  readonly name: string;
  /** For triggers: the table the trigger is on. */
  readonly table: string | null;
  /** The comment it carries; equal markers mean equal definitions. */
  readonly marker: string;
  /** Statements that create it (or replace a drifted one) and set its marker. */
  readonly create: readonly string[];
  readonly drop: string;
  /** For functions: md5 of the body (`pg_proc.prosrc`), which a `CREATE OR REPLACE` by hand changes while the comment stays. */
  readonly bodyMd5?: string;
  /** How a person reads it in the audit log: `trigger "public"."orders".tideway_sync_0b1c2d3e4f50_ins`. */
  readonly label: string;
}

function hash16(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function row(parts: readonly string[]): string {
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(', ')})`;
}

/** The objects of one sync direction, in creation order (tables, function, triggers). */
export interface SyncPlanInput {
  readonly spec: MigrationSpec;
  readonly migrationId: string;
  readonly installation: string;
  readonly direction: SyncDirection;
  /** The mapping of this direction: column of the table written → expression over the row of the table the trigger is on. */
  readonly mapping: Readonly<Record<string, string>>;
  /** SQL types of the written table's key columns (format_type), in its key order; needed for the tombstone table. */
  readonly writtenKeyTypes: readonly string[];
}

/**
 * The statement-level sync of one direction (ADR 009): three `AFTER … FOR EACH STATEMENT` triggers
 * with transition tables on the table written by the application (`from`), one function, and the
 * tables it records into. Per statement the function applies the statement's rows to the other
 * table in set operations, inside the writer's transaction:
 * - INSERT: upsert the mapped new rows;
 * - UPDATE: delete the rows whose mapped key no new row has any more (re-keys), then upsert the
 *   mapped new rows;
 * - DELETE: delete the rows of the mapped old keys.
 * Forward, every key deleted or moved is also recorded as a tombstone (ADR 005).
 *
 * The function runs with `SET search_path = pg_catalog, pg_temp` (so a name cannot resolve to
 * anything but what the binder proved, ADR 006) and inside an exception block: a write the sync
 * cannot apply (a schema change, a value the mapping or a constraint of the other table refuses)
 * never fails the application's statement (serialization failures and deadlocks excepted: they are
 * re-raised, as the application retries them anyway) — its keys and the error are recorded in the direction's
 * failures table, collected into the divergence ledger and re-driven (ADR 009). Writes made by a
 * sync itself are not synced back (`tideway.syncing`, {@link SYNCING_SETTING}), so both directions can
 * run together (ADR 004), and neither are Tideway's own writes (its datasource sessions have it on).
 *
 * Definitions are deterministic (the dollar-quote tag is derived from the body), so a definition's
 * hash in its marker tells whether the object in the database is the current one.
 */
export function syncObjects(input: SyncPlanInput): SyncObject[] {
  const { spec, migrationId, installation, direction, mapping } = input;
  const s = direction === 'forward' ? spec : reverseSpec(spec, mapping);
  const from: TableRef = s.source;
  const into: TableRef = s.target;
  const base = syncTriggerName(migrationId, direction);
  const fnName = base;
  const fn = `${quoteIdent(from.schema)}.${quoteIdent(fnName)}`;
  const failures = qualified({ schema: from.schema, table: failuresTableName(migrationId, direction) });
  const tombName = tombstoneTableName(migrationId);
  const tomb = direction === 'forward' ? qualified({ schema: from.schema, table: tombName }) : null;
  const objects: SyncObject[] = [];
  const mark = (role: SyncRole, definition: string) => syncMarker(installation, migrationId, direction, role, hash16(definition));
  const comment = (what: string, marker: string) => `COMMENT ON ${what} IS '${marker}'`;

  // Tables first: the function writes them.
  if (tomb) {
    const cols = into.key.map((k, i) => `${quoteIdent(k)} ${input.writtenKeyTypes[i] as string} NOT NULL`);
    const create = `CREATE TABLE IF NOT EXISTS ${tomb} (${cols.join(', ')}, PRIMARY KEY (${into.key.map(quoteIdent).join(', ')}))`;
    const marker = mark('tombstones', create);
    objects.push({
      kind: 'table', direction, role: 'tombstones', schema: from.schema, name: tombName, table: null, marker,
      create: [create, comment(`TABLE ${tomb}`, marker)], drop: `DROP TABLE IF EXISTS ${tomb}`, label: `table ${tomb}`,
    });
  }
  {
    const create =
      `CREATE TABLE IF NOT EXISTS ${failures} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ` +
      `at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(), op text NOT NULL, sqlstate text, error text NOT NULL, keys jsonb)`;
    const marker = mark('failures', create);
    objects.push({
      kind: 'table', direction, role: 'failures', schema: from.schema, name: failuresTableName(migrationId, direction), table: null, marker,
      create: [create, comment(`TABLE ${failures}`, marker)], drop: `DROP TABLE IF EXISTS ${failures}`, label: `table ${failures}`,
    });
  }

  // The function.
  const cols = Object.keys(mapping).sort();
  const keyExprs = into.key.map((k) => `(${mapping[k] as string}) AS ${quoteIdent(k)}`).join(', ');
  const keyCols = into.key.map(quoteIdent);
  const keyRow = (alias: string) => row(into.key.map((k) => `${alias}.${quoteIdent(k)}`));
  const mappedKeys = (rel: string) => `SELECT ${keyExprs} FROM ${rel} AS ${SOURCE_ALIAS}`;
  const upsert =
    `INSERT INTO ${qualified(into)} (${cols.map(quoteIdent).join(', ')}) ` +
    `SELECT ${cols.map((c) => `(${mapping[c] as string})`).join(', ')} FROM tw_new AS ${SOURCE_ALIAS} ${upsertClause(s)};`;
  const removeGone = (gone: string) =>
    tomb
      ? `WITH gone AS (${gone}), removed AS (DELETE FROM ${qualified(into)} t USING gone g WHERE ${keyRow('t')} = ${keyRow('g')}) ` +
        `INSERT INTO ${tomb} (${keyCols.join(', ')}) SELECT ${keyCols.join(', ')} FROM gone ON CONFLICT DO NOTHING;`
      : `WITH gone AS (${gone}) DELETE FROM ${qualified(into)} t USING gone g WHERE ${keyRow('t')} = ${keyRow('g')};`;
  // The keys of the rows the statement touched, as text in the trigger table's key order (what re-drive takes).
  const fromKey = (rel: string) => `SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(${from.key.map((k) => `(r.${quoteIdent(k)})::text`).join(', ')})) FROM ${rel} r`;
  const body = `
DECLARE
  tw_state text;
  tw_message text;
  tw_keys jsonb;
BEGIN
  IF pg_catalog.current_setting('${SYNCING_SETTING}', true) = 'on' THEN RETURN NULL; END IF;
  BEGIN
    PERFORM pg_catalog.set_config('${SYNCING_SETTING}', 'on', true);
    IF TG_OP = 'INSERT' THEN
      ${upsert}
    ELSIF TG_OP = 'UPDATE' THEN
      ${removeGone(`${mappedKeys('tw_old')} EXCEPT ${mappedKeys('tw_new')}`)}
      ${upsert}
    ELSE
      ${removeGone(mappedKeys('tw_old'))}
    END IF;
    PERFORM pg_catalog.set_config('${SYNCING_SETTING}', 'off', true);
  EXCEPTION
  WHEN serialization_failure OR deadlock_detected THEN
    -- Concurrency outcomes the application retries anyway (ADR 004); catching them could let a
    -- serializable transaction commit what it must not.
    RAISE;
  WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS tw_state = RETURNED_SQLSTATE, tw_message = MESSAGE_TEXT;
    BEGIN
      IF TG_OP = 'DELETE' THEN
        tw_keys := (${fromKey('tw_old')});
      ELSIF TG_OP = 'UPDATE' THEN
        tw_keys := (SELECT pg_catalog.jsonb_agg(DISTINCT k) FROM (SELECT pg_catalog.jsonb_array_elements(x) AS k FROM (${fromKey('tw_old')} UNION ALL ${fromKey('tw_new')}) AS u(x)) AS e);
      ELSE
        tw_keys := (${fromKey('tw_new')});
      END IF;
      INSERT INTO ${failures} (op, sqlstate, error, keys) VALUES (TG_OP, tw_state, tw_message, tw_keys);
    EXCEPTION WHEN OTHERS THEN
      BEGIN
        INSERT INTO ${failures} (op, sqlstate, error, keys) VALUES (TG_OP, tw_state, tw_message || ' (its keys could not be recorded: ' || SQLERRM || ')', NULL);
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'tideway: the sync of % on %.% failed and could not be recorded: %', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, tw_message;
      END;
    END;
  END;
  RETURN NULL;
END`;
  const tag = `$tw_${hash16(body)}$`;
  if (body.includes(tag)) throw new Error('sync function body contains its own quote tag');
  const createFunction = `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS ${tag}${body}${tag}`;
  const fnMarker = mark('function', createFunction);
  objects.push({
    kind: 'function', direction, role: 'function', schema: from.schema, name: fnName, table: null, marker: fnMarker,
    create: [createFunction, comment(`FUNCTION ${fn}()`, fnMarker)], drop: `DROP FUNCTION IF EXISTS ${fn}()`, label: `function ${fn}()`,
    bodyMd5: createHash('md5').update(body).digest('hex'),
  });

  // The triggers, last: once they exist, the function and its tables must.
  for (const e of EVENTS) {
    const name = `${base}_${e.suffix}`;
    const create = `CREATE TRIGGER ${quoteIdent(name)} AFTER ${e.event} ON ${qualified(from)} ${e.referencing} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`;
    // The trigger's marker changes with the function's, so a replaced function brings fresh triggers.
    const marker = mark(e.role, `${create}\n${fnMarker}`);
    objects.push({
      kind: 'trigger', direction, role: e.role, schema: from.schema, name, table: from.table, marker,
      create: [`DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${qualified(from)}`, create, comment(`TRIGGER ${quoteIdent(name)} ON ${qualified(from)}`, marker)],
      drop: `DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${qualified(from)}`,
      label: `trigger ${quoteIdent(name)} on ${qualified(from)}`,
    });
  }
  return objects;
}
