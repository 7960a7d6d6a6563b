import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, createToken, ordersSpec, snapshot, startHarness, type Harness } from './support/harness.js';

/** Names of migrations whose next entry into `dual_write` fails with a plain (500) error. */
const crashNext = new Set<string>();

let h: Harness;
let operator: string;

beforeAll(async () => {
  h = await startHarness('idempotency', {
    configureHooks: (hooks) => {
      hooks.addEntryAction('dual_write', {
        name: 'crash-once',
        run(ctx) {
          if (crashNext.delete(ctx.migration.name)) throw new Error('simulated crash');
        },
      });
    },
  });
  operator = await createToken(h.app, 'ops', 'operator');
});

afterAll(async () => {
  await h?.close();
});

async function eventActions(id: string): Promise<string[]> {
  const { rows } = await h.orch.query<{ action: string }>('select action from migration_events where migration_id = $1 order by seq', [id]);
  return rows.map((r) => r.action);
}

async function version(id: string): Promise<number> {
  const { rows } = await h.orch.query<{ version: number }>('select version from migrations where id = $1', [id]);
  return rows[0]?.version ?? -1;
}

describe('Idempotency-Key', () => {
  it('replays a create: same status and body, marked replayed, one migration', async () => {
    const request = { method: 'POST', url: '/v1/migrations', body: ordersSpec('idem-create'), headers: { 'idempotency-key': 'create-1' } } as const;
    const first = await call(h.app, request);
    const second = await call(h.app, request);

    expect(first.status).toBe(201);
    expect(first.headers['idempotency-replayed']).toBeUndefined();
    expect(second.status).toBe(201);
    expect(second.headers['idempotency-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    const { rows } = await h.orch.query("select count(*)::int as n from migrations where name = 'idem-create'");
    expect(rows[0]).toEqual({ n: 1 });
    expect(await eventActions(first.body.id)).toEqual(['create']);
  });

  it('replays an action once acted: one audit event, the version bumped once, even after the state moved on', async () => {
    const m = await createMigration(h.app, 'idem-start');
    const request = { method: 'POST', url: `/v1/migrations/${m.id}/start`, body: { expectedVersion: 1, reason: 'go' }, headers: { 'idempotency-key': 'start-1' } } as const;

    const first = await call(h.app, request);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ phase: 'prepare', version: 2 });
    const second = await call(h.app, request);
    expect(second.status).toBe(200);
    expect(second.headers['idempotency-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(await version(m.id)).toBe(2);
    expect(await eventActions(m.id)).toEqual(['create', 'start']);

    await act(h.app, m.id, 'pause');
    const third = await call(h.app, request);
    expect(third.status).toBe(200);
    expect(third.body).toEqual(first.body);
    expect(await version(m.id)).toBe(3);
    expect(await eventActions(m.id)).toEqual(['create', 'start', 'pause']);
  });

  it('replays a bodiless action and an error answer alike', async () => {
    const m = await createMigration(h.app, 'idem-error');
    const refused = { method: 'POST', url: `/v1/migrations/${m.id}/resume`, headers: { 'idempotency-key': 'resume-1' } } as const;
    const first = await call(h.app, refused);
    expect(first.status).toBe(409);
    expect(first.body.error.code).toBe('INVALID_TRANSITION');

    await act(h.app, m.id, 'start');
    await act(h.app, m.id, 'pause');
    // Resume would now succeed, but the key already has its answer.
    const second = await call(h.app, refused);
    expect(second.status).toBe(409);
    expect(second.headers['idempotency-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(await eventActions(m.id)).toEqual(['create', 'start', 'pause']);
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED for the same key with another body or path, and does nothing', async () => {
    const m = await createMigration(h.app, 'idem-reuse');
    const other = await createMigration(h.app, 'idem-reuse-other');
    const first = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start`, body: { reason: 'a' }, headers: { 'idempotency-key': 'reuse-1' } });
    expect(first.status).toBe(200);

    const before = await snapshot(h.orch);
    const attempts = [
      { url: `/v1/migrations/${m.id}/start`, body: { reason: 'b' } },
      { url: `/v1/migrations/${m.id}/start`, body: { reason: 'a', expectedVersion: 1 } },
      { url: `/v1/migrations/${m.id}/pause`, body: { reason: 'a' } },
      { url: `/v1/migrations/${other.id}/start`, body: { reason: 'a' } },
    ];
    for (const a of attempts) {
      const res = await call(h.app, { method: 'POST', ...a, headers: { 'idempotency-key': 'reuse-1' } });
      expect(res.status, a.url).toBe(422);
      expect(res.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', details: { field: 'idempotency-key' } });
    }
    expect(await snapshot(h.orch)).toEqual(before);
    expect(await eventActions(other.id)).toEqual(['create']);
  });

  it('scopes keys per actor', async () => {
    const m = await createMigration(h.app, 'idem-actors');
    await act(h.app, m.id, 'start');

    const byAdmin = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/pause`, headers: { 'idempotency-key': 'shared' } });
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body).toMatchObject({ status: 'paused', version: 3 });

    // The operator's use of the same key is its own: a different request is no reuse, and it acts.
    const byOperator = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/resume`, token: operator, headers: { 'idempotency-key': 'shared' } });
    expect(byOperator.status).toBe(200);
    expect(byOperator.headers['idempotency-replayed']).toBeUndefined();
    expect(byOperator.body).toMatchObject({ status: 'active', version: 4 });

    // The same request as the admin's, by the operator, acts too instead of replaying the admin's answer.
    const operatorPause = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/pause`, token: operator, headers: { 'idempotency-key': 'shared-2' } });
    expect(operatorPause.status).toBe(200);
    const adminAgain = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/pause`, headers: { 'idempotency-key': 'shared' } });
    expect(adminAgain.headers['idempotency-replayed']).toBe('true');
    expect(adminAgain.body).toEqual(byAdmin.body);

    const { rows } = await h.orch.query("select actor, key, path from idempotency_keys where key like 'shared%' order by actor, key");
    expect(rows).toEqual([
      { actor: 'bootstrap-admin', key: 'shared', path: `/v1/migrations/${m.id}/pause` },
      { actor: 'ops', key: 'shared', path: `/v1/migrations/${m.id}/resume` },
      { actor: 'ops', key: 'shared-2', path: `/v1/migrations/${m.id}/pause` },
    ]);
    const log = await h.orch.query('select actor, action from migration_events where migration_id = $1 order by seq', [m.id]);
    expect(log.rows).toEqual([
      { actor: 'bootstrap-admin', action: 'create' },
      { actor: 'bootstrap-admin', action: 'start' },
      { actor: 'bootstrap-admin', action: 'pause' },
      { actor: 'ops', action: 'resume' },
      { actor: 'ops', action: 'pause' },
    ]);
  });

  it('does not store a 5xx answer, so a retry with the key runs again', async () => {
    const m = await createMigration(h.app, 'idem-crash');
    await act(h.app, m.id, 'start');
    crashNext.add('idem-crash');
    const request = { method: 'POST', url: `/v1/migrations/${m.id}/advance`, headers: { 'idempotency-key': 'advance-1' } } as const;

    const crashed = await call(h.app, request);
    expect(crashed.status).toBe(500);
    expect(await version(m.id)).toBe(2);
    const { rows } = await h.orch.query("select count(*)::int as n from idempotency_keys where key = 'advance-1'");
    expect(rows[0]).toEqual({ n: 0 });

    const retried = await call(h.app, request);
    expect(retried.status).toBe(200);
    expect(retried.headers['idempotency-replayed']).toBeUndefined();
    expect(retried.body).toMatchObject({ phase: 'dual_write', version: 3 });
    expect(await eventActions(m.id)).toEqual(['create', 'start', 'advance']);
  });

  it('lets exactly one of several concurrent duplicates act', async () => {
    const m = await createMigration(h.app, 'idem-race');
    const request = { method: 'POST', url: `/v1/migrations/${m.id}/start`, headers: { 'idempotency-key': 'race-1' } } as const;
    const results = await Promise.all(Array.from({ length: 8 }, () => call(h.app, request)));

    const acted = results.filter((r) => r.status === 200 && r.headers['idempotency-replayed'] === undefined);
    const replayed = results.filter((r) => r.status === 200 && r.headers['idempotency-replayed'] === 'true');
    const inProgress = results.filter((r) => r.status === 409);
    expect(acted).toHaveLength(1);
    expect(replayed.length + inProgress.length).toBe(7);
    for (const r of replayed) expect(r.body).toEqual(acted[0]?.body);
    for (const r of inProgress) expect(r.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_IN_PROGRESS', details: { field: 'idempotency-key' } });
    expect(await eventActions(m.id)).toEqual(['create', 'start']);
    expect(await version(m.id)).toBe(2);
  });

  it('answers 400 for a key that is not 1–255 visible ASCII characters, before acting', async () => {
    const m = await createMigration(h.app, 'idem-bad-key');
    for (const key of ['has space', 'x'.repeat(256), 'caf\u00e9']) {
      const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start`, headers: { 'idempotency-key': key } });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'idempotency-key' } });
    }
    expect(await version(m.id)).toBe(1);
  });

  it('never stores a token secret for replay: token creation ignores the key', async () => {
    const first = await call(h.app, { method: 'POST', url: '/v1/tokens', body: { name: 'idem-token', role: 'viewer' }, headers: { 'idempotency-key': 'token-1' } });
    expect(first.status).toBe(201);
    const retry = await call(h.app, { method: 'POST', url: '/v1/tokens', body: { name: 'idem-token', role: 'viewer' }, headers: { 'idempotency-key': 'token-1' } });
    expect(retry.status).toBe(409);
    expect(retry.body.error.code).toBe('NAME_TAKEN');

    const { rows } = await h.orch.query("select count(*)::int as n from idempotency_keys where key = 'token-1' or response_body::text like '%' || $1 || '%'", [first.body.token]);
    expect(rows[0]).toEqual({ n: 0 });
  });
});
