import { GateNotMetError } from '@tideway/core';
import { mappingDiff, waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

// Issue 12 §3: a backfill that follows a rollback makes the target exact whatever was left there,
// and the verification gate accepts only a verification newer than the current sync epoch.
let f: BackfillFixture;
const mapping = { id: 'id', total_cents: 'total * 100', note: 'note' };
// The way back of the mapping (issue 12 §1): every source column the mapping reads comes back.
const reverseMapping = { total: 'total_cents / 100' };

beforeAll(async () => {
  f = await createBackfillFixture('rerun');
  await f.user.query(`
    create table rr_src (id bigint primary key, total int, note text);
    insert into rr_src select g, g % 500, 'n' || g from generate_series(1, 20000) g;
    analyze rr_src;
    create table rr_dst (id bigint primary key, total_cents bigint, note text);`);
  await f.startWorker();
});

afterAll(async () => {
  await f?.close();
});

async function verify(id: string): Promise<string> {
  const migration = await f.engine.migrationReadModel.get(id);
  if (!migration) throw new Error('no migration');
  const v = await f.engine.verification.start(migration, 'test');
  return waitFor('verification finished', async () => {
    const view = await f.engine.verification.view(v.id);
    return view.status === 'running' ? null : view;
  }, 60_000).then((view) => {
    expect(view.status).toBe('passed');
    return view.id;
  });
}

describe('a re-run after a rollback', () => {
  it('purges what the previous run left, copies exactly, and the gate wants a verification newer than the new run', async () => {
    const id = await driveToBackfill(f.engine, {
      name: 'rerun',
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'rr_src', key: 'id' },
      target: { datasource: 'main', table: 'rr_dst', key: 'id' },
      mapping,
      reverseMapping,
      shadowRead: { minWindowSeconds: 0 },
      abortCriteria: { minSamples: 0 },
    });
    await waitForBackfill(f.engine, id);
    await f.engine.migrations.act(id, 'advance', { actor: 'test' });
    const first = await verify(id);

    // The target drifts: stale values, rows without a source row, missing rows (as a rollback
    // to a phase without sync, or a hand, would leave them).
    await f.user.query(`update rr_dst set total_cents = -1 where id % 400 = 0`);
    await f.user.query(`insert into rr_dst select g, 0, 'stray' from generate_series(900001, 900020) g`);
    await f.user.query(`delete from rr_dst where id % 997 = 0`);
    expect(await mappingDiff(f.user, { source: 'rr_src', target: 'rr_dst', mapping })).not.toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });

    // Back into backfill: a new run; a writer keeps writing meanwhile.
    const rolled = await f.engine.migrations.act(id, 'rollback', { actor: 'test' });
    expect(rolled.phase).toBe('backfill');
    let stop = false;
    const writer = (async () => {
      let i = 0;
      while (!stop) {
        i++;
        await f.user.query(`update rr_src set total = total + 1, note = 'w' || $1 where id = $2`, [i, 1 + ((i * 7919) % 20000)]);
        if (i % 7 === 0) await f.user.query(`delete from rr_src where id = $1`, [1 + ((i * 104729) % 20000)]);
      }
      return i;
    })();
    const progress = await waitForBackfill(f.engine, id);
    stop = true;
    expect(await writer).toBeGreaterThan(10);
    expect(progress.targetPurge.done).toBe(true);
    expect(progress.targetPurge.rowsRemoved).toBeGreaterThan(19_000);
    expect(await mappingDiff(f.user, { source: 'rr_src', target: 'rr_dst', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });

    // The verification from before the re-run does not count any more.
    await f.engine.migrations.act(id, 'advance', { actor: 'test' });
    const refused = await f.engine.migrations.act(id, 'advance', { actor: 'test' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GateNotMetError);
    const gate = (refused as GateNotMetError).details['gates'] as { name: string; observed: Record<string, unknown> }[];
    const verification = gate.find((g) => g.name === 'verification-passed');
    expect(verification?.observed).toMatchObject({ verificationId: null, syncEpochReason: 'backfill-completed' });
    const second = await verify(id);
    expect(second).not.toBe(first);
    const view = await f.engine.migrations.describe(id);
    expect(view.gates.find((g) => g.name === 'verification-passed')).toMatchObject({ passed: true, observed: { verificationId: second } });
  });
});
