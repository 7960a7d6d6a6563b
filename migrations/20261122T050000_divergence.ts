/**
 * Evidence for the shadow_read gate and the abort criteria: per-minute observation buckets
 * (shadow comparisons with latency histograms, dual writes) and the ledger of diverging keys.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('observation_buckets')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.notNull().references('migrations.id'))
    .addColumn('minute', 'timestamptz', (c) => c.notNull())
    .addColumn('samples', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('matches', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('mismatches', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('new_errors', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('dropped', 'bigint', (c) => c.notNull().defaultTo(0))
    // Counts per LATENCY_BUCKETS_MS bucket (+1 open-ended), old and new store.
    .addColumn('old_latency', sql`bigint[]`, (c) => c.notNull())
    .addColumn('new_latency', sql`bigint[]`, (c) => c.notNull())
    .addColumn('dual_writes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('dual_write_failures', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('observation_buckets_pkey', ['migration_id', 'minute'])
    .execute();

  await db.schema
    .createTable('divergences')
    .ifNotExists()
    .addColumn('migration_id', 'uuid', (c) => c.notNull().references('migrations.id'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind IN ('mismatch','new_error','dual_write_failure')`))
    .addColumn('first_seen', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen', 'timestamptz', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addColumn('diff_paths', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('sample_old', 'jsonb')
    .addColumn('sample_new', 'jsonb')
    .addColumn('error', 'text')
    .addColumn('redriven_at', 'timestamptz')
    .addPrimaryKeyConstraint('divergences_pkey', ['migration_id', 'kind', 'key'])
    .execute();
  await db.schema.createIndex('divergences_last_seen_idx').ifNotExists().on('divergences').columns(['migration_id', 'last_seen']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('divergences').ifExists().execute();
  await db.schema.dropTable('observation_buckets').ifExists().execute();
}
