/**
 * Every Tideway session on a datasource, of every pool, on a real PostgreSQL: the fixed search path
 * (ADR 006), the trigger sync's own-write setting on (ADR 004: no write Tideway makes is synced),
 * and the probe's sessions read-only.
 */
import { createTestDatabase, type TestDatabase } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATASOURCE_SEARCH_PATH, DatasourceRegistry, SYNCING_SETTING } from '../src/index.js';

let db: TestDatabase;
let registry: DatasourceRegistry;

beforeAll(async () => {
  db = await createTestDatabase('datasource_sessions');
  registry = new DatasourceRegistry({ main: db.url });
});

afterAll(async () => {
  await registry?.close();
  await db?.drop();
});

describe('datasource sessions', () => {
  it('run with search_path pg_catalog, pg_temp and tideway.syncing on; the probe ones read-only', async () => {
    const settings = `SELECT current_setting('search_path') AS search_path, current_setting('${SYNCING_SETTING}', true) AS syncing, current_setting('transaction_read_only') AS read_only`;
    const of = async (pool: ReturnType<DatasourceRegistry['pool']>) => (await pool.query(settings)).rows[0];
    expect(await of(registry.pool('main'))).toEqual({ search_path: DATASOURCE_SEARCH_PATH, syncing: 'on', read_only: 'off' });
    expect(await of(registry.probePool('main'))).toEqual({ search_path: DATASOURCE_SEARCH_PATH, syncing: 'on', read_only: 'on' });
    expect(await of(registry.commitProbePool('main'))).toEqual({ search_path: DATASOURCE_SEARCH_PATH, syncing: 'on', read_only: 'off' });
  });
});
