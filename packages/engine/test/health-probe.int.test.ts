import { resolveSpec, judgeHealth, type MigrationSpec } from '@tideway/core';
import { createTestDatabase, waitFor, type TestDatabase } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasourceRegistry, HealthProbe } from '../src/index.js';

// The datasource's own database, and another database on the same server (another team's).
let own: TestDatabase;
let other: TestDatabase;
let registry: DatasourceRegistry;
let probe: HealthProbe;
const sessions: pg.Client[] = [];

async function session(db: TestDatabase): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url, application_name: 'health-test' });
  c.on('error', () => undefined);
  await c.connect();
  sessions.push(c);
  return c;
}

/** Opens a transaction that stays idle in transaction, and a lock waiter queued behind it. */
async function busy(db: TestDatabase): Promise<{ holder: pg.Client; waiter: pg.Client; waiting: Promise<unknown> }> {
  const holder = await session(db);
  const waiter = await session(db);
  await holder.query('BEGIN');
  await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
  const waiting = waiter.query('SELECT count(*) FROM t').catch(() => undefined);
  await waitFor('the waiter to queue on the lock', async () =>
    (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]?.n === 1,
  );
  return { holder, waiter, waiting };
}

async function release(b: { holder: pg.Client; waiting: Promise<unknown> }): Promise<void> {
  await b.holder.query('ROLLBACK');
  await b.waiting;
}

/** Age of the holder's transaction as its own database sees it, seconds. */
async function holderAge(db: TestDatabase): Promise<number> {
  const r = await db.query<{ s: number }>(
    `SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8 AS s FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'health-test' AND state = 'idle in transaction'`,
  );
  return r.rows[0]?.s ?? 0;
}

const throttle = (spec: MigrationSpec) => ({ ...spec.throttle, maxLockWaiters: 0, maxTransactionAgeSeconds: 1 });
const spec = resolveSpec({
  name: 'health',
  source: { datasource: 'main', table: 't', key: 'id' },
  target: { datasource: 'main', table: 't2', key: 'id' },
  mapping: { id: 'id' },
  syncMode: 'trigger',
});

beforeAll(async () => {
  [own, other] = await Promise.all([createTestDatabase('health_own'), createTestDatabase('health_other')]);
  await Promise.all([own.query('create table t (id int primary key)'), other.query('create table t (id int primary key)')]);
  registry = new DatasourceRegistry({ main: own.url });
  probe = new HealthProbe(registry);
});

afterAll(async () => {
  await Promise.all(sessions.map((c) => c.end().catch(() => undefined)));
  await registry?.close();
  await Promise.all([own?.drop(), other?.drop()]);
});

describe('HealthProbe', () => {
  it("does not count another database's lock waiter or idle-in-transaction session", async () => {
    const b = await busy(other);
    try {
      // The other database's transaction is older than the 1 s threshold used below.
      await waitFor('the other transaction to age past 1.5 s', async () => (await holderAge(other)) > 1.5, 10_000, 100);
      const reading = await probe.read('main');
      expect(reading.lockWaiters).toBe(0);
      expect(reading.oldestTransactionSeconds).toBeLessThan(1);
      expect(judgeHealth(reading, throttle(spec), null)).toBeNull();
    } finally {
      await release(b);
    }
  });

  it('counts the same signals in its own database, and connections server-wide', async () => {
    const b = await busy(own);
    try {
      await waitFor('the own transaction to age past 1.5 s', async () => (await holderAge(own)) > 1.5, 10_000, 100);
      const reading = await probe.read('main');
      expect(reading.lockWaiters).toBe(1);
      expect(reading.oldestTransactionSeconds).toBeGreaterThan(1.5);
      expect(judgeHealth(reading, throttle(spec), null)).toBe('lock-waiters');
      // Connections stay server-wide: sessions of the other database count too.
      const onOther = (await other.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)).rows[0]?.n ?? 0;
      const max = Number((await own.query<{ m: string }>(`SELECT current_setting('max_connections') AS m`)).rows[0]?.m);
      expect(onOther).toBeGreaterThan(0);
      expect(Math.round(reading.connectionsUsedRatio * max)).toBeGreaterThanOrEqual(onOther + 3);
    } finally {
      await release(b);
    }
  });
});
