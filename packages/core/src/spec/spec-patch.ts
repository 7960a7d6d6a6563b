import { Type, type Static } from 'typebox';
import { ImmutableFieldError } from '../errors/immutable-field-error.js';
import type { Phase } from '../machine/phases.js';
import type { MigrationSpec } from './migration-spec.js';
import { resolveSpec } from './resolve-spec.js';
import { MigrationSpecInputSchema, type MigrationSpecInput } from './spec-schema.js';


/**
 * The body of `PATCH /v1/migrations/:id`: any part of a spec. Sections merge field by field (JSON
 * merge patch, RFC 7396, without `null` deletion); `mapping` is replaced whole.
 */
export const MigrationSpecPatchSchema = Type.Partial(MigrationSpecInputSchema);
export type MigrationSpecPatch = Static<typeof MigrationSpecPatchSchema>;

/** Parts of a spec that never change after create. */
const ALWAYS_IMMUTABLE = ['name'] as const;
/** Parts of a spec that are fixed once the migration has started (left `draft`). */
const IMMUTABLE_AFTER_START = ['source', 'target', 'mapping', 'syncMode'] as const;
/**
 * Parts of a spec that decide the way back: they may change (admin only, checked against the live
 * catalog again) until the migration enters cutover, so a round-trip check that fails in
 * shadow_read can be answered with a better reverse mapping.
 */
const IMMUTABLE_FROM_CUTOVER = ['reverseMapping', 'rollbackAfterWriteCutover'] as const;
const FROM_CUTOVER: readonly Phase[] = ['cutover', 'cleanup', 'done'];

/**
 * Spec fields only an admin may set or change: what decides the SQL Tideway runs on datasources
 * (`source`, `target`, `mapping`, `reverseMapping`, `syncMode`, the latency guard's `probeSql` and `prometheus`) and what destroys data
 * (`cleanup.dropOld`, `cleanup.autoExecute`, `cleanup.dropConfirmation`). Operators run actions and
 * tune pace (every other field). A name covers its sub-fields (`source` covers `source.table`).
 */
export const ADMIN_ONLY_SPEC_FIELDS = [
  'source',
  'target',
  'mapping',
  'reverseMapping',
  'rollbackAfterWriteCutover',
  'syncMode',
  'cleanup.dropOld',
  'cleanup.autoExecute',
  'cleanup.dropConfirmation',
  'throttle.latencyGuard.probeSql',
  'throttle.latencyGuard.prometheus',
] as const;

/**
 * Which of the changed fields (as {@link applySpecPatch} lists them: `source.table`, `mapping`,
 * `cleanup.dropOld`, …) are {@link ADMIN_ONLY_SPEC_FIELDS}, each reported once by the admin-only name
 * that covers it, in the order of that list.
 *
 * @example
 * ```ts
 * adminOnlyChanges(['backfill.maxChunkRows', 'source.table', 'cleanup.dropOld']); // ['source', 'cleanup.dropOld']
 * ```
 */
export function adminOnlyChanges(changed: readonly string[]): string[] {
  return ADMIN_ONLY_SPEC_FIELDS.filter((field) => changed.some((c) => c === field || c.startsWith(`${field}.`)));
}

/** The stored spec as the input it resolves from again (nulls dropped, everything else as is). */
function toInput(spec: MigrationSpec): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(spec)) as Record<string, unknown> & { cleanup: Record<string, unknown> };
  if (plain['description'] === null) delete plain['description'];
  if (plain['reverseMapping'] === null) delete plain['reverseMapping'];
  if (plain.cleanup['dropConfirmation'] === null) delete plain.cleanup['dropConfirmation'];
  const guard = (plain['throttle'] as { latencyGuard?: Record<string, unknown> } | undefined)?.latencyGuard;
  if (guard && guard['probeSql'] === null) delete guard['probeSql'];
  if (guard && guard['prometheus'] === null) delete guard['prometheus'];
  return plain;
}

/** JSON text with object keys sorted at every level: equal values give equal text whatever the key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Deep equality of JSON values, ignoring object key order (jsonb does not keep it). */
function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** A section merged field by field; a sub-section (`throttle.latencyGuard`) merged field by field too. */
function mergeSection(before: Record<string, unknown> | undefined, patch: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...before };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const prior = before?.[key];
    const nested = typeof value === 'object' && value !== null && !Array.isArray(value) && typeof prior === 'object' && prior !== null && !Array.isArray(prior);
    merged[key] = nested ? { ...(prior as object), ...value } : value;
  }
  return merged;
}

/**
 * Applies a patch to a stored spec and returns the new resolved spec plus the list of changed fields
 * (`backfill.maxChunkRows`, …) for the audit event.
 *
 * @throws ImmutableFieldError naming the first field that may not change in `phase`.
 * @throws InvalidSpecError when the merged spec is incoherent.
 */
export function applySpecPatch(
  current: MigrationSpec,
  patch: MigrationSpecPatch,
  phase: Phase,
): { spec: MigrationSpec; changed: string[] } {
  const base = toInput(current);
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const before = base[key];
    const isSection = typeof value === 'object' && value !== null && !Array.isArray(value) && !['mapping', 'reverseMapping', 'source', 'target'].includes(key);
    merged[key] = isSection ? mergeSection(before as Record<string, unknown> | undefined, value as Record<string, unknown>) : value;
  }
  const next = resolveSpec(merged as MigrationSpecInput);

  for (const field of ALWAYS_IMMUTABLE) {
    if (!sameJson(next[field], current[field])) throw new ImmutableFieldError(field, 'fixed at create time');
  }
  if (phase !== 'draft') {
    for (const field of IMMUTABLE_AFTER_START) {
      if (!sameJson(next[field], current[field])) throw new ImmutableFieldError(field, `fixed once the migration has started (phase is ${phase})`);
    }
  }
  if (FROM_CUTOVER.includes(phase)) {
    for (const field of IMMUTABLE_FROM_CUTOVER) {
      if (!sameJson(next[field], current[field])) throw new ImmutableFieldError(field, `fixed once the migration has entered cutover (phase is ${phase})`);
    }
  }
  const changed: string[] = [];
  for (const key of Object.keys(next) as (keyof MigrationSpec)[]) {
    const a = next[key];
    const b = current[key];
    if (sameJson(a, b)) continue;
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && key !== 'mapping') {
      for (const sub of Object.keys(a)) {
        const x = (a as Record<string, unknown>)[sub];
        const y = (b as Record<string, unknown>)[sub];
        if (sameJson(x, y)) continue;
        // A sub-section lists its own fields (`throttle.latencyGuard.latencyBudget`).
        if (x && y && typeof x === 'object' && typeof y === 'object' && !Array.isArray(x) && key !== 'source' && key !== 'target' && key !== 'reverseMapping') {
          for (const leaf of Object.keys(x)) if (!sameJson((x as Record<string, unknown>)[leaf], (y as Record<string, unknown>)[leaf])) changed.push(`${key}.${sub}.${leaf}`);
        } else changed.push(`${key}.${sub}`);
      }
    } else {
      changed.push(key);
    }
  }
  return { spec: next, changed };
}
