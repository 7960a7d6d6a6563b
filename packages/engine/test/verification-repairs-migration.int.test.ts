import { createDb, FolderMigrationProvider } from '@tideway/db';
import { createTestDatabase, type TestDatabase } from '@tideway/testing';
import { Migrator, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Schema migration 20261201T150000: verifications repaired before it (status flipped to `passed`,
// findings flagged `repaired`) get their findings back and one legacy repair record each.

const BEFORE = '20261201T140000_evidence_windows';
let base: TestDatabase;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let db: Kysely<any>;
let migrator: Migrator;

beforeAll(async () => {
  base = await createTestDatabase('verify_repairs_migration');
  db = createDb({ connectionString: base.url, max: 2 });
  migrator = new Migrator({ db, provider: new FolderMigrationProvider() });
  const to = await migrator.migrateTo(BEFORE);
  if (to.error) throw to.error;
});

afterAll(async () => {
  await db?.destroy();
  await base?.drop();
});

describe('20261201T150000_verification_repairs', () => {
  it('gives a repaired verification back what it found and a legacy repair owning the fixed findings; down undoes it', async () => {
    const m = await base.query<{ id: string }>(
      `insert into migrations (name, spec, phase, status, version) values ('legacy', '{}', 'shadow_read', 'active', 1) returning id`,
    );
    const mid = m.rows[0]?.id;
    const cols = `migration_id, status, key_columns, key_types, target_key_columns, target_key_types, target_types, created_by`;
    const vals = `$1, $2, '["id"]', '["bigint"]', '["id"]', '["bigint"]', '{}', 'ops'`;
    const repaired = (await base.query<{ id: string }>(`insert into verifications (${cols}, repaired_at) values (${vals}, now() - interval '1 hour') returning id`, [mid, 'passed'])).rows[0]?.id;
    const partly = (await base.query<{ id: string }>(`insert into verifications (${cols}, repaired_at) values (${vals}, now()) returning id`, [mid, 'failed'])).rows[0]?.id;
    const clean = (await base.query<{ id: string }>(`insert into verifications (${cols}) values (${vals}) returning id`, [mid, 'passed'])).rows[0]?.id;
    await base.query(
      `insert into verification_diffs (verification_id, key, kind, repaired) values
        ($1, '["1"]', 'missing', true), ($1, '["2"]', 'different', true),
        ($2, '["3"]', 'extra', true), ($2, '["4"]', 'extra', false)`,
      [repaired, partly],
    );

    const up = await migrator.migrateToLatest();
    expect(up.error).toBeUndefined();
    const status = await base.query<{ id: string; status: string }>(`select id, status from verifications order by started_at`);
    expect(Object.fromEntries(status.rows.map((r) => [r.id, r.status]))).toEqual({ [repaired as string]: 'failed', [partly as string]: 'failed', [clean as string]: 'passed' });
    const repairs = await base.query<{ id: string; verification_id: string; actor: string; status: string; keys_attempted: number; fixed: number; still_different: number }>(
      `select id, verification_id, actor, status, keys_attempted, fixed, still_different from verification_repairs order by verification_id`,
    );
    expect(repairs.rows.map(({ id: _id, ...r }) => r).sort((a, b) => a.verification_id.localeCompare(b.verification_id))).toEqual(
      [
        { verification_id: repaired, actor: 'tideway:legacy', status: 'finished', keys_attempted: 2, fixed: 2, still_different: 0 },
        { verification_id: partly, actor: 'tideway:legacy', status: 'finished', keys_attempted: 2, fixed: 1, still_different: 1 },
      ].sort((a, b) => (a.verification_id as string).localeCompare(b.verification_id as string)),
    );
    const owner = Object.fromEntries(repairs.rows.map((r) => [r.verification_id, r.id]));
    const diffs = await base.query<{ key: string[]; repaired_by: string | null }>(`select key, repaired_by from verification_diffs order by key`);
    expect(diffs.rows).toEqual([
      { key: ['1'], repaired_by: owner[repaired as string] },
      { key: ['2'], repaired_by: owner[repaired as string] },
      { key: ['3'], repaired_by: owner[partly as string] },
      { key: ['4'], repaired_by: null },
    ]);
    const flag = await base.query(`select 1 from information_schema.columns where table_name = 'verification_diffs' and column_name = 'repaired'`);
    expect(flag.rowCount).toBe(0);

    const down = await migrator.migrateTo(BEFORE);
    expect(down.error).toBeUndefined();
    const back = await base.query<{ key: string[]; repaired: boolean }>(`select key, repaired from verification_diffs order by key`);
    expect(back.rows.map((r) => r.repaired)).toEqual([true, true, true, false]);
    const statusBack = await base.query<{ id: string; status: string }>(`select id, status from verifications`);
    expect(Object.fromEntries(statusBack.rows.map((r) => [r.id, r.status]))).toEqual({ [repaired as string]: 'passed', [partly as string]: 'failed', [clean as string]: 'passed' });
    expect((await base.query(`select to_regclass('verification_repairs') as t`)).rows[0]?.t).toBeNull();
  });
});
