/**
 * Verification (a diff of mapping(source) against target by checksummed key ranges, like Vitess
 * VDiff): one row per verification, one per key range (split down where hashes differ), and the
 * exact keys found missing, extra or different.
 */
import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('verifications')
    .ifNotExists()
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('migration_id', 'uuid', (c) => c.notNull().references('migrations.id'))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status IN ('running','passed','failed')`))
    .addColumn('key_columns', 'jsonb', (c) => c.notNull())
    .addColumn('key_types', 'jsonb', (c) => c.notNull())
    .addColumn('target_key_columns', 'jsonb', (c) => c.notNull())
    .addColumn('target_key_types', 'jsonb', (c) => c.notNull())
    .addColumn('target_types', 'jsonb', (c) => c.notNull())
    .addColumn('ranges_total', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('ranges_checked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('rows_compared', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addColumn('repaired_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('verifications_migration_idx').ifNotExists().on('verifications').columns(['migration_id', 'started_at']).execute();

  await db.schema
    .createTable('verification_ranges')
    .ifNotExists()
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('verification_id', 'uuid', (c) => c.notNull().references('verifications.id'))
    .addColumn('lower_key', 'jsonb')
    .addColumn('upper_key', 'jsonb')
    .addColumn('depth', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status IN ('pending','running','done')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('lease_token', 'uuid')
    .addColumn('lease_expires_at', 'timestamptz')
    .addColumn('enqueued_at', 'timestamptz')
    .addColumn('source_rows', 'bigint')
    .addColumn('target_rows', 'bigint')
    .addColumn('outcome', 'text', (c) => c.check(sql`outcome IN ('matched','diffed','split')`))
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('verification_ranges_status_idx').ifNotExists().on('verification_ranges').columns(['verification_id', 'status']).execute();

  await db.schema
    .createTable('verification_diffs')
    .ifNotExists()
    .addColumn('verification_id', 'uuid', (c) => c.notNull().references('verifications.id'))
    .addColumn('key', 'jsonb', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind IN ('missing','extra','different')`))
    .addColumn('repaired', 'boolean', (c) => c.notNull().defaultTo(false))
    .addPrimaryKeyConstraint('verification_diffs_pkey', ['verification_id', 'key'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('verification_diffs').ifExists().execute();
  await db.schema.dropTable('verification_ranges').ifExists().execute();
  await db.schema.dropTable('verifications').ifExists().execute();
}
