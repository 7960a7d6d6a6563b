import type { MigrationSpec, SpecProblem } from '@tideway/core';
import type { CatalogTable } from '../datasources/catalog-inspector.js';
import { copiedColumn, validateMappingExpression } from '../mapping/mapping-validator.js';

/** How the way back treats one column of the old (source) table. */
export type WayBackHow =
  /** Produced by an entry of `reverseMapping` the spec gives. */
  | 'reverse-mapped'
  /** Produced by an entry Tideway derived: the mapping copies it into a target column, which is copied back. */
  | 'derived'
  /** Not produced: rows written after write cutover get its default (or NULL) on the way back; updated rows keep their old value. */
  | 'not-preserved';

/** One old column on the way back, as the plan, the resource and the dry run show it. */
export interface WayBackColumn {
  readonly column: string;
  readonly how: WayBackHow;
  /** The expression over the target row that produces it, or `null` when not preserved. */
  readonly expression: string | null;
}

/**
 * The way back of a migration (shared/DESIGN.md §7): `reverseMapping` as given, plus an entry for
 * every other source column that a mapping entry copies (a bare column or a cast of one: the target
 * column copied back, the assignment cast into the source column doing the rest — the binder and
 * the round-trip check prove it). `null` when the spec declares no way back
 * (`rollbackAfterWriteCutover: false`) or when a source key column is not produced (no row could be
 * found on the way back).
 *
 * @throws Error when the SQL parser is not loaded (`loadSqlParser`).
 * @example
 * ```ts
 * await loadSqlParser();
 * // mapping { aid: 'aid::bigint', balance_cents: 'abalance * 100' }, reverseMapping { abalance: 'balance_cents / 100' }
 * reverseMappingOf(spec); // { aid: 'aid', abalance: 'balance_cents / 100' }
 * ```
 */
export function reverseMappingOf(spec: MigrationSpec): Record<string, string> | null {
  if (!spec.rollbackAfterWriteCutover) return null;
  const out = derivedReverse(spec);
  return spec.source.key.every((k) => k in out) ? out : null;
}

/** `reverseMapping` plus the entries derived from copies (explicit entries win). */
function derivedReverse(spec: MigrationSpec): Record<string, string> {
  const out: Record<string, string> = {};
  const copies = Object.keys(spec.mapping)
    .sort()
    .map((target) => ({ target, copied: copiedColumn(spec.mapping[target] as string) }));
  // A target column of the same name first (v ← v over nope ← v), then in name order.
  for (const { target, copied } of [...copies.filter((c) => c.copied === c.target), ...copies.filter((c) => c.copied !== c.target)]) {
    if (copied !== null && !(copied in out)) out[copied] = quoteName(target);
  }
  return { ...out, ...(spec.reverseMapping ?? {}) };
}

function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/**
 * What the way back lacks, every problem at once (`reverseMapping.<column>`), on the text of the spec
 * (at create and PATCH) and, given the source table from the live catalog, on its columns (at start):
 * - each source key column must be produced (the way back finds old rows by it);
 * - each source column the mapping reads must be produced (otherwise the way back loses what the
 *   forward mapping carried over);
 * - with `source`: each source column that is NOT NULL without a default (and not generated) must be
 *   produced (otherwise every row written after write cutover fails on old), and every produced
 *   column must exist (and not be generated).
 * Nothing when the spec declares no way back (`rollbackAfterWriteCutover: false`).
 *
 * @throws Error when the SQL parser is not loaded (`loadSqlParser`).
 */
export function wayBackProblems(spec: MigrationSpec, source?: CatalogTable): SpecProblem[] {
  if (!spec.rollbackAfterWriteCutover) return [];
  const produced = derivedReverse(spec);
  const problems: SpecProblem[] = [];
  const escape = 'give it as an expression over the target row, or declare rollbackAfterWriteCutover: false';
  const seen = new Set<string>();
  const need = (column: string, why: string) => {
    if (column in produced || seen.has(column)) return;
    seen.add(column);
    problems.push({ field: `reverseMapping.${column}`, problem: `old column "${column}" ${why} but the way back does not produce it: ${escape}` });
  };
  for (const key of spec.source.key) need(key, 'is part of the source key');
  for (const [target, expr] of Object.entries(spec.mapping).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const result = validateMappingExpression(expr);
    if (!result.ok) continue;
    for (const column of result.columns) need(column, `is read by mapping.${target}`);
  }
  if (source) {
    for (const column of source.columns.values()) {
      if (column.notNull && !column.hasDefault && !column.generated) need(column.name, 'is NOT NULL without a default');
    }
    for (const column of Object.keys(produced)) {
      const found = source.columns.get(column);
      if (!found) problems.push({ field: `reverseMapping.${column}`, problem: `column "${column}" does not exist in the source table ${spec.source.schema}.${spec.source.table}` });
      else if (found.generated) problems.push({ field: `reverseMapping.${column}`, problem: `column "${column}" is generated: PostgreSQL computes it, the way back cannot write it` });
      else if (found.identityAlways) problems.push({ field: `reverseMapping.${column}`, problem: `column "${column}" is GENERATED ALWAYS AS IDENTITY: the way back cannot write it (make it GENERATED BY DEFAULT, or declare rollbackAfterWriteCutover: false)` });
    }
  }
  return problems;
}

/**
 * Every column of the source table on the way back: produced by the given or the derived reverse
 * mapping, or not preserved — so "the way back loses column X for rows written after write cutover"
 * is shown, a decision made, never a surprise (shared/DESIGN.md §7). Empty when the spec declares no
 * way back. Generated columns are left out (PostgreSQL computes them).
 *
 * @throws Error when the SQL parser is not loaded (`loadSqlParser`).
 */
export function wayBackColumns(spec: MigrationSpec, source: CatalogTable): WayBackColumn[] {
  if (!spec.rollbackAfterWriteCutover) return [];
  const derived = derivedReverse(spec);
  const given = spec.reverseMapping ?? {};
  return [...source.columns.values()]
    .filter((c) => !c.generated)
    .map((c) => ({
      column: c.name,
      how: c.name in given ? 'reverse-mapped' : c.name in derived ? 'derived' : 'not-preserved',
      expression: derived[c.name] ?? null,
    }));
}
