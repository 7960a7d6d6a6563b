import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, createToken, ordersSpec, snapshot, startHarness, type Harness } from './support/harness.js';

// Roles match the harm: what decides the SQL Tideway runs or destroys data is admin-only, at
// create and in PATCH; operators run actions and tune pace.

let h: Harness;
let operator: string;
let admin: string;

beforeAll(async () => {
  h = await startHarness('roles');
  operator = await createToken(h.app, 'olga-operator', 'operator');
  admin = await createToken(h.app, 'ada-admin', 'admin');
});

afterAll(async () => {
  await h?.close();
});

// Specs as the API returns them; the schema tests pin their shapes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnySpec = Record<string, any>;

/** Each admin-only field, with a spec patch that changes it on an `ordersSpec` draft. */
const ADMIN_ONLY: ReadonlyArray<readonly [string, Record<string, unknown>, (spec: AnySpec) => unknown]> = [
  ['source', { source: { datasource: 'main', table: 'orders_nokey', key: 'id' } }, (s) => s.source.table],
  ['target', { target: { datasource: 'main', table: 'orders_v2_nullable_unique', key: 'id' } }, (s) => s.target.table],
  ['mapping', { mapping: { id: 'id', total_cents: 'total * 1000' } }, (s) => s.mapping.total_cents],
  ['reverseMapping', { reverseMapping: { id: 'id', total: '(total_cents / 100)::int' } }, (s) => s.reverseMapping?.total],
  ['syncMode', { syncMode: 'application' }, (s) => s.syncMode],
  ['cleanup.dropOld', { cleanup: { dropOld: true, dropConfirmation: 'orders' } }, (s) => s.cleanup.dropOld],
  ['cleanup.autoExecute', { cleanup: { autoExecute: true } }, (s) => s.cleanup.autoExecute],
  ['cleanup.dropConfirmation', { cleanup: { dropConfirmation: 'orders' } }, (s) => s.cleanup.dropConfirmation],
];

let n = 0;
const fresh = () => createMigration(h.app, `roles-${n++}`);

describe('admin-only spec fields', () => {
  it.each(ADMIN_ONLY)('an operator cannot create a migration setting %s (403 FORBIDDEN)', async (_field, patch) => {
    const before = await snapshot(h.orch);
    const res = await call(h.app, { method: 'POST', url: '/v1/migrations', token: operator, body: { ...ordersSpec(`by-operator-${n++}`), ...patch } });
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: 'FORBIDDEN', details: { required: 'admin', role: 'operator' } });
    expect(await snapshot(h.orch)).toEqual(before);
  });

  it.each(ADMIN_ONLY)('an operator PATCH changing %s answers 403 FORBIDDEN naming it and changes nothing; an admin may', async (field, patch, read) => {
    const m = await fresh();
    const before = await snapshot(h.orch);
    const denied = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, token: operator, body: { spec: patch } });
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: 'FORBIDDEN', details: { field, required: 'admin', role: 'operator' } });
    expect(denied.body.error.message).toContain(field);
    expect(await snapshot(h.orch)).toEqual(before);

    const allowed = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, token: admin, body: { spec: patch } });
    expect(allowed.status, allowed.text).toBe(200);
    expect(read(allowed.body.spec)).toEqual(read({ ...ordersSpec('x'), ...patch, cleanup: { ...(patch['cleanup'] as object) } }));
    expect(read(allowed.body.spec)).not.toEqual(read(m.spec));
    expect(allowed.body.version).toBe(m.version + 1);
  });

  it('names every admin-only field a PATCH would change, with tunables beside them refused too', async () => {
    const m = await fresh();
    const before = await snapshot(h.orch);
    const res = await call(h.app, {
      method: 'PATCH',
      url: `/v1/migrations/${m.id}`,
      token: operator,
      body: { spec: { backfill: { concurrency: 3 }, mapping: { id: 'id', total_cents: 'total' }, cleanup: { autoExecute: true, dropOld: true, dropConfirmation: 'orders', deadlineDays: 0 } } },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.details).toEqual({
      field: 'mapping',
      fields: ['mapping', 'cleanup.dropOld', 'cleanup.autoExecute', 'cleanup.dropConfirmation'],
      required: 'admin',
      role: 'operator',
    });
    expect(await snapshot(h.orch)).toEqual(before);
  });

  it('after start an operator still gets 403 (not 409) for an admin-only field; an admin gets 409 IMMUTABLE_FIELD', async () => {
    const m = await fresh();
    await act(h.app, m.id, 'start');
    const asOperator = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, token: operator, body: { spec: { mapping: { id: 'id', total_cents: 'total' } } } });
    expect(asOperator.status).toBe(403);
    expect(asOperator.body.error.details.field).toBe('mapping');
    const asAdmin = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, token: admin, body: { spec: { mapping: { id: 'id', total_cents: 'total' } } } });
    expect(asAdmin.status).toBe(409);
    expect(asAdmin.body.error.code).toBe('IMMUTABLE_FIELD');
  });

  it('an operator may tune pace and cleanup timing, and send admin-only fields unchanged', async () => {
    const m = await fresh();
    const res = await call(h.app, {
      method: 'PATCH',
      url: `/v1/migrations/${m.id}`,
      token: operator,
      body: { spec: { backfill: { maxRowsPerSecond: 500 }, cleanup: { deadlineDays: 7, dropOld: false }, syncMode: 'trigger', mapping: { total_cents: 'total * 100', id: 'id' } } },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.spec.backfill.maxRowsPerSecond).toBe(500);
    expect(res.body.spec.cleanup.deadlineDays).toBe(7);
    const { rows } = await h.orch.query<{ actor: string; details: { changed: string[] } }>(
      `select actor, details from migration_events where migration_id = $1 and action = 'patch'`,
      [m.id],
    );
    expect(rows).toEqual([{ actor: 'olga-operator', details: expect.objectContaining({ changed: ['backfill.maxRowsPerSecond', 'cleanup.deadlineDays'] }) }]);
  });
});
