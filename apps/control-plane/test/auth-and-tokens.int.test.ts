import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, createMigration, createToken, ordersSpec, snapshot, startHarness, type Harness } from './support/harness.js';

let h: Harness;
let viewer: string;
let operator: string;
let admin: string;

beforeAll(async () => {
  h = await startHarness('auth_tokens');
  viewer = await createToken(h.app, 'carol-viewer', 'viewer');
  operator = await createToken(h.app, 'bob-operator', 'operator');
  admin = await createToken(h.app, 'alice-admin', 'admin');
});

afterAll(async () => {
  await h?.close();
});

describe('tokens', () => {
  it('creates a token whose secret is shown once and stored only as its SHA-256', async () => {
    const res = await call(h.app, { method: 'POST', url: '/v1/tokens', token: admin, body: { name: 'ci-deploy', role: 'operator' } });

    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(['createdAt', 'createdBy', 'lastUsedAt', 'name', 'revokedAt', 'role', 'token']);
    expect(res.body).toMatchObject({ name: 'ci-deploy', role: 'operator', createdBy: 'alice-admin', lastUsedAt: null, revokedAt: null });
    expect(res.body.token).toMatch(/^tw_[A-Za-z0-9_-]{43}$/);

    const { rows } = await h.orch.query<{ secret_sha256: Buffer; row: string }>("select secret_sha256, row_to_json(t)::text as row from api_tokens t where name = 'ci-deploy'");
    expect(rows).toHaveLength(1);
    expect(rows[0]?.secret_sha256.equals(createHash('sha256').update(res.body.token).digest())).toBe(true);
    expect(rows[0]?.row).not.toContain(res.body.token.slice(3));

    const audit = await h.orch.query("select actor, action, resource_type, resource_id, details from audit_events where resource_id = 'ci-deploy'");
    expect(audit.rows).toEqual([{ actor: 'alice-admin', action: 'token.create', resource_type: 'token', resource_id: 'ci-deploy', details: { role: 'operator' } }]);

    const works = await call(h.app, { method: 'GET', url: '/v1/migrations', token: res.body.token });
    expect(works.status).toBe(200);
  });

  it('lists tokens newest first, never with their secrets', async () => {
    const res = await call(h.app, { method: 'GET', url: '/v1/tokens' });

    expect(res.status).toBe(200);
    const names = (res.body.items as { name: string }[]).map((t) => t.name);
    expect(names.slice(-3)).toEqual(['alice-admin', 'bob-operator', 'carol-viewer']);
    expect(res.body.items.find((t: { name: string }) => t.name === 'bob-operator')).toMatchObject({ role: 'operator', createdBy: 'bootstrap-admin', revokedAt: null });
    expect(res.text).not.toContain(operator);
    expect(res.text).not.toContain('"token"');
    for (const t of res.body.items) expect(Object.keys(t).sort()).toEqual(['createdAt', 'createdBy', 'lastUsedAt', 'name', 'revokedAt', 'role']);
  });

  it('answers 409 NAME_TAKEN for a name in use (the bootstrap name included) and 400 for a bad name or role', async () => {
    const taken = await call(h.app, { method: 'POST', url: '/v1/tokens', body: { name: 'bob-operator', role: 'viewer' } });
    expect(taken.status).toBe(409);
    expect(taken.body.error).toMatchObject({ code: 'NAME_TAKEN', details: { field: 'name', name: 'bob-operator' } });

    const bootstrap = await call(h.app, { method: 'POST', url: '/v1/tokens', body: { name: 'bootstrap-admin', role: 'viewer' } });
    expect(bootstrap.status).toBe(409);
    expect(bootstrap.body.error.code).toBe('NAME_TAKEN');

    const badName = await call(h.app, { method: 'POST', url: '/v1/tokens', body: { name: 'Bob Smith', role: 'viewer' } });
    expect(badName.status).toBe(400);
    expect(badName.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'body.name' } });

    const badRole = await call(h.app, { method: 'POST', url: '/v1/tokens', body: { name: 'root', role: 'superuser' } });
    expect(badRole.status).toBe(400);
    expect(badRole.body.error.details.field).toBe('body.role');

    const { rows } = await h.orch.query("select count(*)::int as n from api_tokens where name in ('bootstrap-admin', 'root')");
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('revokes a token: it stops working at once, revoking again changes nothing, an unknown name is 404', async () => {
    const secret = await createToken(h.app, 'short-lived', 'viewer');
    expect((await call(h.app, { method: 'GET', url: '/v1/migrations', token: secret })).status).toBe(200);

    const revoked = await call(h.app, { method: 'POST', url: '/v1/tokens/short-lived/revoke', token: admin });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ name: 'short-lived', role: 'viewer' });
    expect(new Date(revoked.body.revokedAt).toISOString()).toBe(revoked.body.revokedAt);

    const after = await call(h.app, { method: 'GET', url: '/v1/migrations', token: secret });
    expect(after.status).toBe(401);
    expect(after.body.error).toMatchObject({ code: 'UNAUTHENTICATED', message: 'token is unknown or revoked' });

    const again = await call(h.app, { method: 'POST', url: '/v1/tokens/short-lived/revoke' });
    expect(again.status).toBe(200);
    expect(again.body.revokedAt).toBe(revoked.body.revokedAt);
    const audit = await h.orch.query("select actor, action from audit_events where resource_id = 'short-lived' order by id");
    expect(audit.rows).toEqual([
      { actor: 'bootstrap-admin', action: 'token.create' },
      { actor: 'alice-admin', action: 'token.revoke' },
    ]);

    const missing = await call(h.app, { method: 'POST', url: '/v1/tokens/nobody/revoke' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'TOKEN_NOT_FOUND', details: { name: 'nobody' } });
  });
});

describe('authentication', () => {
  const protectedRoutes = [
    { method: 'GET', url: '/v1/migrations' },
    { method: 'POST', url: '/v1/migrations' },
    { method: 'GET', url: '/v1/tokens' },
    { method: 'POST', url: '/v1/tokens' },
    { method: 'GET', url: '/v1/migrations/00000000-0000-4000-8000-000000000000' },
    { method: 'POST', url: '/v1/migrations/00000000-0000-4000-8000-000000000000/start' },
  ] as const;

  it('answers 401 UNAUTHENTICATED without a token, with a malformed one and with an unknown one', async () => {
    const before = await snapshot(h.orch);
    const variants: [string, Record<string, string>][] = [
      ['none', {}],
      ['basic', { authorization: 'Basic YWRtaW46YWRtaW4=' }],
      ['empty bearer', { authorization: 'Bearer ' }],
      ['two words', { authorization: 'Bearer tw_a tw_b' }],
      ['no scheme', { authorization: 'test-admin-token-0123456789' }],
      ['unknown', { authorization: 'Bearer tw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
      ['quote', { authorization: 'Bearer x"; drop table api_tokens; --' }],
    ];
    for (const route of protectedRoutes) {
      for (const [label, headers] of variants) {
        const res = await call(h.app, { ...route, token: null, headers, ...(route.method === 'POST' ? { body: {} } : {}) });
        expect(res.status, `${route.method} ${route.url} ${label}`).toBe(401);
        expect(res.body.error.code).toBe('UNAUTHENTICATED');
        expect(res.body.error.details).toEqual({ field: 'authorization' });
      }
    }
    expect(await snapshot(h.orch)).toEqual(before);
  });

  it('accepts the scheme name in any case', async () => {
    const res = await call(h.app, { method: 'GET', url: '/v1/migrations', token: null, headers: { authorization: `bearer ${viewer}` } });

    expect(res.status).toBe(200);
  });

  it('lets a viewer read but not act, patch, create or manage tokens (403 FORBIDDEN)', async () => {
    const m = await createMigration(h.app, 'viewed');
    expect((await call(h.app, { method: 'GET', url: '/v1/migrations', token: viewer })).status).toBe(200);
    expect((await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}`, token: viewer })).body.name).toBe('viewed');
    expect((await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}/events`, token: viewer })).body.items).toHaveLength(1);

    const before = await snapshot(h.orch);
    const denied = [
      { method: 'POST', url: `/v1/migrations/${m.id}/start`, required: 'operator' },
      { method: 'POST', url: `/v1/migrations/${m.id}/abort`, body: { reason: 'x' }, required: 'operator' },
      { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { ramp: { holdSeconds: 1 } } }, required: 'operator' },
      { method: 'POST', url: '/v1/migrations', body: ordersSpec('by-viewer'), required: 'admin' },
      { method: 'GET', url: '/v1/tokens', required: 'admin' },
      { method: 'POST', url: '/v1/tokens', body: { name: 'sneaky', role: 'admin' }, required: 'admin' },
      { method: 'POST', url: '/v1/tokens/bob-operator/revoke', required: 'admin' },
    ] as const;
    for (const d of denied) {
      const res = await call(h.app, { method: d.method, url: d.url, token: viewer, ...('body' in d ? { body: d.body } : {}) });
      expect(res.status, `${d.method} ${d.url}`).toBe(403);
      expect(res.body.error).toMatchObject({ code: 'FORBIDDEN', details: { required: d.required, role: 'viewer' } });
    }
    expect(await snapshot(h.orch)).toEqual(before);
  });

  it('lets an operator act and patch, as itself in the audit log, but not create migrations or tokens', async () => {
    const m = await createMigration(h.app, 'operated');

    const started = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start`, token: operator, body: { reason: 'window open' } });
    expect(started.status).toBe(200);
    expect(started.body.phase).toBe('prepare');
    const patched = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, token: operator, body: { spec: { backfill: { concurrency: 4 } } } });
    expect(patched.status).toBe(200);
    expect(patched.body.spec.backfill.concurrency).toBe(4);

    const before = await snapshot(h.orch);
    const create = await call(h.app, { method: 'POST', url: '/v1/migrations', token: operator, body: ordersSpec('by-operator') });
    expect(create.status).toBe(403);
    expect(create.body.error).toMatchObject({ code: 'FORBIDDEN', details: { required: 'admin', role: 'operator' } });
    for (const req of [
      { method: 'POST', url: '/v1/tokens', body: { name: 'escalate', role: 'admin' } },
      { method: 'GET', url: '/v1/tokens' },
      { method: 'POST', url: '/v1/tokens/carol-viewer/revoke' },
    ] as const) {
      const res = await call(h.app, { ...req, token: operator });
      expect(res.status, req.url).toBe(403);
      expect(res.body.error.details).toEqual({ required: 'admin', role: 'operator' });
    }
    expect(await snapshot(h.orch)).toEqual(before);

    const { rows } = await h.orch.query('select seq, actor, action, reason from migration_events where migration_id = $1 order by seq', [m.id]);
    expect(rows).toEqual([
      { seq: 1, actor: 'bootstrap-admin', action: 'create', reason: null },
      { seq: 2, actor: 'bob-operator', action: 'start', reason: 'window open' },
      { seq: 3, actor: 'bob-operator', action: 'patch', reason: null },
    ]);
  });

  it('lets an admin token do everything, as itself in the audit log', async () => {
    const created = await call(h.app, { method: 'POST', url: '/v1/migrations', token: admin, body: ordersSpec('administered') });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/start`, token: admin })).status).toBe(200);
    expect((await call(h.app, { method: 'PATCH', url: `/v1/migrations/${id}`, token: admin, body: { spec: { ramp: { holdSeconds: 10 } } } })).status).toBe(200);
    expect((await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/abort`, token: admin })).status).toBe(200);
    expect((await call(h.app, { method: 'GET', url: '/v1/tokens', token: admin })).status).toBe(200);
    expect((await call(h.app, { method: 'POST', url: '/v1/tokens', token: admin, body: { name: 'temp', role: 'viewer' } })).status).toBe(201);
    expect((await call(h.app, { method: 'POST', url: '/v1/tokens/temp/revoke', token: admin })).status).toBe(200);

    const events = await h.orch.query('select actor, action from migration_events where migration_id = $1 order by seq', [id]);
    expect(events.rows).toEqual([
      { actor: 'alice-admin', action: 'create' },
      { actor: 'alice-admin', action: 'start' },
      { actor: 'alice-admin', action: 'patch' },
      { actor: 'alice-admin', action: 'abort' },
    ]);
    const audit = await h.orch.query("select actor, action from audit_events where resource_id = 'temp' order by id");
    expect(audit.rows).toEqual([
      { actor: 'alice-admin', action: 'token.create' },
      { actor: 'alice-admin', action: 'token.revoke' },
    ]);
  });

  it('stops a revoked admin token at once, on every route', async () => {
    const secret = await createToken(h.app, 'leaked-admin', 'admin');
    expect((await call(h.app, { method: 'GET', url: '/v1/tokens', token: secret })).status).toBe(200);
    expect((await call(h.app, { method: 'POST', url: '/v1/tokens/leaked-admin/revoke', token: secret })).status).toBe(200);

    for (const route of protectedRoutes) {
      const res = await call(h.app, { ...route, token: secret, ...(route.method === 'POST' ? { body: {} } : {}) });
      expect(res.status, `${route.method} ${route.url}`).toBe(401);
      expect(res.body.error.code).toBe('UNAUTHENTICATED');
    }
  });
});
