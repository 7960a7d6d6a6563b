import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, createToken, startHarness, type Harness } from './support/harness.js';

// The verification routes' answers, on the real PostgreSQL and Redis. Range jobs run in this
// process through the engine the app serves (`runRange`, what a worker's processor calls), so the
// test decides when the verification finishes.

let h: Harness;

beforeAll(async () => {
  h = await startHarness('verification_routes');
});

afterAll(async () => {
  await h?.close();
});

const VERIFICATION_FIELDS = [
  'createdBy',
  'different',
  'extraInTarget',
  'finishedAt',
  'id',
  'migrationId',
  'missingInTarget',
  'outcome',
  'rangesChecked',
  'rangesTotal',
  'repaired',
  'repairs',
  'rowsCompared',
  'sampleKeys',
  'startedAt',
  'status',
  'unrepaired',
];
const REPAIR_FIELDS = ['actor', 'deleted', 'error', 'finishedAt', 'fixed', 'id', 'keysAttempted', 'sampleKeys', 'startedAt', 'status', 'stillDifferent', 'upserted', 'verificationId'];

/** Runs every pending range of the verification in this process until none is left. */
async function runRanges(vid: string): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const pending = await h.orch.query<{ id: number; attempts: number; enqueues: number }>(`select id, attempts, enqueues from verification_ranges where verification_id = $1 and status = 'pending' order by id`, [vid]);
    if (pending.rowCount === 0) return;
    for (const r of pending.rows) await h.app.engine.verification.runRange({ verificationId: vid, rangeId: r.id, attempt: r.attempts + 1, enqueue: r.enqueues });
  }
  throw new Error('ranges still pending after 20 rounds');
}

const events = async (id: string, action: string) =>
  (await h.orch.query<{ actor: string; reason: string | null; details: Record<string, unknown> }>(`select actor, reason, details from migration_events where migration_id = $1 and action = $2 order by seq`, [id, action])).rows;

describe('verification routes', () => {
  it('answer the findings as found, repairs as records of their own (failed ones too), and refuse bad requests changing nothing', async () => {
    await h.user.query(`insert into orders select g, g from generate_series(1, 200) g`);
    const m = await createMigration(h.app, 'verify-routes');
    for (const action of ['start', 'advance', 'advance']) await act(h.app, m.id, action);
    // The target as a backfill would leave it, then one key missing, one different, one extra.
    await h.user.query(`insert into orders_v2 select id, total * 100 from orders where id <> 5; update orders_v2 set total_cents = -1 where id = 7; insert into orders_v2 values (1000, 1)`);

    const started = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/verifications` });
    expect(started.status).toBe(202);
    expect(Object.keys(started.body).sort()).toEqual(VERIFICATION_FIELDS);
    expect(started.body).toMatchObject({ status: 'running', outcome: null, createdBy: 'bootstrap-admin', repairs: [], sampleKeys: [], unrepaired: 0, finishedAt: null });
    const vid = started.body.id as string;
    const base = `/v1/migrations/${m.id}/verifications/${vid}`;

    // Still running: a repair is refused and records nothing.
    const early = await call(h.app, { method: 'POST', url: `${base}/repair` });
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('INVALID_TRANSITION');

    await runRanges(vid);
    const found = await call(h.app, { method: 'GET', url: base });
    expect(found.status).toBe(200);
    expect(Object.keys(found.body).sort()).toEqual(VERIFICATION_FIELDS);
    const asFound = { status: 'failed', missingInTarget: 1, extraInTarget: 1, different: 1 };
    expect(found.body).toMatchObject({ ...asFound, outcome: 'failed', repaired: 0, unrepaired: 3, repairs: [], rowsCompared: 200 });
    expect(found.body.sampleKeys).toEqual([
      { key: ['1000'], kind: 'extra', repairedBy: null },
      { key: ['5'], kind: 'missing', repairedBy: null },
      { key: ['7'], kind: 'different', repairedBy: null },
    ]);
    expect((await events(m.id, 'verification.finished')).map((e) => e.details)).toEqual([
      { ...asFound, verificationId: vid, startedBy: 'bootstrap-admin', rangesChecked: 1, rowsCompared: 200, durationMs: expect.any(Number) },
    ]);

    // Bad requests: 400 naming the parameter, 404 for another migration's verification, 403 for a viewer; none records a repair.
    const other = await createMigration(h.app, 'verify-routes-other');
    const viewer = await createToken(h.app, 'vera-viewer', 'viewer');
    const [badId, foreign, foreignRepair, forbidden] = await Promise.all([
      call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}/verifications/not-a-uuid` }),
      call(h.app, { method: 'GET', url: `/v1/migrations/${other.id}/verifications/${vid}` }),
      call(h.app, { method: 'POST', url: `/v1/migrations/${other.id}/verifications/${vid}/repair` }),
      call(h.app, { method: 'POST', url: `${base}/repair`, token: viewer }),
    ]);
    expect(badId.status).toBe(400);
    expect(JSON.stringify(badId.body.error.details)).toContain('vid');
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('MIGRATION_NOT_FOUND');
    expect(foreignRepair.status).toBe(404);
    expect(forbidden.status).toBe(403);
    expect((await h.orch.query('select 1 from verification_repairs')).rowCount).toBe(0);

    // A repair that fails (the target table is gone for a moment) is recorded as failed and fixes nothing.
    await h.user.query('alter table orders_v2 rename to orders_v2_away');
    const failed = await call(h.app, { method: 'POST', url: `${base}/repair` });
    await h.user.query('alter table orders_v2_away rename to orders_v2');
    // An unexpected database error: 500 without internals; the record keeps the message.
    expect(failed.status).toBe(500);
    expect(failed.body.error.code).toBe('INTERNAL');
    const afterFailure = (await call(h.app, { method: 'GET', url: base })).body;
    expect(afterFailure).toMatchObject({ ...asFound, outcome: 'failed', repaired: 0, unrepaired: 3 });
    expect(afterFailure.repairs).toHaveLength(1);
    expect(afterFailure.repairs[0]).toMatchObject({ status: 'failed', actor: 'bootstrap-admin', keysAttempted: 3, fixed: 0, stillDifferent: 0, sampleKeys: [], finishedAt: expect.any(String) });
    expect(afterFailure.repairs[0].error).toMatch(/orders_v2/);
    const failedEvents = await events(m.id, 'verification.repair_failed');
    expect(failedEvents).toHaveLength(1);
    expect(failedEvents[0]).toMatchObject({ actor: 'bootstrap-admin', details: { verificationId: vid, repairId: afterFailure.repairs[0].id, keysAttempted: 3 } });
    expect(await events(m.id, 'verification.repaired')).toEqual([]);

    // The repair that works: the record, with the verification after it nested.
    const repaired = await call(h.app, { method: 'POST', url: `${base}/repair` });
    expect(repaired.status).toBe(200);
    expect(Object.keys(repaired.body).sort()).toEqual([...REPAIR_FIELDS, 'verification'].sort());
    expect(repaired.body).toMatchObject({ verificationId: vid, actor: 'bootstrap-admin', status: 'finished', keysAttempted: 3, upserted: 2, deleted: 1, fixed: 3, stillDifferent: 0, error: null });
    expect(repaired.body.sampleKeys).toEqual([
      { key: ['1000'], kind: 'extra', outcome: 'fixed' },
      { key: ['5'], kind: 'missing', outcome: 'fixed' },
      { key: ['7'], kind: 'different', outcome: 'fixed' },
    ]);
    const { verification, ...record } = repaired.body;
    expect(Object.keys(verification).sort()).toEqual(VERIFICATION_FIELDS);
    expect(verification).toMatchObject({ ...asFound, outcome: 'repaired', repaired: 3, unrepaired: 0, finishedAt: found.body.finishedAt });
    expect(verification.repairs.map((r: { id: string; status: string }) => r.status)).toEqual(['failed', 'finished']);
    expect(verification.repairs[1]).toEqual(record);
    expect(verification.sampleKeys.map((s: { repairedBy: string }) => s.repairedBy)).toEqual([record.id, record.id, record.id]);
    const list = await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}/verifications` });
    expect(list.body.items).toEqual([verification]);

    // A finished migration re-copies nothing: 409, no repair recorded.
    await act(h.app, m.id, 'abort', { reason: 'done with the test' });
    const late = await call(h.app, { method: 'POST', url: `${base}/repair` });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('INVALID_TRANSITION');
    expect((await h.orch.query('select 1 from verification_repairs')).rowCount).toBe(2);
    expect(await events(m.id, 'verification.repaired')).toHaveLength(1);
  });
});
