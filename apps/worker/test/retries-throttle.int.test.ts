import pg from 'pg';
import { createTestDatabase, mappingDiff, waitFor, type TestDatabase, unguarded } from '@tideway/testing';
import { createEngine } from '@tideway/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

let f: BackfillFixture;
let other: TestDatabase;

beforeAll(async () => {
  f = await createBackfillFixture('retries');
  other = await createTestDatabase('retries_other');
  await f.user.query(`
    create table locked (id bigint primary key, v int);
    insert into locked select g, g from generate_series(1, 40) g;
    create table locked_v2 (id bigint primary key, v int);
    create table calm (id bigint primary key, v int);
    insert into calm select g, g from generate_series(1, 3000) g;
    create table calm_v2 (id bigint primary key, v int);
    create table paced (id bigint primary key, v int);
    insert into paced select g, g from generate_series(1, 3000) g;
    create table paced_v2 (id bigint primary key, v int);
    create table accounts (id bigint primary key, balance bigint);
    insert into accounts select g, g * 10 from generate_series(1, 100) g;
    create table accounts_v2 (id bigint primary key, balance_cents bigint);`);
  await other.query(`create table accounts_v2 (id bigint primary key, balance_cents bigint)`);
  await f.startWorker();
  await f.startWorker();
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await f?.close();
  await other?.drop();
});

const clients: pg.Client[] = [];
const client = async () => {
  const c = new pg.Client({ connectionString: f.user.url });
  c.on('error', () => undefined); // dropped with the database if a test fails midway
  await c.connect();
  clients.push(c);
  return c;
};

describe('retries, timeouts and splits', () => {
  it('splits a chunk that keeps timing out, fails the migration on the last failure, and finishes after resume', async () => {
    const holder = await client();
    await holder.query('begin');
    await holder.query('select * from locked where id = 10 for update');
    const mapping = { id: 'id', v: 'v' };
    // Application sync: its chunks lock their rows FOR SHARE (ADR 003), so the held row lock makes
    // the chunk over id 10 wait and time out (trigger sync's lock-free chunks would not wait).
    const id = await driveToBackfill(f.engine, {
      name: 'timeouts',
      syncMode: 'application',
      source: { datasource: 'main', table: 'locked', key: 'id' },
      target: { datasource: 'main', table: 'locked_v2', key: 'id' },
      mapping,
      backfill: { initialChunkRows: 4, minChunkRows: 4, maxChunkRows: 4, chunkTimeoutMs: 200, maxAttempts: 5, flagPropagationSeconds: 0 },
      throttle: { enabled: false },
    });
    const failed = await waitFor('migration failed by maxFailedChunks', async () => {
      const m = await f.engine.migrationReadModel.get(id);
      return m?.status === 'failed' ? m : null;
    }, 90_000, 50);
    expect(failed.phase).toBe('backfill');
    const chunks = await f.engine.backfillReadModel.chunks(id, {});
    const split = chunks.items.filter((c) => c.status === 'split');
    const bad = chunks.items.filter((c) => c.status === 'failed');
    // (8,12] timed out 3 times → (8,10] + (10,12]; (8,10] → (8,9] + (9,10]; (9,10] holds one row and fails.
    expect(split.map((c) => [c.lowerKey, c.upperKey])).toEqual([[['8'], ['12']], [['8'], ['10']]]);
    expect(bad.map((c) => ({ range: [c.lowerKey, c.upperKey], attempts: c.attempts, timeouts: c.timeouts }))).toEqual([
      { range: [['9'], ['10']], attempts: 5, timeouts: 5 },
    ]);
    expect(bad[0]?.lastError).toContain('statement timeout');
    const failEvent = (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'fail');
    expect(failEvent?.actor).toBe('tideway:backfill');
    expect(failEvent?.details).toMatchObject({ failedChunks: 1, maxFailedChunks: 0 });
    const gate = (await f.engine.migrations.describe(id)).gates.find((g) => g.name === 'backfill-complete');
    expect(gate).toMatchObject({ passed: false, observed: { chunksFailed: 1 } });

    await holder.query('rollback');
    await f.engine.migrations.act(id, 'resume', { actor: 'test' });
    const p = await waitForBackfill(f.engine, id);
    expect(p.rowsCopied).toBe(40);
    expect(await mappingDiff(f.user, { source: 'locked', target: 'locked_v2', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });
});

describe('throttling', () => {
  it('holds back while a health threshold is crossed, shows why, and continues when it clears', async () => {
    const mapping = { id: 'id', v: 'v' };
    // Started first: start binds the mapping against both tables, which needs their locks.
    const created = await f.engine.migrations.create(
      unguarded({
        name: 'throttled',
        syncMode: 'application',
        source: { datasource: 'main', table: 'calm', key: 'id' },
        target: { datasource: 'main', table: 'calm_v2', key: 'id' },
        mapping,
        backfill: { flagPropagationSeconds: 0 }, // no SDK instance to wait for
        throttle: { maxLockWaiters: 0 },
      }),
      { actor: 'test' },
    );
    await f.engine.migrations.act(created.id, 'start', { actor: 'test' });
    const blocker = await client();
    const waiter = await client();
    await blocker.query('begin');
    await blocker.query('lock table calm_v2 in access exclusive mode');
    // A session waiting on that lock: one lock waiter, over maxLockWaiters 0. (Not awaited: it blocks.)
    const waiting = waiter.query('select count(*) from calm_v2');
    await waitFor('a lock waiter', async () => (await f.user.query(`select 1 from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`)).rowCount);
    // Target must not be locked for the copy itself: copy into calm_v2 only after the release.
    const id = created.id;
    for (const action of ['advance', 'advance'] as const) await f.engine.migrations.act(id, action, { actor: 'test' });
    const throttled = await waitFor('throttled shown in progress', async () => {
      const p = (await f.engine.migrations.describe(id)).progress as { throttled?: { reason: string; since: string } | null };
      return p.throttled ?? null;
    });
    expect(throttled.reason).toBe('lock-waiters');
    expect(Date.parse(throttled.since)).toBeGreaterThan(Date.now() - 60_000);
    expect((await f.engine.backfillReadModel.progress(id))?.rowsCopied).toBe(0);
    await blocker.query('rollback');
    await waiting;
    const p = await waitForBackfill(f.engine, id);
    expect(p.throttled).toBeNull();
    expect(p.rowsCopied).toBe(3000);
  });
});

describe('rows/s cap', () => {
  it('paces chunks so the copy never runs ahead of maxRowsPerSecond, and shows rate-cap while it does', async () => {
    const cap = 1000;
    const id = await driveToBackfill(f.engine, {
      name: 'paced',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'paced', key: 'id' },
      target: { datasource: 'main', table: 'paced_v2', key: 'id' },
      mapping: { id: 'id', v: 'v' },
      // Two chunks may be in flight: the cap, not the concurrency, must set the pace.
      backfill: { initialChunkRows: 250, minChunkRows: 250, maxChunkRows: 250, concurrency: 2, maxRowsPerSecond: cap },
      throttle: { enabled: false },
    });
    const shown = await waitFor('rate-cap shown in progress', async () => {
      const p = (await f.engine.migrations.describe(id)).progress as { throttled?: { reason: string } | null };
      return p.throttled?.reason === 'rate-cap' ? p.throttled : null;
    });
    expect(shown.reason).toBe('rate-cap');
    const p = await waitForBackfill(f.engine, id);
    expect(p.rowsCopied).toBe(3000);
    // Each chunk's start is at least the previous chunks' rows / cap after the first chunk's start.
    const chunks = (
      await f.orch.query<{ rows: number; started_s: number }>(
        `select rows_copied as rows, extract(epoch from started_at)::float8 as started_s from backfill_chunks
          where migration_id = $1 and status = 'done' order by started_at`,
        [id],
      )
    ).rows;
    expect(chunks.filter((c) => c.rows > 0).length).toBe(12);
    const first = chunks[0]?.started_s ?? 0;
    let before = 0;
    for (const c of chunks) {
      // 20 ms of slack: the slot is granted by one statement and the lease taken by the next.
      expect(c.started_s - first).toBeGreaterThanOrEqual(before / cap - 0.02);
      before += c.rows;
    }
    expect(await mappingDiff(f.user, { source: 'paced', target: 'paced_v2', mapping: { id: 'id', v: 'v' } })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  });
});

describe('re-drive (application sync)', () => {
  it('re-copies keys whose new-side write failed, on one datasource and across two', async () => {
    const engine = createEngine({ db: f.orch.db, datasources: { main: f.user.url, other: other.url } });
    try {
      const mapping = { id: 'id', balance_cents: 'balance * 100' };
      const reverseMapping = { balance: 'balance_cents / 100' };
      for (const target of ['main', 'other']) {
        const m = await engine.migrations.create(
          unguarded({
            name: `redrive-${target}`,
            syncMode: 'application',
            source: { datasource: 'main', table: 'accounts', key: 'id' },
            target: { datasource: target, table: 'accounts_v2', key: 'id' },
            mapping,
            reverseMapping,
            backfill: { flagPropagationSeconds: 0 }, // no SDK instance to wait for
          }),
          { actor: 'test' },
        );
        const db = target === 'main' ? f.user : other;
        await engine.migrations.act(m.id, 'start', { actor: 'test' });
        const beforeDualWrite = await engine.backfill.redrive((await engine.migrationReadModel.get(m.id))!, [['1']]).catch((e: { code?: string }) => e.code);
        expect(beforeDualWrite).toBe('INVALID_TRANSITION');
        const migration = await engine.migrations.act(m.id, 'advance', { actor: 'test' });
        // The application wrote old; its new-side write for 7 failed, then 8 was deleted in old.
        await db.query(`insert into accounts_v2 values (7, 1), (8, 80000)`);
        await f.user.query(`update accounts set balance = 777 where id = 7`);
        await f.user.query(`delete from accounts where id = 8`);
        const result = await engine.backfill.redrive(migration, [['7'], ['8'], ['9']]);
        expect(result).toEqual({ upserted: 2, deleted: 1 });
        expect((await db.query(`select id, balance_cents from accounts_v2 order by id`)).rows).toEqual([
          { id: '7', balance_cents: '77700' },
          { id: '9', balance_cents: '9000' },
        ]);
        // A key written differently from PostgreSQL's text of it ('07' for 7) is still the same key:
        // copied, not taken for gone (and deleted).
        await f.user.query(`update accounts set balance = 778 where id = 7`);
        expect(await engine.backfill.redrive(migration, [['07']])).toEqual({ upserted: 1, deleted: 0 });
        expect((await db.query(`select balance_cents from accounts_v2 where id = 7`)).rows).toEqual([{ balance_cents: '77800' }]);
        await f.user.query(`insert into accounts values (8, 80)`);
        await db.query(`truncate accounts_v2`);
      }
    } finally {
      await engine.close();
    }
  });
});
