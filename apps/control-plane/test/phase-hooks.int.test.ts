import { DependencyUnavailableError, type GateResult } from '@tideway/core';
import type { MigrationContext } from '@tideway/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, startHarness, type Harness } from './support/harness.js';

/** Migration name → the error its next hook run throws (set by a test, consumed once). */
const failNext = new Map<string, () => Error>();
/** `<action>:<migration>` for every rollback action that ran, in order. */
const rollbacksRan: string[] = [];

function takeFailure(ctx: MigrationContext): void {
  const make = failNext.get(ctx.migration.name);
  if (!make) return;
  failNext.delete(ctx.migration.name);
  throw make();
}

let h: Harness;

beforeAll(async () => {
  h = await startHarness('phase_hooks', {
    configureHooks: (hooks, engine) => {
      // A real gate over the user database: the target holds at least as many rows as the source.
      hooks.addGate('prepare', {
        name: 'rows-copied',
        async evaluate(ctx): Promise<GateResult> {
          const { source, target } = ctx.migration.spec;
          const count = (schema: string, table: string) =>
            engine.datasources.withClient(source.datasource, async (client) => {
              const { rows } = await client.query<{ n: number }>(`select count(*)::int as n from "${schema}"."${table}"`);
              return rows[0]?.n ?? 0;
            });
          const [sourceRows, targetRows] = await Promise.all([count(source.schema, source.table), count(target.schema, target.table)]);
          return { name: 'rows-copied', passed: targetRows >= sourceRows, message: `${targetRows} of ${sourceRows} rows copied`, observed: { sourceRows, targetRows } };
        },
      });
      hooks.addGate('prepare', { name: 'operator-ready', evaluate: () => ({ name: 'operator-ready', passed: true, message: 'ready', observed: { checks: 1 } }) });

      // An entry action that writes inside the transition's transaction before it may fail.
      hooks.addEntryAction('dual_write', {
        name: 'install-trigger',
        async run(ctx) {
          await ctx.db
            .insertInto('audit_events')
            .values({ actor: ctx.actor, action: 'test.install-trigger', resource_type: 'migration', resource_id: ctx.migration.id, details: '{}' })
            .execute();
          takeFailure(ctx);
        },
      });
      for (const phase of ['prepare', 'dual_write', 'backfill'] as const) {
        hooks.addRollbackAction(phase, {
          name: `undo-${phase}`,
          run(ctx) {
            takeFailure(ctx);
            rollbacksRan.push(`undo-${phase}:${ctx.migration.name}`);
          },
        });
      }
    },
  });
  await h.user.query('create table gate_src (id bigint primary key, total int); create table gate_dst (id bigint primary key, total_cents bigint)');
  await h.user.query('insert into gate_src select g, g * 10 from generate_series(1, 3) g');
});

afterAll(async () => {
  await h?.close();
});

async function state(id: string): Promise<{ phase: string; status: string; version: number; events: number }> {
  const { rows } = await h.orch.query(
    'select phase, status, version, (select count(*)::int from migration_events e where e.migration_id = m.id) as events from migrations m where id = $1',
    [id],
  );
  return rows[0] as never;
}

async function installRows(id: string): Promise<number> {
  const { rows } = await h.orch.query("select count(*)::int as n from audit_events where action = 'test.install-trigger' and resource_id = $1", [id]);
  return (rows[0] as { n: number }).n;
}

const gateSpec = {
  source: { datasource: 'main', table: 'gate_src', key: 'id' },
  target: { datasource: 'main', table: 'gate_dst', key: 'id' },
};

describe('gates', () => {
  it('answers 409 GATE_NOT_MET with the failing gates and their observed numbers until they hold', async () => {
    const m = await createMigration(h.app, 'gated', gateSpec);
    await act(h.app, m.id, 'start');

    const refused = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance`, body: { expectedVersion: 2 } });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('GATE_NOT_MET');
    expect(refused.body.error.message).toContain('rows-copied (0 of 3 rows copied)');
    expect(refused.body.error.details).toEqual({
      phase: 'prepare',
      gates: [{ name: 'rows-copied', passed: false, message: '0 of 3 rows copied', observed: { sourceRows: 3, targetRows: 0 } }],
    });
    expect(await state(m.id)).toEqual({ phase: 'prepare', status: 'active', version: 2, events: 2 });

    // The resource shows every gate of the phase, evaluated now.
    const view = await call(h.app, { method: 'GET', url: `/v1/migrations/${m.id}` });
    expect(view.body.gates).toEqual([
      { name: 'rows-copied', passed: false, message: '0 of 3 rows copied', observed: { sourceRows: 3, targetRows: 0 } },
      { name: 'operator-ready', passed: true, message: 'ready', observed: { checks: 1 } },
    ]);

    await h.user.query('insert into gate_dst select id, total * 100 from gate_src where id <= 2');
    const still = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance` });
    expect(still.status).toBe(409);
    expect(still.body.error.details.gates[0].observed).toEqual({ sourceRows: 3, targetRows: 2 });

    await h.user.query('insert into gate_dst select id, total * 100 from gate_src where id = 3');
    const advanced = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance`, body: { expectedVersion: 2 } });
    expect(advanced.status).toBe(200);
    expect(advanced.body).toMatchObject({ phase: 'dual_write', status: 'active', version: 3, gates: [] });

    const { rows } = await h.orch.query<{ details: { gates: unknown[]; actions: string[]; version: number } }>(
      "select details from migration_events where migration_id = $1 and action = 'advance'",
      [m.id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.details.gates).toEqual([
      { name: 'rows-copied', passed: true, message: '3 of 3 rows copied', observed: { sourceRows: 3, targetRows: 3 } },
      { name: 'operator-ready', passed: true, message: 'ready', observed: { checks: 1 } },
    ]);
    expect(rows[0]?.details.actions).toContain('entry:dual_write:install-trigger');
    expect(rows[0]?.details.version).toBe(3);
  });
});

describe('phase actions', () => {
  it('leaves the state, the audit log and the action’s own writes untouched when an entry action throws', async () => {
    const m = await createMigration(h.app, 'entry-fails');
    await act(h.app, m.id, 'start');

    failNext.set('entry-fails', () => new DependencyUnavailableError('trigger installer', 'lock_timeout on orders'));
    const unavailable = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance` });
    expect(unavailable.status).toBe(503);
    expect(unavailable.body.error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', details: { dependency: 'trigger installer' } });
    expect(await state(m.id)).toEqual({ phase: 'prepare', status: 'active', version: 2, events: 2 });
    expect(await installRows(m.id)).toBe(0);

    failNext.set('entry-fails', () => new Error('connection to 10.0.0.7 refused: password for "app"'));
    const internal = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance` });
    expect(internal.status).toBe(500);
    expect(internal.body.error.code).toBe('INTERNAL');
    expect(internal.body.error.message).toBe('internal error');
    expect(Object.keys(internal.body.error.details)).toEqual(['requestId']);
    expect(internal.text).not.toContain('10.0.0.7');
    expect(await state(m.id)).toEqual({ phase: 'prepare', status: 'active', version: 2, events: 2 });
    expect(await installRows(m.id)).toBe(0);

    const ok = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance` });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ phase: 'dual_write', version: 3 });
    expect(await installRows(m.id)).toBe(1);
  });

  it('runs rollback actions of the phase left on rollback, and of every entered phase newest first on abort', async () => {
    const m = await createMigration(h.app, 'unwind');
    await act(h.app, m.id, 'start');
    await act(h.app, m.id, 'advance');
    await act(h.app, m.id, 'advance');
    expect((await state(m.id)).phase).toBe('backfill');

    const before = rollbacksRan.length;
    const back = await act(h.app, m.id, 'rollback');
    expect(back).toMatchObject({ phase: 'dual_write', status: 'active' });
    expect(rollbacksRan.slice(before)).toEqual(['undo-backfill:unwind']);

    await act(h.app, m.id, 'advance');
    const mid = rollbacksRan.length;
    const aborted = await act(h.app, m.id, 'abort');
    expect(aborted).toMatchObject({ phase: 'backfill', status: 'aborted' });
    expect(rollbacksRan.slice(mid)).toEqual(['undo-backfill:unwind', 'undo-dual_write:unwind', 'undo-prepare:unwind']);

    // The audit events list the actions that ran; the engine's own ones (if any) are left out here.
    const { rows } = await h.orch.query<{ action: string; actions: string[] }>(
      "select action, details->'actions' as actions from migration_events where migration_id = $1 and action in ('rollback', 'abort') order by seq",
      [m.id],
    );
    const ours = rows.map((r) => ({ action: r.action, actions: r.actions.filter((a) => a.includes(':undo-')) }));
    expect(ours).toEqual([
      { action: 'rollback', actions: ['rollback:backfill:undo-backfill'] },
      { action: 'abort', actions: ['rollback:backfill:undo-backfill', 'rollback:dual_write:undo-dual_write', 'rollback:prepare:undo-prepare'] },
    ]);
  });

  it('leaves the state unchanged when a rollback action throws', async () => {
    const m = await createMigration(h.app, 'undo-fails');
    await act(h.app, m.id, 'start');
    await act(h.app, m.id, 'advance');

    failNext.set('undo-fails', () => new DependencyUnavailableError('flag server', 'timeout'));
    const res = await call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/abort`, body: { reason: 'bad data' } });
    expect(res.status).toBe(503);
    expect(await state(m.id)).toEqual({ phase: 'dual_write', status: 'active', version: 3, events: 3 });
    expect(rollbacksRan.filter((r) => r.endsWith(':undo-fails'))).toEqual([]);
  });
});
