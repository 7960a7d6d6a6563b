import type pg from 'pg';

/** What {@link mappingDiff} compares: a source table through a mapping, and a target table. */
export interface MappingDiffInput {
  readonly source: string;
  readonly target: string;
  /** target column → SQL expression over the source row. */
  readonly mapping: Readonly<Record<string, string>>;
}

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * The independent correctness check of a migration: the number of rows in
 * (mapping(source) EXCEPT target) ∪ (target EXCEPT mapping(source)). Zero means the target equals
 * the mapped source exactly (as sets of rows; keys make them sets). Written here, apart from the
 * engine's SQL, so a bug there cannot hide itself.
 */
export async function mappingDiff(client: { query<R extends pg.QueryResultRow>(text: string): Promise<pg.QueryResult<R>> }, input: MappingDiffInput): Promise<{ missingOrDifferent: number; extraOrDifferent: number }> {
  const cols = Object.keys(input.mapping).sort();
  const mapped = `SELECT ${cols.map((c) => `(${input.mapping[c]}) AS ${q(c)}`).join(', ')} FROM ${input.source}`;
  const target = `SELECT ${cols.map(q).join(', ')} FROM ${input.target}`;
  const r = await client.query<{ a: string; b: string }>(
    `SELECT (SELECT count(*) FROM (${mapped} EXCEPT ALL ${target}) x) AS a, (SELECT count(*) FROM (${target} EXCEPT ALL ${mapped}) y) AS b`,
  );
  return { missingOrDifferent: Number(r.rows[0]?.a), extraOrDifferent: Number(r.rows[0]?.b) };
}
