import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, createToken, snapshot, startHarness, type Harness } from './support/harness.js';

// Issue 18 §5 at the API: the rows a backfill skipped on their data are listed, re-driven by an
// operator, accepted by an admin with a reason; bad input and the wrong role change nothing.
let h: Harness;
let id: string;
let operator: string;
let viewer: string;

/** Lists a skipped row as the worker would (the worker's bisection is tested in apps/worker). */
async function plant(key: string, chunkId: number): Promise<void> {
  await h.orch.query(
    `insert into backfill_skipped_rows (migration_id, key_values, chunk_id, error, sqlstate, constraint_name) values ($1, $2::jsonb, $3, 'new row for relation "orders_v2" violates check constraint "total_positive"', '23514', 'total_positive')`,
    [id, JSON.stringify([key]), chunkId],
  );
}

beforeAll(async () => {
  h = await startHarness('skipped_rows');
  id = (await createMigration(h.app, 'skipped-rows')).id;
  await act(h.app, id, 'start');
  operator = await createToken(h.app, 'skipped-operator', 'operator');
  viewer = await createToken(h.app, 'skipped-viewer', 'viewer');
  await plant('7', 11);
  await plant('42', 12);
  await plant('1000', 13);
});

afterAll(async () => {
  await h?.close();
});

describe('GET /v1/migrations/:id/skipped-rows', () => {
  it('lists them for a viewer, in the order found, with the error, the SQLSTATE and the constraint; keyset pages', async () => {
    const first = await call(h.app, { method: 'GET', url: `/v1/migrations/${id}/skipped-rows?limit=2`, token: viewer });
    expect(first.status).toBe(200);
    expect(first.body.items.map((r: { key: string[] }) => r.key)).toEqual([['7'], ['42']]);
    expect(first.body.items[0]).toMatchObject({ sqlstate: '23514', constraint: 'total_positive', resolution: null, resolvedBy: null, reason: null, chunkId: 11 });
    const second = await call(h.app, { method: 'GET', url: `/v1/migrations/${id}/skipped-rows?limit=2&cursor=${first.body.nextCursor}`, token: viewer });
    expect(second.body).toMatchObject({ items: [{ key: ['1000'] }], nextCursor: null });
  });

  it('a cursor it did not hand out is a 400 naming the field', async () => {
    const res = await call(h.app, { method: 'GET', url: `/v1/migrations/${id}/skipped-rows?cursor=bm9wZQ`, token: viewer });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('cursor');
  });
});

describe('POST /v1/migrations/:id/skipped-rows/accept', () => {
  it('needs a reason, from an admin: a 400 with the field, a 422 for a key of the wrong width, a 403 for an operator, and nothing changes', async () => {
    const before = await snapshot(h.orch);
    const noReason = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/accept`, body: {} });
    expect(noReason.status).toBe(400);
    expect(noReason.body.error.code).toBe('VALIDATION_FAILED');
    expect(JSON.stringify(noReason.body.error.details)).toContain('reason');
    const badKey = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/accept`, body: { reason: 'x', keys: [['7', 'extra']] } });
    expect(badKey.status).toBe(422);
    expect(badKey.body.error.code).toBe('INVALID_SPEC');
    const asOperator = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/accept`, token: operator, body: { reason: 'fine' } });
    expect(asOperator.status).toBe(403);
    expect(await snapshot(h.orch)).toEqual(before);
  });

  it('accepts the given keys with the reason and audits it; the others stay unresolved', async () => {
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/accept`, body: { reason: 'test rows from 2019, never shown to customers', keys: [['42']] } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ accepted: [['42']] });
    const listed = await call(h.app, { method: 'GET', url: `/v1/migrations/${id}/skipped-rows`, token: viewer });
    expect(listed.body.items.find((r: { key: string[] }) => r.key[0] === '42')).toMatchObject({ resolution: 'accepted', resolvedBy: 'bootstrap-admin', reason: 'test rows from 2019, never shown to customers' });
    const unresolved = await call(h.app, { method: 'GET', url: `/v1/migrations/${id}/skipped-rows?unresolved=true`, token: viewer });
    expect(unresolved.body.items.map((r: { key: string[] }) => r.key)).toEqual([['7'], ['1000']]);
    const events = await call(h.app, { method: 'GET', url: `/v1/migrations/${id}/events?limit=1000` });
    expect(events.body.items.filter((e: { action: string }) => e.action === 'backfill.skipped_rows_accepted')).toEqual([
      expect.objectContaining({ actor: 'bootstrap-admin', reason: 'test rows from 2019, never shown to customers', details: { rows: 1, keys: [['42']] } }),
    ]);
    // Accepting it again accepts nothing and records nothing.
    const again = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/accept`, body: { reason: 'again', keys: [['42']] } });
    expect(again.body).toEqual({ accepted: [] });
  });
});

describe('POST /v1/migrations/:id/skipped-rows/redrive', () => {
  it('outside dual_write…cleanup is a 409 INVALID_TRANSITION; a viewer gets 403; nothing changes', async () => {
    const before = await snapshot(h.orch);
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/redrive`, token: operator });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('INVALID_TRANSITION');
    expect((await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/skipped-rows/redrive`, token: viewer })).status).toBe(403);
    expect(await snapshot(h.orch)).toEqual(before);
  });
});
