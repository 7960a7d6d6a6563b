import { SPEC_DEFAULTS, allowedActions, replayEvents, type Phase, type Status } from '@tideway/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, ordersSpec, startHarness, type Harness, type MigrationResource } from './support/harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** What the API says an operator may do in a state: the table's actions minus Tideway's own `fail`. */
function operatorActions(phase: Phase, status: Status): string[] {
  return allowedActions({ phase, status }).filter((a) => a !== 'fail');
}

let h: Harness;

beforeAll(async () => {
  h = await startHarness('migrations_api');
});

afterAll(async () => {
  await h?.close();
});

async function events(id: string): Promise<{ seq: number; actor: string; action: string; reason: string | null; details: Record<string, unknown> }[]> {
  const { rows } = await h.orch.query('select seq, actor, action, reason, details from migration_events where migration_id = $1 order by seq', [id]);
  return rows as never;
}

async function stored(id: string): Promise<{ phase: string; status: string; version: number; spec: Record<string, unknown> }> {
  const { rows } = await h.orch.query('select phase, status, version, spec from migrations where id = $1', [id]);
  if (!rows[0]) throw new Error(`no migration ${id}`);
  return rows[0] as never;
}

function withoutThrottle(spec: Record<string, unknown>): Record<string, unknown> {
  const { throttle: _throttle, ...rest } = spec;
  return rest;
}

describe('POST /v1/migrations', () => {
  it('creates a draft and answers 201 with the resource, every spec default resolved', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/v1/migrations',
      // Without ordersSpec's unguarded throttle: this test is about the defaults.
      body: withoutThrottle(ordersSpec('create-shape', { description: 'cents', backfill: { maxChunkRows: 20_000 }, ramp: { holdSeconds: 60 } })),
    });

    expect(res.status).toBe(201);
    const m = res.body as MigrationResource;
    expect(Object.keys(m).sort()).toEqual(
      ['allowedActions', 'createdAt', 'flags', 'gates', 'id', 'installation', 'name', 'phase', 'phaseEnteredAt', 'progress', 'spec', 'status', 'updatedAt', 'version'].sort(),
    );
    expect(m.id).toMatch(UUID);
    // The flag names the SDK reads: the installation (the orchestrator database's id) and the name.
    expect(m.installation).toMatch(/^[a-z0-9]{8}$/);
    const base = `tideway.${m.installation}.create-shape`;
    expect(m.flags).toEqual({ dualWrite: `${base}.dual-write`, shadowRead: `${base}.shadow-read`, readNew: `${base}.read-new`, writeNew: `${base}.write-new` });
    expect(m).toMatchObject({ name: 'create-shape', phase: 'draft', status: 'active', version: 1, progress: {}, gates: [] });
    expect(m.allowedActions).toEqual(['start', 'abort']);
    expect(m.spec).toEqual({
      name: 'create-shape',
      description: 'cents',
      source: { datasource: 'main', schema: 'public', table: 'orders', key: ['id'] },
      target: { datasource: 'main', schema: 'public', table: 'orders_v2', key: ['id'] },
      mapping: { id: 'id', total_cents: 'total * 100' },
      syncMode: 'trigger',
      reverseMapping: { total: 'total_cents / 100' },
      rollbackAfterWriteCutover: true,
      backfill: { ...SPEC_DEFAULTS.backfill, maxChunkRows: 20_000 },
      throttle: SPEC_DEFAULTS.throttle,
      shadowRead: SPEC_DEFAULTS.shadowRead,
      abortCriteria: SPEC_DEFAULTS.abortCriteria,
      ramp: { ...SPEC_DEFAULTS.ramp, holdSeconds: 60 },
      cleanup: SPEC_DEFAULTS.cleanup,
    });
    for (const field of ['createdAt', 'updatedAt', 'phaseEnteredAt'] as const) {
      expect(new Date(m[field]).toISOString()).toBe(m[field]);
      expect(Math.abs(Date.now() - Date.parse(m[field]))).toBeLessThan(60_000);
    }
    expect(m.updatedAt).toBe(m.createdAt);

    const row = await stored(m.id);
    expect(row).toMatchObject({ phase: 'draft', status: 'active', version: 1 });
    expect(row.spec).toEqual(m.spec);
    // The create converged the migration's flags in its own transaction: all four made, at 0 %.
    const flagCreated = (flag: string) => ({ kind: 'flags', action: 'created', object: `flag ${flag}`, detail: 'rollout 0 %' });
    expect(await events(m.id)).toEqual([
      { seq: 1, actor: 'bootstrap-admin', action: 'create', reason: null, details: { converged: [m.flags.dualWrite, m.flags.shadowRead, m.flags.readNew, m.flags.writeNew].map(flagCreated) } },
    ]);
  });

  it('answers 409 NAME_TAKEN for a name in use and creates nothing', async () => {
    await createMigration(h.app, 'dup-name');
    const res = await call(h.app, { method: 'POST', url: '/v1/migrations', body: ordersSpec('dup-name', { syncMode: 'application' }) });

    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'NAME_TAKEN', details: { field: 'name', name: 'dup-name' } });
    const { rows } = await h.orch.query("select count(*)::int as n from migrations where name = 'dup-name'");
    expect(rows[0]).toEqual({ n: 1 });
  });

  it('answers 422 INVALID_SPEC naming both unknown datasources at once', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/v1/migrations',
      body: ordersSpec('unknown-ds', {
        // application sync: trigger sync across datasources is a problem of its own
        syncMode: 'application',
        source: { datasource: 'warehouse', table: 'orders', key: 'id' },
        target: { datasource: 'archive', table: 'orders_v2', key: 'id' },
      }),
    });

    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('INVALID_SPEC');
    const problems = res.body.error.details.problems as { field: string; problem: string }[];
    expect(problems.map((p) => p.field)).toEqual(['source.datasource', 'target.datasource']);
    expect(problems[0]?.problem).toContain('"warehouse"');
    expect(problems[1]?.problem).toContain('"archive"');
    expect(problems[0]?.problem).toContain('configured: main');
    const { rows } = await h.orch.query("select count(*)::int as n from migrations where name = 'unknown-ds'");
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('answers 422 INVALID_SPEC listing every incoherent field at once', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/v1/migrations',
      body: ordersSpec('incoherent', { mapping: { total_cents: 'total * 100' }, ramp: { steps: [10, 5, 50] } }),
    });

    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('INVALID_SPEC');
    expect((res.body.error.details.problems as { field: string }[]).map((p) => p.field).sort()).toEqual(['mapping.id', 'ramp.steps', 'ramp.steps[1]']);
  });
});

describe('GET /v1/migrations/:id', () => {
  it('answers the same resource as create, with the gates of the phase', async () => {
    const created = await createMigration(h.app, 'get-one');
    const res = await call(h.app, { method: 'GET', url: `/v1/migrations/${created.id}` });

    expect(res.status).toBe(200);
    expect(res.body).toEqual(created);
  });

  it('answers 404 MIGRATION_NOT_FOUND for an unknown uuid', async () => {
    const res = await call(h.app, { method: 'GET', url: `/v1/migrations/${UNKNOWN_ID}` });

    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'MIGRATION_NOT_FOUND', details: { migrationId: UNKNOWN_ID } });
  });

  it('answers 400 VALIDATION_FAILED for an id that is not a uuid', async () => {
    const res = await call(h.app, { method: 'GET', url: '/v1/migrations/not-a-uuid' });

    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'params.id' } });
  });
});

describe('action routes', () => {
  it('walks start → pause → resume → advance → rollback → abort, with and without a body', async () => {
    const m = await createMigration(h.app, 'walk');

    const started = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start` });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ phase: 'prepare', status: 'active', version: 2 });
    expect(started.body.allowedActions).toEqual(operatorActions('prepare', 'active'));
    const clocks = await h.orch.query('select phase_entered_at > created_at as moved from migrations where id = $1', [m.id]);
    expect(clocks.rows[0]).toEqual({ moved: true });

    const paused = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/pause`, body: { expectedVersion: 2, reason: 'lunch' } });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ phase: 'prepare', status: 'paused', version: 3 });
    expect(paused.body.allowedActions).toEqual(operatorActions('prepare', 'paused'));
    // Pausing changes no phase, so the phase clock keeps running.
    expect(paused.body.phaseEnteredAt).toBe(started.body.phaseEnteredAt);

    const resumed = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/resume`, body: {} });
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ phase: 'prepare', status: 'active', version: 4 });

    const advanced = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance`, body: { reason: 'catalog ok' } });
    expect(advanced.status).toBe(200);
    expect(advanced.body).toMatchObject({ phase: 'dual_write', status: 'active', version: 5 });
    expect(advanced.body.allowedActions).toEqual(operatorActions('dual_write', 'active'));

    const rolledBack = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/rollback` });
    expect(rolledBack.status).toBe(200);
    expect(rolledBack.body).toMatchObject({ phase: 'prepare', status: 'active', version: 6 });

    const aborted = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/abort`, body: { expectedVersion: 6, reason: 'wrong table' } });
    expect(aborted.status).toBe(200);
    expect(aborted.body).toMatchObject({ phase: 'prepare', status: 'aborted', version: 7, allowedActions: [] });

    expect(await stored(m.id)).toMatchObject({ phase: 'prepare', status: 'aborted', version: 7 });
    const log = await events(m.id);
    expect(log.map((e) => [e.seq, e.action, e.actor, e.reason, e.details['version']])).toEqual([
      [1, 'create', 'bootstrap-admin', null, undefined],
      [2, 'start', 'bootstrap-admin', null, 2],
      [3, 'pause', 'bootstrap-admin', 'lunch', 3],
      [4, 'resume', 'bootstrap-admin', null, 4],
      [5, 'advance', 'bootstrap-admin', 'catalog ok', 5],
      [6, 'rollback', 'bootstrap-admin', null, 6],
      [7, 'abort', 'bootstrap-admin', 'wrong table', 7],
    ]);
    expect(log[1]?.details['actions']).toContain('entry:prepare:catalog-check');
  });

  it('holds an application-sync migration in dual_write until the dual-write flag has had time to reach every SDK instance', async () => {
    const created = await call(h.app, { method: 'POST', url: '/v1/migrations', body: ordersSpec('propagation', { syncMode: 'application' }) });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    for (const action of ['start', 'advance']) expect((await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/${action}` })).status).toBe(200);
    const refused = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/advance` });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('GATE_NOT_MET');
    const gates = refused.body.error.details.gates as { name: string; message: string; observed: Record<string, unknown> }[];
    expect(gates.map((g) => g.name)).toEqual(['dual-write-propagated']);
    expect(gates[0]?.observed).toMatchObject({ requiredSeconds: 10 });
    expect(gates[0]?.message).toMatch(/waiting for every application instance to see the dual-write flag: on \d+ of 10 s/);
    expect(await stored(id)).toMatchObject({ phase: 'dual_write' });
    // An operator who knows the applications' refresh interval may shorten it.
    expect((await call(h.app, { method: 'PATCH', url: `/v1/migrations/${id}`, body: { spec: { backfill: { flagPropagationSeconds: 0 } } } })).status).toBe(200);
    const advanced = await call(h.app, { method: 'POST', url: `/v1/migrations/${id}/advance` });
    expect(advanced.status, JSON.stringify(advanced.body)).toBe(200);
    expect(advanced.body.phase).toBe('backfill');
  });

  it('aborts a draft', async () => {
    const m = await createMigration(h.app, 'abort-draft');
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/abort` });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ phase: 'draft', status: 'aborted', version: 2, allowedActions: [] });
  });

  it('answers 409 INVALID_TRANSITION with phase, status, action and the allowed actions', async () => {
    const m = await createMigration(h.app, 'bad-transition');
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/pause` });

    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({
      code: 'INVALID_TRANSITION',
      details: { phase: 'draft', status: 'active', action: 'pause', allowed: ['start', 'abort'] },
    });

    await act(h.app, m.id, 'start');
    await act(h.app, m.id, 'pause');
    const advance = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance`, body: { reason: 'x' } });
    expect(advance.status).toBe(409);
    expect(advance.body.error.details).toEqual({ phase: 'prepare', status: 'paused', action: 'advance', allowed: operatorActions('prepare', 'paused') });
    expect(advance.body.error.details.allowed).not.toContain('fail');

    await act(h.app, m.id, 'abort');
    for (const action of ['start', 'advance', 'pause', 'resume', 'abort', 'rollback']) {
      const r = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/${action}` });
      expect(r.status).toBe(409);
      expect(r.body.error.details).toEqual({ phase: 'prepare', status: 'aborted', action, allowed: [] });
    }
    expect(await stored(m.id)).toMatchObject({ phase: 'prepare', status: 'aborted', version: 4 });
    expect(await events(m.id)).toHaveLength(4);
  });

  it('answers 409 VERSION_CONFLICT for a stale expectedVersion and changes nothing', async () => {
    const m = await createMigration(h.app, 'stale');
    await act(h.app, m.id, 'start');
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/pause`, body: { expectedVersion: 1 } });

    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'VERSION_CONFLICT', details: { migrationId: m.id, expectedVersion: 1, actualVersion: 2 } });
    expect(await stored(m.id)).toMatchObject({ phase: 'prepare', status: 'active', version: 2 });
    expect(await events(m.id)).toHaveLength(2);
  });

  it('answers 404 MIGRATION_NOT_FOUND for an action on an unknown migration', async () => {
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${UNKNOWN_ID}/start` });

    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'MIGRATION_NOT_FOUND', details: { migrationId: UNKNOWN_ID } });
  });
});

describe('start checks the live catalog', () => {
  it('answers 422 INVALID_SPEC with a missing table, a key that is not unique and a missing target column at once; stays in draft', async () => {
    const m = await createMigration(h.app, 'broken-catalog', {
      source: { datasource: 'main', table: 'no_such_table', key: 'id' },
      target: { datasource: 'main', table: 'orders_nokey', key: 'id' },
      mapping: { id: 'id', total_cents: 'total * 100' },
      reverseMapping: { total: 'total_cents / 100' },
    });
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start` });

    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('INVALID_SPEC');
    const problems = res.body.error.details.problems as { field: string; problem: string }[];
    expect(problems.map((p) => p.field)).toEqual(['source.table', 'target.key', 'mapping.total_cents']);
    expect(problems[0]?.problem).toContain('public.no_such_table does not exist');
    expect(problems[1]?.problem).toContain('neither the primary key nor a unique index');
    expect(problems[2]?.problem).toContain('column "total_cents" does not exist');

    const after = await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}` });
    expect(after.body).toMatchObject({ phase: 'draft', status: 'active', version: 1 });
    expect((await events(m.id)).map((e) => e.action)).toEqual(['create']);
  });

  it('refuses a key whose unique index allows NULL', async () => {
    const m = await createMigration(h.app, 'nullable-key', {
      target: { datasource: 'main', table: 'orders_v2_nullable_unique', key: 'id' },
    });
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start` });

    expect(res.status).toBe(422);
    expect(res.body.error.details.problems).toEqual([{ field: 'target.key', problem: 'key column(s) id allow NULL' }]);
    expect(await stored(m.id)).toMatchObject({ phase: 'draft', version: 1 });
  });

  it('refuses a key column that does not exist', async () => {
    const m = await createMigration(h.app, 'missing-key-col', {
      source: { datasource: 'main', table: 'orders', key: 'order_id' },
      rollbackAfterWriteCutover: false,
    });
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/start` });

    expect(res.status).toBe(422);
    expect(res.body.error.details.problems).toEqual([{ field: 'source.key', problem: 'column(s) order_id do not exist in public.orders' }]);
  });
});

describe('PATCH /v1/migrations/:id', () => {
  it('changes tunables after start and audits the changed field names', async () => {
    const m = await createMigration(h.app, 'tune');
    await act(h.app, m.id, 'start');
    const res = await call(h.app, {
      method: 'PATCH',
      url: `/v1/migrations/${m.id}`,
      body: { spec: { backfill: { maxChunkRows: 10_000 }, ramp: { holdSeconds: 30 } }, expectedVersion: 2, reason: 'db is hot' },
    });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ phase: 'prepare', status: 'active', version: 3 });
    expect(res.body.spec.backfill).toEqual({ ...SPEC_DEFAULTS.backfill, maxChunkRows: 10_000 });
    expect(res.body.spec.ramp).toEqual({ ...SPEC_DEFAULTS.ramp, holdSeconds: 30 });
    expect(res.body.spec.source).toEqual({ datasource: 'main', schema: 'public', table: 'orders', key: ['id'] });

    const row = await stored(m.id);
    expect(row.version).toBe(3);
    expect((row.spec['backfill'] as Record<string, unknown>)['maxChunkRows']).toBe(10_000);
    const last = (await events(m.id)).at(-1);
    expect(last).toEqual({ seq: 3, actor: 'bootstrap-admin', action: 'patch', reason: 'db is hot', details: { changed: ['backfill.maxChunkRows', 'ramp.holdSeconds'], version: 3 } });
  });

  it('treats the same mapping in another key order as no change', async () => {
    const m = await createMigration(h.app, 'same-mapping');
    await act(h.app, m.id, 'start');
    const res = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { mapping: { total_cents: 'total * 100', id: 'id' } } } });

    expect(res.status).toBe(200);
    expect(res.body.version).toBe(2);
    expect((await events(m.id)).map((e) => e.action)).toEqual(['create', 'start']);
  });

  it('answers 409 IMMUTABLE_FIELD naming source, target or mapping after start', async () => {
    const m = await createMigration(h.app, 'frozen');
    await act(h.app, m.id, 'start');
    const attempts: [string, Record<string, unknown>][] = [
      ['source', { source: { datasource: 'main', table: 'orders', key: ['id'], schema: 'other' } }],
      ['target', { target: { datasource: 'main', table: 'orders_v3', key: 'id' } }],
      ['mapping', { mapping: { id: 'id', total_cents: 'total' } }],
      ['syncMode', { syncMode: 'application' }],
    ];
    for (const [field, spec] of attempts) {
      const res = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec } });
      expect(res.status, field).toBe(409);
      expect(res.body.error.code).toBe('IMMUTABLE_FIELD');
      expect(res.body.error.details.field).toBe(field);
      expect(res.body.error.details.reason).toContain('started');
    }
    expect(await stored(m.id)).toMatchObject({ version: 2 });
    expect(await events(m.id)).toHaveLength(2);
  });

  it('lets a draft change source, target and mapping, but never the name', async () => {
    const m = await createMigration(h.app, 'draft-edit');
    const ok = await call(h.app, {
      method: 'PATCH',
      url: `/v1/migrations/${m.id}`,
      body: { spec: { mapping: { id: 'id', total_cents: 'total::bigint * 100' } } },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.spec.mapping).toEqual({ id: 'id', total_cents: 'total::bigint * 100' });
    expect((await events(m.id)).at(-1)?.details).toEqual({ changed: ['mapping'], version: 2 });

    const rename = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { name: 'renamed' } } });
    expect(rename.status).toBe(409);
    expect(rename.body.error).toMatchObject({ code: 'IMMUTABLE_FIELD', details: { field: 'name' } });
    await act(h.app, m.id, 'start');
    const after = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { name: 'renamed' } } });
    expect(after.status).toBe(409);
    expect(after.body.error.details.field).toBe('name');
    expect(await stored(m.id)).toMatchObject({ version: 3 });
  });

  it('answers 422 INVALID_SPEC for an unknown datasource or incoherent tunables, and 409 VERSION_CONFLICT for a stale version', async () => {
    const m = await createMigration(h.app, 'patch-errors');
    const ds = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { syncMode: 'application', source: { datasource: 'nope', table: 'orders', key: 'id' } } } });
    expect(ds.status).toBe(422);
    expect(ds.body.error.details.problems).toEqual([{ field: 'source.datasource', problem: 'unknown datasource "nope"; configured: main' }]);

    const incoherent = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { backfill: { minChunkRows: 5000 } } } });
    expect(incoherent.status).toBe(422);
    expect(incoherent.body.error.details.problems).toEqual([{ field: 'backfill.initialChunkRows', problem: 'must satisfy minChunkRows <= initialChunkRows <= maxChunkRows' }]);

    const stale = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { ramp: { holdSeconds: 1 } }, expectedVersion: 7 } });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: 'VERSION_CONFLICT', details: { expectedVersion: 7, actualVersion: 1 } });

    const missing = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${UNKNOWN_ID}`, body: { spec: { ramp: { holdSeconds: 1 } } } });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('MIGRATION_NOT_FOUND');

    expect(await stored(m.id)).toMatchObject({ version: 1 });
    expect(await events(m.id)).toHaveLength(1);
  });
});

describe('GET /v1/migrations/:id/events', () => {
  it('pages through the audit log oldest first', async () => {
    const m = await createMigration(h.app, 'log');
    await act(h.app, m.id, 'start', { reason: 'go' });
    await act(h.app, m.id, 'pause');
    await act(h.app, m.id, 'resume');
    const patched = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { throttle: { maxLockWaiters: 2 } } } });
    expect(patched.status).toBe(200);

    const seen: { seq: number; action: string }[] = [];
    const pages: number[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/v1/migrations/${m.id}/events?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await call(h.app, { method: 'GET', url });
      expect(res.status).toBe(200);
      pages.push(res.body.items.length);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor !== null);

    expect(pages).toEqual([2, 2, 1]);
    expect(seen.map((e) => [e.seq, e.action])).toEqual([
      [1, 'create'],
      [2, 'start'],
      [3, 'pause'],
      [4, 'resume'],
      [5, 'patch'],
    ]);
    expect(seen[1]).toMatchObject({ actor: 'bootstrap-admin', fromPhase: 'draft', fromStatus: 'active', toPhase: 'prepare', toStatus: 'active', reason: 'go' });
    expect(seen[0]).toMatchObject({ fromPhase: null, fromStatus: null, toPhase: 'draft', toStatus: 'active' });
    expect(seen[4]).toMatchObject({ fromPhase: 'prepare', toPhase: 'prepare', details: { changed: ['throttle.maxLockWaiters'], version: 5 } });
    for (const e of seen as unknown as { at: string }[]) expect(new Date(e.at).toISOString()).toBe(e.at);

    const all = await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}/events` });
    expect(all.body.items).toEqual(seen);
    expect(all.body.nextCursor).toBeNull();
  });

  it('answers 404 for an unknown migration and 400 for a bad cursor', async () => {
    const missing = await call(h.app, { method: 'GET', url: `/v1/migrations/${UNKNOWN_ID}/events` });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('MIGRATION_NOT_FOUND');

    const m = await createMigration(h.app, 'log-cursor');
    const bad = await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}/events?cursor=bm9wZQ` });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'querystring.cursor' } });
  });
});

describe('replay', () => {
  it('rebuilds the stored phase and status from the events written through the API', async () => {
    const m = await createMigration(h.app, 'replayed');
    const steps: [string, Phase, Status][] = [
      ['start', 'prepare', 'active'],
      ['advance', 'dual_write', 'active'],
      ['pause', 'dual_write', 'paused'],
      ['rollback', 'prepare', 'paused'],
      ['resume', 'prepare', 'active'],
      ['advance', 'dual_write', 'active'],
      ['advance', 'backfill', 'active'],
      ['rollback', 'dual_write', 'active'],
      ['pause', 'dual_write', 'paused'],
      ['abort', 'dual_write', 'aborted'],
    ];
    for (const [i, [action, phase, status]] of steps.entries()) {
      const r = await act(h.app, m.id, action);
      expect([action, r.phase, r.status]).toEqual([action, phase, status]);
      if (i === 2) {
        // A patch event in the middle changes no state and must not break the replay.
        const patched = await call(h.app, { method: 'PATCH', url: `/v1/migrations/${m.id}`, body: { spec: { ramp: { holdSeconds: 5 } } } });
        expect(patched.status).toBe(200);
      }
    }

    const res = await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}/events?limit=1000` });
    expect(res.body.items).toHaveLength(steps.length + 2);
    const state = replayEvents(res.body.items);
    const row = await stored(m.id);
    expect(state).toEqual({ phase: 'dual_write', status: 'aborted' });
    expect(state).toEqual({ phase: row.phase, status: row.status });
    expect(row.version).toBe(steps.length + 2);
  });
});
