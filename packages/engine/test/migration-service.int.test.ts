import fc from 'fast-check';
import { ACTIONS, GateNotMetError, InvalidSpecError, replayEvents, TidewayError, type MigrationSpecInput } from '@tideway/core';
import { createOrchestratorTestDatabase, createTestDatabase, waitFor, type OrchestratorTestDatabase, type TestDatabase } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, TRANSITION_ATTEMPTS, type Engine } from '../src/index.js';

let orch: OrchestratorTestDatabase;
let user: TestDatabase;
let engine: Engine;
let gateOpen = true;
let failEntry = false;
/** Deadlocks the next `conflicts` runs of the backfill entry action (a real one, on the user database). */
let conflicts = 0;

const spec = (name: string, overrides: Partial<MigrationSpecInput> = {}): MigrationSpecInput => ({
  name,
  syncMode: 'trigger',
  source: { datasource: 'main', table: 'orders', key: 'id' },
  target: { datasource: 'main', table: 'orders_v2', key: 'id' },
  mapping: { id: 'id', total_cents: 'total * 100' },
  reverseMapping: { total: 'total_cents / 100' },
  ...overrides,
});

/**
 * A real deadlock on the user database: two sessions lock the rows of `locks` in opposite orders;
 * `b` waits first with a long deadlock_timeout, `a` closes the cycle with a short one, so PostgreSQL
 * (which checks once per wait, after the timeout) cancels `a`. Rejects with `a`'s 40P01 error.
 */
async function deadlock(url: string): Promise<void> {
  const [a, b] = [new pg.Client({ connectionString: url }), new pg.Client({ connectionString: url })];
  await Promise.all([a.connect(), b.connect()]);
  try {
    await a.query(`SET deadlock_timeout = '50ms'`);
    await b.query(`SET deadlock_timeout = '10s'`);
    await a.query('BEGIN');
    await b.query('BEGIN');
    await a.query('SELECT * FROM locks WHERE id = 1 FOR UPDATE');
    await b.query('SELECT * FROM locks WHERE id = 2 FOR UPDATE');
    const bWaits = b.query('SELECT * FROM locks WHERE id = 1 FOR UPDATE').catch(() => undefined);
    await waitFor('b waiting on the lock', async () => ((await user.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]?.n === 1 ? true : null), 5000);
    try {
      await a.query('SELECT * FROM locks WHERE id = 2 FOR UPDATE');
    } finally {
      await a.query('ROLLBACK').catch(() => undefined);
      await bWaits;
      await b.query('ROLLBACK').catch(() => undefined);
    }
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

beforeAll(async () => {
  orch = await createOrchestratorTestDatabase('engine');
  user = await createTestDatabase('engine_user');
  await user.query(`
    create table orders (id bigint primary key, total int);
    create table orders_v2 (id bigint primary key, total_cents bigint);
    create table line_items (order_id bigint not null, line int not null, sku text, unique (order_id, line));
    create table line_items_v2 (order_id bigint not null, line int not null, sku text, primary key (order_id, line));
    create table loose (code text unique, v int);
    create table loose_v2 (code text primary key, v int);
    create table locks (id int primary key); insert into locks values (1), (2);`);
  engine = createEngine({
    db: orch.db,
    datasources: { main: user.url },
    configureHooks: (hooks) => {
      hooks.addGate('dual_write', {
        name: 'test-gate',
        evaluate: () => ({ name: 'test-gate', passed: gateOpen, message: gateOpen ? 'open' : 'closed', observed: { open: gateOpen, rowsLeft: gateOpen ? 0 : 42 } }),
      });
      hooks.addEntryAction('backfill', {
        name: 'may-deadlock',
        run: async () => {
          if (conflicts <= 0) return;
          conflicts--;
          await deadlock(user.url);
        },
      });
      hooks.addEntryAction('dual_write', {
        name: 'may-fail',
        run: () => {
          if (failEntry) throw new TidewayError('DEPENDENCY_UNAVAILABLE', 'flag server down', { dependency: 'unleash' });
        },
      });
    },
  });
});

afterAll(async () => {
  await engine?.close();
  await orch?.drop();
  await user?.drop();
});

describe('MigrationService on PostgreSQL', () => {
  it('replaying the stored audit log always yields the stored state (random action sequences)', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...ACTIONS), { minLength: 1, maxLength: 25 }), fc.boolean(), async (actions, open) => {
        gateOpen = open;
        const m = await engine.migrations.create(spec(`replay-${n++}`), { actor: 'prop' });
        for (const action of actions) {
          await engine.migrations.act(m.id, action, { actor: 'prop' }).catch((error: unknown) => {
            if (!(error instanceof TidewayError)) throw error;
          });
        }
        const stored = await engine.migrationReadModel.get(m.id);
        const events = await engine.migrationReadModel.allEvents(m.id);
        expect(replayEvents(events)).toEqual({ phase: stored?.phase, status: stored?.status });
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        // every event but create bumped the version once
        expect(stored?.version).toBe(events.length);
      }),
      { numRuns: 15 },
    );
    gateOpen = true;
  });

  it('refuses to advance while a gate does not hold, with its numbers, and changes nothing', async () => {
    const m = await engine.migrations.create(spec('gated'), { actor: 't' });
    for (const action of ['start', 'advance'] as const) await engine.migrations.act(m.id, action, { actor: 't' });
    gateOpen = false;
    const before = await engine.migrationReadModel.get(m.id);
    const error = await engine.migrations.act(m.id, 'advance', { actor: 't' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GateNotMetError);
    expect((error as GateNotMetError).details).toEqual({
      phase: 'dual_write',
      gates: [{ name: 'test-gate', passed: false, message: 'closed', observed: { open: false, rowsLeft: 42 } }],
    });
    expect(await engine.migrationReadModel.get(m.id)).toEqual(before);
    gateOpen = true;
    const after = await engine.migrations.act(m.id, 'advance', { actor: 't' });
    expect(after.phase).toBe('backfill');
    const last = (await engine.migrationReadModel.allEvents(m.id)).at(-1);
    expect(last?.details).toMatchObject({ gates: [{ name: 'test-gate', passed: true }] });
  });

  it('runs a transition that lost a deadlock again, and records it once', async () => {
    const m = await engine.migrations.create(spec('deadlocked'), { actor: 't' });
    for (const action of ['start', 'advance'] as const) await engine.migrations.act(m.id, action, { actor: 't' });
    conflicts = 1;
    const after = await engine.migrations.act(m.id, 'advance', { actor: 't' });
    expect(conflicts).toBe(0);
    expect(after.phase).toBe('backfill');
    const events = (await engine.migrationReadModel.allEvents(m.id)).filter((e) => e.action === 'advance');
    expect(events.map((e) => e.toPhase)).toEqual(['dual_write', 'backfill']);
    // One that keeps losing gives up after its attempts, with the database's error, and changes nothing.
    const m2 = await engine.migrations.create(spec('deadlocked-always'), { actor: 't' });
    for (const action of ['start', 'advance'] as const) await engine.migrations.act(m2.id, action, { actor: 't' });
    conflicts = TRANSITION_ATTEMPTS;
    const before = await engine.migrationReadModel.get(m2.id);
    await expect(engine.migrations.act(m2.id, 'advance', { actor: 't' })).rejects.toMatchObject({ code: '40P01' });
    expect(conflicts).toBe(0);
    expect(await engine.migrationReadModel.get(m2.id)).toEqual(before);
  }, 60_000);

  it('leaves state and audit log untouched when a phase action throws', async () => {
    const m = await engine.migrations.create(spec('action-fails'), { actor: 't' });
    await engine.migrations.act(m.id, 'start', { actor: 't' });
    failEntry = true;
    const before = await engine.migrationReadModel.get(m.id);
    const eventsBefore = await engine.migrationReadModel.allEvents(m.id);
    await expect(engine.migrations.act(m.id, 'advance', { actor: 't' })).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    expect(await engine.migrationReadModel.get(m.id)).toEqual(before);
    expect(await engine.migrationReadModel.allEvents(m.id)).toEqual(eventsBefore);
    failEntry = false;
  });

  it('accepts composite unique keys at start and rejects nullable or non-unique keys with every problem listed', async () => {
    const composite = await engine.migrations.create(
      spec('composite', {
        source: { datasource: 'main', table: 'line_items', key: ['order_id', 'line'] },
        target: { datasource: 'main', table: 'line_items_v2', key: ['line', 'order_id'] },
        mapping: { order_id: 'order_id', line: 'line', sku: 'sku' },
        reverseMapping: undefined,
      }),
      { actor: 't' },
    );
    expect((await engine.migrations.act(composite.id, 'start', { actor: 't' })).phase).toBe('prepare');

    const loose = await engine.migrations.create(
      spec('loose', {
        source: { datasource: 'main', table: 'loose', key: 'code' },
        target: { datasource: 'main', table: 'loose_v2', key: 'code' },
        mapping: { code: 'code', v: 'v', nope: 'v' },
        reverseMapping: undefined,
      }),
      { actor: 't' },
    );
    const error = await engine.migrations.act(loose.id, 'start', { actor: 't' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidSpecError);
    expect((error as InvalidSpecError).problems).toEqual([
      { field: 'source.key', problem: 'key column(s) code allow NULL' },
      { field: 'mapping.nope', problem: 'column "nope" does not exist in target table public.loose_v2' },
    ]);
    expect((await engine.migrationReadModel.get(loose.id))?.phase).toBe('draft');
  });

  it('serialises concurrent actions on one migration through the row lock', async () => {
    const m = await engine.migrations.create(spec('concurrent'), { actor: 't' });
    const started = await engine.migrations.act(m.id, 'start', { actor: 't' });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => engine.migrations.act(m.id, 'advance', { actor: 't', expectedVersion: started.version })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.map((r) => (r.reason as TidewayError).code)).toEqual(Array(19).fill('VERSION_CONFLICT'));
    const advances = (await engine.migrationReadModel.allEvents(m.id)).filter((e) => e.action === 'advance');
    expect(advances).toHaveLength(1);
  });
});

describe('describe: concurrent reads of one migration are coalesced', () => {
  it('shares one read among concurrent callers, and never serves a read from before the caller’s own write', async () => {
    const m = await engine.migrations.create(spec('coalesce'), { actor: 'test' });
    await engine.migrations.act(m.id, 'start', { actor: 'test' });
    const views = await Promise.all(Array.from({ length: 10 }, () => engine.migrations.describe(m.id)));
    expect(new Set(views).size).toBe(1);
    expect(views[0]?.migration.status).toBe('active');

    // Hold the next read in flight (a progress provider that waits), write, then read again.
    let release: () => void = () => undefined;
    let hold: Promise<void> | null = new Promise<void>((resolve) => (release = resolve));
    engine.migrations.addProgressProvider(async (migration) => {
      if (migration.id !== m.id || !hold) return {};
      const h = hold;
      hold = null;
      await h;
      return {};
    });
    const inFlight = engine.migrations.describe(m.id);
    await engine.migrations.act(m.id, 'pause', { actor: 'test' });
    let timer: NodeJS.Timeout | undefined;
    const joinedOldRead = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the read after the write joined the read from before it')), 5000);
    });
    const after = await Promise.race([engine.migrations.describe(m.id), joinedOldRead]).finally(() => clearTimeout(timer));
    expect(after.migration.status).toBe('paused');
    release();
    const before = await inFlight;
    expect(before).not.toBe(after);
    // Sequential reads are not shared: each sees the state of its own moment.
    await engine.migrations.act(m.id, 'resume', { actor: 'test' });
    expect((await engine.migrations.describe(m.id)).migration.status).toBe('active');
  });
});

describe('recordEvent inside the caller’s transaction', () => {
  it('commits with the change it records, and rolls back with it', async () => {
    const m = await engine.migrations.create(spec('record-in-trx'), { actor: 'test' });
    const count = async () => (await engine.migrationReadModel.allEvents(m.id)).filter((e) => e.action === 'test.note').length;
    await expect(
      orch.db.transaction().execute(async (trx) => {
        await engine.migrations.recordEvent(m.id, 'test.note', { actor: 'test' }, trx);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await count()).toBe(0);
    await orch.db.transaction().execute((trx) => engine.migrations.recordEvent(m.id, 'test.note', { actor: 'test' }, trx));
    expect(await count()).toBe(1);
  });
});
