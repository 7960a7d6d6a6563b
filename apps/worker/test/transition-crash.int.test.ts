import { fileURLToPath } from 'node:url';
import type { Action, Phase } from '@tideway/core';
import { freePort, startTsProcess, waitFor, type TsProcess, unguarded } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, type BackfillFixture } from './fixture.js';

// Acceptance of issue 11 §4: a control plane SIGKILLed at each step of a transition leaves the
// datasource matching the (committed) state once the reconciler has run, and abort removes
// everything it installed. The crash points are the engine's own (TIDEWAY_FAULT_CRASH_AT).
const SERVER = fileURLToPath(new URL('../../control-plane/src/server.ts', import.meta.url));
const ADMIN = 'crash-admin-token-0123456789';
const RECONCILE_MS = 500;

let f: BackfillFixture;
let n = 0;
const converged: number[] = [];

beforeAll(async () => {
  f = await createBackfillFixture('crash');
  await f.startWorker({ TIDEWAY_RECONCILE_INTERVAL_MS: String(RECONCILE_MS) });
});

afterAll(async () => {
  await f?.close();
  console.log(`crash convergence times (ms): ${converged.join(', ')}`);
});

/** A control plane that dies at `point`. */
async function crashingControlPlane(point: string): Promise<{ server: TsProcess; url: string }> {
  const port = await freePort();
  const server = await startTsProcess(SERVER, { ...f.env, TIDEWAY_PORT: String(port), TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_UNLEASH_URL: 'off', TIDEWAY_FAULT_CRASH_AT: point, TIDEWAY_LOG_LEVEL: 'silent' });
  return { server, url: `http://127.0.0.1:${port}` };
}

/** A migration of fresh tables, driven with the in-process engine to `phase`. */
async function migrationIn(phase: Phase): Promise<{ id: string; source: string }> {
  n++;
  const source = `cr_src_${n}`;
  await f.user.query(`create table ${source} (id bigint primary key, v int); insert into ${source} select g, g from generate_series(1, 50) g;
    create table cr_dst_${n} (id bigint primary key, v int)`);
  const m = await f.engine.migrations.create(
    unguarded({ name: `crash-${n}`, syncMode: 'trigger', source: { datasource: 'main', table: source, key: 'id' }, target: { datasource: 'main', table: `cr_dst_${n}`, key: 'id' }, mapping: { id: 'id', v: 'v' } }),
    { actor: 'test' },
  );
  const path: Action[] = phase === 'prepare' ? ['start'] : ['start', 'advance'];
  for (const action of path) await f.engine.migrations.act(m.id, action, { actor: 'test' });
  return { id: m.id, source };
}

/** Sync objects of the migration on the datasource: triggers, the function, tables. */
async function objects(id: string): Promise<number> {
  const tag = id.replace(/-/g, '').slice(0, 12);
  const r = await f.user.query(
    `select tgname from pg_trigger where tgname like $1 union all select proname from pg_proc where proname like $1 union all select relname from pg_class where relkind = 'r' and relname like $1`,
    [`tideway%${tag}%`],
  );
  return r.rows.length;
}

const FULL = 6; // 3 triggers, the function, the failures and tombstone tables

async function expectConverged(id: string, want: number, crashedAt: number): Promise<void> {
  await waitFor(`${want} sync objects`, async () => ((await objects(id)) === want ? true : null), 10 * RECONCILE_MS, 25);
  converged.push(Date.now() - crashedAt);
}

describe('a control plane killed at each step of a transition', () => {
  const cases: { action: Action; from: Phase; point: string; commits: boolean; objectsAfterCrash: number | null }[] = [
    // advance prepare → dual_write installs the sync
    { action: 'advance', from: 'prepare', point: 'transition:advance:before-actions', commits: false, objectsAfterCrash: 0 },
    { action: 'advance', from: 'prepare', point: 'converge:datasource:before-commit', commits: false, objectsAfterCrash: 0 },
    { action: 'advance', from: 'prepare', point: 'converge:datasource:done', commits: false, objectsAfterCrash: FULL },
    { action: 'advance', from: 'prepare', point: 'transition:advance:after-converge', commits: false, objectsAfterCrash: FULL },
    { action: 'advance', from: 'prepare', point: 'transition:advance:before-commit', commits: false, objectsAfterCrash: FULL },
    { action: 'advance', from: 'prepare', point: 'transition:advance:after-commit', commits: true, objectsAfterCrash: FULL },
    // abort and rollback out of dual_write remove it
    { action: 'abort', from: 'dual_write', point: 'transition:abort:after-converge', commits: false, objectsAfterCrash: 0 },
    { action: 'abort', from: 'dual_write', point: 'transition:abort:before-commit', commits: false, objectsAfterCrash: 0 },
    { action: 'abort', from: 'dual_write', point: 'transition:abort:after-commit', commits: true, objectsAfterCrash: 0 },
    { action: 'rollback', from: 'dual_write', point: 'transition:rollback:after-converge', commits: false, objectsAfterCrash: 0 },
  ];

  it.each(cases)('$action from $from, killed at $point: the datasource matches the committed state', async ({ action, from, point, commits, objectsAfterCrash }) => {
    const { id } = await migrationIn(from);
    const before = await f.engine.migrationReadModel.get(id);
    if (!before) throw new Error('no migration');
    expect(await objects(id)).toBe(from === 'prepare' ? 0 : FULL);
    const { server, url } = await crashingControlPlane(point);
    try {
      const answer = await fetch(`${url}/v1/migrations/${id}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{}' }).then(
        (r) => `answered ${r.status}`,
        () => 'connection lost',
      );
      expect(answer).toBe('connection lost');
      const code = await server.exited;
      expect(server.output()).toContain(`crash point ${point}`);
      expect(code).toBeNull(); // killed by a signal
    } finally {
      await server.kill();
    }
    const crashedAt = Date.now();
    const after = await f.engine.migrationReadModel.get(id);
    expect(after?.version).toBe(commits ? before.version + 1 : before.version);
    if (objectsAfterCrash !== null && !commits) {
      // Either the crash left the world as it was, or the reconciler is about to take it back.
      expect([objectsAfterCrash, from === 'prepare' ? 0 : FULL]).toContain(await objects(id));
    }
    const state = commits ? (action === 'advance' ? 'dual_write' : after?.phase) : from;
    const wanted = after?.status === 'aborted' || state === 'prepare' ? 0 : FULL;
    await expectConverged(id, wanted, crashedAt);
    // And it stays so: a pass later nothing changes.
    expect((await f.engine.desiredState.reconcileAll({ driftCheckSeconds: 0 })).changes.filter((c) => c.object.includes(id.replace(/-/g, '').slice(0, 12)))).toEqual([]);
    if (objectsAfterCrash === FULL && wanted === 0 || objectsAfterCrash === 0 && wanted === FULL) {
      const events = await f.engine.migrationReadModel.allEvents(id);
      expect(events.some((e) => e.action === 'converge' && e.actor === 'tideway:reconciler')).toBe(true);
    }
  });

  it('abort after a completed crash-free advance removes everything it installed', async () => {
    const { id } = await migrationIn('dual_write');
    expect(await objects(id)).toBe(FULL);
    const aborted = await f.engine.migrations.act(id, 'abort', { actor: 'test' });
    expect(aborted.status).toBe('aborted');
    expect(await objects(id)).toBe(0);
  });
});
