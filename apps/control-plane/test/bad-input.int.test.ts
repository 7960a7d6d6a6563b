import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, createMigration, createToken, ordersSpec, snapshot, startHarness, type CallOptions, type CallResult, type Harness } from './support/harness.js';

/**
 * Every request here is refused with a documented 4xx and must leave the orchestrator database
 * exactly as it was: each one is followed by a full comparison of every orchestrator table.
 */
let h: Harness;
let baseline: Awaited<ReturnType<typeof snapshot>>;
let userTables: string[];
let draftId: string;
let brokenId: string;
let revokedToken: string;

async function tablesOfUserDb(): Promise<string[]> {
  const { rows } = await h.user.query<{ t: string }>("select tablename as t from pg_tables where schemaname = 'public' order by 1");
  return rows.map((r) => r.t);
}

beforeAll(async () => {
  h = await startHarness('bad_input');
  draftId = (await createMigration(h.app, 'valid-draft')).id;
  brokenId = (
    await createMigration(h.app, 'broken-draft', {
      source: { datasource: 'main', table: 'orders_gone', key: 'id' },
      mapping: { id: 'id', total_cents: 'total * 100', discount_cents: '0' },
      reverseMapping: { total: 'total_cents / 100' },
    })
  ).id;
  revokedToken = await createToken(h.app, 'revoked-admin', 'admin');
  const revoked = await call(h.app, { method: 'POST', url: '/v1/tokens/revoked-admin/revoke' });
  expect(revoked.status).toBe(200);
  baseline = await snapshot(h.orch);
  userTables = await tablesOfUserDb();
  expect(baseline.migrations).toHaveLength(2);
  expect(baseline.api_tokens).toHaveLength(1);
});

afterAll(async () => {
  await h?.close();
});

/** Sends the request, checks status and code, and that nothing in the orchestrator database changed. */
async function refused(options: CallOptions, status: number, code: string): Promise<CallResult> {
  const res = await call(h.app, options);
  expect(res.status, `${options.method} ${options.url}: ${res.text.slice(0, 300)}`).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe('string');
  expect(await snapshot(h.orch)).toEqual(baseline);
  return res;
}

function problemFields(res: CallResult): string[] {
  return (res.body.error.details.problems as { field: string }[]).map((p) => p.field);
}

const json = { 'content-type': 'application/json' };

describe('malformed bodies', () => {
  it('answers 400 MALFORMED_JSON for JSON that does not parse, on every kind of route', async () => {
    for (const [method, url] of [
      ['POST', '/v1/migrations'],
      ['POST', `/v1/migrations/${draftId}/start`],
      ['PATCH', `/v1/migrations/${draftId}`],
      ['POST', '/v1/tokens'],
    ] as const) {
      for (const body of ['{"name": "x",', "{'name': 'x'}", '{"spec": {}} trailing']) {
        const res = await refused({ method, url, body, headers: json }, 400, 'MALFORMED_JSON');
        expect(res.body.error.details).toEqual({ field: 'body' });
      }
    }
  });

  it('answers 400 MALFORMED_JSON for a prototype-polluting body', async () => {
    await refused({ method: 'POST', url: '/v1/migrations', body: '{"__proto__": {"admin": true}}', headers: json }, 400, 'MALFORMED_JSON');
    await refused({ method: 'POST', url: `/v1/migrations/${draftId}/start`, body: '{"constructor": {"prototype": {"x": 1}}}', headers: json }, 400, 'MALFORMED_JSON');
  });

  it('answers 415 UNSUPPORTED_MEDIA_TYPE for a body that is not JSON', async () => {
    const res = await refused({ method: 'POST', url: '/v1/migrations', body: '<spec/>', headers: { 'content-type': 'application/xml' } }, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(res.body.error.details).toEqual({ field: 'content-type' });
  });

  it('answers 413 PAYLOAD_TOO_LARGE for a body over 1 MiB', async () => {
    const huge = JSON.stringify({ ...ordersSpec('huge'), description: 'x'.repeat(1024 * 1024) });
    const res = await refused({ method: 'POST', url: '/v1/migrations', body: huge, headers: json }, 413, 'PAYLOAD_TOO_LARGE');
    expect(res.body.error.details).toEqual({ field: 'body', limitBytes: 1_048_576 });
    await refused({ method: 'POST', url: `/v1/migrations/${draftId}/start`, body: JSON.stringify({ reason: 'y'.repeat(1_100_000) }), headers: json }, 413, 'PAYLOAD_TOO_LARGE');
    await refused({ method: 'PATCH', url: `/v1/migrations/${draftId}`, body: JSON.stringify({ spec: {}, reason: 'z'.repeat(1_100_000) }), headers: json }, 413, 'PAYLOAD_TOO_LARGE');
  });
});

describe('schema violations', () => {
  it('answers 400 VALIDATION_FAILED naming every unknown field', async () => {
    const create = await refused(
      { method: 'POST', url: '/v1/migrations', body: { ...ordersSpec('extra'), owner: 'me', backfill: { turbo: true }, source: { datasource: 'main', table: 'orders', key: 'id', password: 'x' } } },
      400,
      'VALIDATION_FAILED',
    );
    const unknown = (create.body.error.details.problems as { field: string; problem: string }[]).filter((p) => p.problem === 'unknown field').map((p) => p.field);
    expect(unknown.sort()).toEqual(['body.backfill.turbo', 'body.owner', 'body.source.password']);
    expect(create.body.error.message).toContain('body.owner');

    const action = await refused({ method: 'POST', url: `/v1/migrations/${draftId}/start`, body: { force: true } }, 400, 'VALIDATION_FAILED');
    expect(action.body.error.details.problems).toEqual([{ field: 'body.force', problem: 'unknown field' }]);

    const patch = await refused({ method: 'PATCH', url: `/v1/migrations/${draftId}`, body: { spec: { ramp: { speed: 2 } }, dryRun: true } }, 400, 'VALIDATION_FAILED');
    expect(problemFields(patch).sort()).toEqual(['body.dryRun', 'body.spec.ramp.speed']);

    const token = await refused({ method: 'POST', url: '/v1/tokens', body: { name: 'x', role: 'viewer', expiresAt: '2030-01-01' } }, 400, 'VALIDATION_FAILED');
    expect(problemFields(token)).toEqual(['body.expiresAt']);
  });

  it('answers 400 VALIDATION_FAILED naming every field of the wrong type, without coercing', async () => {
    const create = await refused(
      { method: 'POST', url: '/v1/migrations', body: { ...ordersSpec('typed'), name: 5, syncMode: 'magic', backfill: { concurrency: '2' }, throttle: { enabled: 'yes' }, mapping: [] } },
      400,
      'VALIDATION_FAILED',
    );
    const fields = problemFields(create);
    for (const f of ['body.name', 'body.syncMode', 'body.backfill.concurrency', 'body.throttle.enabled', 'body.mapping']) expect(fields).toContain(f);

    const version = await refused({ method: 'POST', url: `/v1/migrations/${draftId}/start`, body: { expectedVersion: '1', reason: 7 } }, 400, 'VALIDATION_FAILED');
    expect(problemFields(version).sort()).toEqual(['body.expectedVersion', 'body.reason']);
    const zero = await refused({ method: 'POST', url: `/v1/migrations/${draftId}/start`, body: { expectedVersion: 0 } }, 400, 'VALIDATION_FAILED');
    expect(problemFields(zero)).toEqual(['body.expectedVersion']);
    const array = await refused({ method: 'POST', url: `/v1/migrations/${draftId}/start`, body: [1] }, 400, 'VALIDATION_FAILED');
    expect(problemFields(array)).toEqual(['body']);
    const noSpec = await refused({ method: 'PATCH', url: `/v1/migrations/${draftId}`, body: { expectedVersion: 1 } }, 400, 'VALIDATION_FAILED');
    expect(noSpec.body.error.details.problems).toEqual([{ field: 'body.spec', problem: 'is required' }]);
    const outOfRange = await refused({ method: 'PATCH', url: `/v1/migrations/${draftId}`, body: { spec: { backfill: { concurrency: 0 }, throttle: { maxConnectionsUsedRatio: 2 } } } }, 400, 'VALIDATION_FAILED');
    expect(problemFields(outOfRange).sort()).toEqual(['body.spec.backfill.concurrency', 'body.spec.throttle.maxConnectionsUsedRatio']);
  });

  it('answers 400 VALIDATION_FAILED naming every missing required field', async () => {
    const res = await refused({ method: 'POST', url: '/v1/migrations', body: { name: 'bare', source: { datasource: 'main', table: 'orders' } } }, 400, 'VALIDATION_FAILED');
    const missing = (res.body.error.details.problems as { field: string; problem: string }[]).filter((p) => p.problem === 'is required').map((p) => p.field);
    expect(missing.sort()).toEqual(['body.mapping', 'body.source.key', 'body.syncMode', 'body.target']);
  });

  it('answers 400 naming the field for SQL metacharacters in identifiers, and touches no user table', async () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ['table', { source: { datasource: 'main', table: 'orders"; drop table orders_v2; --', key: 'id' } }, 'body.source.table'],
      ['key', { source: { datasource: 'main', table: 'orders', key: 'id)' } }, 'body.source.key'],
      ['key list', { target: { datasource: 'main', table: 'orders_v2', key: ['id', 'x; drop'] } }, 'body.target.key[1]'],
      ['schema', { target: { datasource: 'main', schema: 'public.orders_v2', table: 'orders_v2', key: 'id' } }, 'body.target.schema'],
      ['datasource', { source: { datasource: "main' or '1'='1", table: 'orders', key: 'id' } }, 'body.source.datasource'],
      ['mapping key', { mapping: { id: 'id', 'total"cents': 'total' } }, 'body.mapping.total"cents'],
      ['long identifier', { source: { datasource: 'main', table: 't'.repeat(64), key: 'id' } }, 'body.source.table'],
    ];
    for (const [label, overrides, field] of cases) {
      const res = await refused({ method: 'POST', url: '/v1/migrations', body: ordersSpec(`meta-${label.replace(' ', '-')}`, overrides) }, 400, 'VALIDATION_FAILED');
      expect(problemFields(res), label).toContain(field);
    }
    const patch = await refused(
      { method: 'PATCH', url: `/v1/migrations/${draftId}`, body: { spec: { mapping: { 'id"); drop table orders; --': 'id' } } } },
      400,
      'VALIDATION_FAILED',
    );
    expect(problemFields(patch)).toEqual(['body.spec.mapping.id"); drop table orders; --']);
    expect(await tablesOfUserDb()).toEqual(userTables);
  });

  it('answers 400 for a migration id that is not a uuid and 404 for an unknown route', async () => {
    const res = await refused({ method: 'POST', url: '/v1/migrations/1%20or%201=1/start' }, 400, 'VALIDATION_FAILED');
    expect(res.body.error.details.field).toBe('params.id');
    await refused({ method: 'POST', url: `/v1/migrations/${draftId}/explode` }, 404, 'ROUTE_NOT_FOUND');
    await refused({ method: 'DELETE', url: `/v1/migrations/${draftId}` }, 404, 'ROUTE_NOT_FOUND');
  });
});

describe('specs that cannot work', () => {
  it('answers 422 INVALID_SPEC for an unknown datasource at create', async () => {
    const res = await refused(
      { method: 'POST', url: '/v1/migrations', body: ordersSpec('elsewhere', { syncMode: 'application', target: { datasource: 'analytics', table: 'orders_v2', key: 'id' } }) },
      422,
      'INVALID_SPEC',
    );
    expect(problemFields(res)).toEqual(['target.datasource']);
  });

  it('answers 422 INVALID_SPEC for a missing table and a missing column at start, from the live catalog', async () => {
    const res = await refused({ method: 'POST', url: `/v1/migrations/${brokenId}/start`, body: { expectedVersion: 1 } }, 422, 'INVALID_SPEC');
    expect(res.body.error.details.problems).toEqual([
      { field: 'source.table', problem: 'table public.orders_gone does not exist in datasource "main"' },
      { field: 'mapping.discount_cents', problem: 'column "discount_cents" does not exist in target table public.orders_v2' },
    ]);
  });
});

describe('credentials', () => {
  const mutations = (): CallOptions[] => [
    { method: 'POST', url: '/v1/migrations', body: ordersSpec('unauthenticated') },
    { method: 'POST', url: `/v1/migrations/${draftId}/start`, body: { expectedVersion: 1 } },
    { method: 'PATCH', url: `/v1/migrations/${draftId}`, body: { spec: { ramp: { holdSeconds: 1 } } } },
    { method: 'POST', url: '/v1/tokens', body: { name: 'intruder', role: 'admin' } },
    { method: 'POST', url: '/v1/tokens/revoked-admin/revoke' },
  ];

  it('answers 401 UNAUTHENTICATED for a missing, invalid or revoked token', async () => {
    for (const req of mutations()) {
      for (const token of [null, 'not a token', 'tw_unknownunknownunknownunknownunknownunknown', revokedToken]) {
        const res = await refused({ ...req, token, headers: { 'idempotency-key': 'k' } }, 401, 'UNAUTHENTICATED');
        expect(res.body.error.details).toEqual({ field: 'authorization' });
      }
    }
  });
});
