/**
 * The latency guard's probe query (ADR 014): hostile probes refused with the field named and nothing
 * created, a probe that does not bind refused at start, a valid one run read-only instead of the key
 * lookup. The load-step test is `latency-guard-load.int.test.ts` (`npm run test:guard-load`).
 */
import { mappingDiff, waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 1000;

let f: BackfillFixture;

beforeAll(async () => {
  f = await createGuardFixture('latency_guard', ROWS);
}, 120_000);

afterAll(async () => {
  await f?.close();
});

describe('latency guard probe query', () => {
  const spec = (name: string, probeSql: string) => ({
    name,
    syncMode: 'trigger' as const,
    source: { datasource: 'main', table: 'big', key: 'id' },
    target: { datasource: 'main', table: 'big_v2', key: 'id' },
    mapping: { id: 'id', payload: 'payload', n: 'n' },
    throttle: { latencyGuard: { probeSql } },
  });

  it('refuses a probe that writes, locks, sleeps or is not one SELECT, naming the field, and creates nothing', async () => {
    for (const probe of ['DELETE FROM public.big', 'SELECT 1; DROP TABLE public.big', 'SELECT pg_sleep(1)', 'SELECT * FROM public.big WHERE id = 1 FOR UPDATE', 'WITH d AS (DELETE FROM public.big RETURNING id) SELECT count(*) FROM d']) {
      await expect(f.engine.migrations.create(spec(`bad-probe-${probe.length}`, probe), { actor: 'test' })).rejects.toMatchObject({ code: 'INVALID_SPEC', problems: [expect.objectContaining({ field: 'throttle.latencyGuard.probeSql' })] });
    }
    const count = await f.orch.query<{ n: number }>(`select count(*)::int as n from migrations where name like 'bad-probe-%'`);
    expect(count.rows[0]?.n).toBe(0);
    // Parsed fine, but the table does not exist: start binds it against the live catalog and refuses.
    const m = await f.engine.migrations.create(spec('unbound-probe', 'SELECT 1 FROM public.no_such_table WHERE id = 1'), { actor: 'test' });
    await expect(f.engine.migrations.act(m.id, 'start', { actor: 'test' })).rejects.toMatchObject({ code: 'INVALID_SPEC', problems: [expect.objectContaining({ field: 'throttle.latencyGuard.probeSql', problem: expect.stringContaining('no_such_table') })] });
    expect((await f.engine.migrationReadModel.get(m.id))?.phase).toBe('draft');
    await f.engine.migrations.act(m.id, 'abort', { actor: 'test' });
    // Valid and bound, but a scan of the whole table 25 times a second would be the load itself.
    await f.user.query(`insert into big select g, repeat(md5(g::text), 3), g % 1000 from generate_series(${ROWS + 1}, ${ROWS + 100_000}) g; analyze big`);
    const costly = await f.engine.migrations.create(spec('costly-probe', 'SELECT count(*) FROM public.big WHERE payload LIKE $$%x%$$'), { actor: 'test' });
    await expect(f.engine.migrations.act(costly.id, 'start', { actor: 'test' })).rejects.toMatchObject({ code: 'INVALID_SPEC', problems: [expect.objectContaining({ field: 'throttle.latencyGuard.probeSql', problem: expect.stringMatching(/plans at cost \d+/) })] });
    expect((await f.engine.migrationReadModel.get(costly.id))?.phase).toBe('draft');
    await f.engine.migrations.act(costly.id, 'abort', { actor: 'test' });
    await f.user.query(`delete from big where id > ${ROWS}`);
    await f.user.query(`vacuum analyze big`);
  });

  it('runs a valid custom probe, read-only, instead of the key lookup', async () => {
    await f.user.query(`create table probe_hits (id int primary key); insert into probe_hits values (1);
      create table small (id bigint primary key, v int); insert into small select g, g from generate_series(1, 3000) g;
      create table small_v2 (id bigint primary key, v int);`);
    const scans = async () => Number((await f.user.query<{ n: string }>(`select coalesce(idx_scan, 0) + coalesce(seq_scan, 0) as n from pg_stat_user_tables where relname = 'probe_hits'`)).rows[0]?.n ?? 0);
    const before = await scans();
    const id = await driveToBackfill(f.engine, {
      name: 'custom-probe',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'small', key: 'id' },
      target: { datasource: 'main', table: 'small_v2', key: 'id' },
      mapping: { id: 'id', v: 'v' },
      throttle: { latencyGuard: { enabled: true, probeSql: 'SELECT 1 FROM public.probe_hits WHERE id = 1' } },
    });
    await waitForBackfill(f.engine, id, 60_000);
    // The probe's backend reports its statistics within a second or so of going idle.
    await waitFor('the custom probe ran', async () => ((await scans()) - before >= 20 ? true : null), 15_000);
    expect(await mappingDiff(f.user, { source: 'small', target: 'small_v2', mapping: { id: 'id', v: 'v' } })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    await f.engine.migrations.act(id, 'abort', { actor: 'test' });
  });
});
