import { mappingDiff, waitFor, unguarded } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverFixture, driveToCutover, driveToVerifiedShadowRead, ramp, type CutoverFixture } from './cutover-fixture.js';
import { waitForBackfill } from './fixture.js';

// Issue 12 §1: the way back is part of the spec's contract — complete (422 naming each column),
// derived where the mapping copies, proven by a round trip before writes switch, or declared absent.
let f: CutoverFixture;

beforeAll(async () => {
  f = await createCutoverFixture('way_back');
  await f.user.query(`
    create table wb_src (id int primary key, total numeric(10,2) not null, note text, created date not null default current_date, filler text);
    insert into wb_src (id, total, note) select g, g + 0.25, 'n' || g from generate_series(1, 3000) g;
    analyze wb_src;`);
});

afterAll(async () => {
  await f?.close();
});

let n = 0;
async function target(): Promise<string> {
  n++;
  const t = `wb_dst_${n}`;
  await f.user.query(`create table ${t} (id bigint primary key, total_cents bigint not null, note text)`);
  return t;
}
const spec = (name: string, table: string, extra: Record<string, unknown> = {}) => ({
  name,
  syncMode: 'trigger',
  source: { datasource: 'main', table: 'wb_src', key: 'id' },
  target: { datasource: 'main', table, key: 'id' },
  // id copied with a cast (derived back), total computed (needs its way back), note copied.
  mapping: { id: 'id::bigint', total_cents: '(total * 100)::bigint', note: 'note' },
  shadowRead: { minWindowSeconds: 0 },
  abortCriteria: { minSamples: 0 },
  ramp: { steps: [100], holdSeconds: 1 },
  ...extra,
});

describe('the way back', () => {
  it('an incomplete way back is refused at create and at start, naming each column', async () => {
    const t = await target();
    const created = await f.api('POST', '/v1/migrations', unguarded(spec('wb-incomplete', t)));
    expect(created.status).toBe(422);
    const problems = (created.body['error'] as { details: { problems: { field: string; problem: string }[] } }).details.problems;
    expect(problems).toEqual([{ field: 'reverseMapping.total', problem: expect.stringMatching(/^old column "total" is read by mapping.total_cents but the way back does not produce it/) }]);

    // Complete for what the mapping reads; a NOT NULL column without a default (`created` has one) is still needed:
    await f.user.query(`alter table wb_src add column region text not null default 'eu'; alter table wb_src alter column region drop default`);
    try {
      const m = await f.api('POST', '/v1/migrations', unguarded(spec('wb-notnull', t, { reverseMapping: { total: 'total_cents / 100.0' } })));
      expect(m.status, JSON.stringify(m.body)).toBe(201);
      const started = await f.api('POST', `/v1/migrations/${m.body['id'] as string}/start`, {});
      expect(started.status).toBe(422);
      const atStart = (started.body['error'] as { details: { problems: { field: string; problem: string }[] } }).details.problems;
      expect(atStart).toEqual([{ field: 'reverseMapping.region', problem: expect.stringMatching(/^old column "region" is NOT NULL without a default/) }]);
    } finally {
      await f.user.query(`alter table wb_src drop column region`);
    }
  });

  it('a lossy way back fails the round trip and holds the way into cutover; a better one, PATCHed by an admin, passes', async () => {
    const t = await target();
    // Rounds to whole units: 1.25 comes back as 1.
    const id = await driveToVerifiedShadowRead(f, spec('wb-lossy', t, { reverseMapping: { total: '(total_cents / 100)::int' } }));
    // Entering shadow_read ran the check: the gate has its numbers before anyone advances.
    const entered = (await f.engine.migrations.describe(id)).gates.find((g) => g.name === 'way-back-round-trip');
    expect(entered).toMatchObject({ passed: false, observed: { rowsChecked: 3000, mismatches: 3000 } });

    const refused = await f.api('POST', `/v1/migrations/${id}/advance`, {});
    expect(refused.status).toBe(409);
    const gates = (refused.body['error'] as { details: { gates: { name: string; message: string; observed: Record<string, unknown> }[] } }).details.gates;
    expect(gates.map((g) => g.name)).toEqual(['way-back-round-trip']);
    expect(gates[0]?.observed).toMatchObject({ rowsChecked: 3000, mismatches: 3000 });
    expect(gates[0]?.message).toMatch(/3000 of 3000 rows do not come back unchanged; columns: total \(3000\)/);
    const resource = await f.api('GET', `/v1/migrations/${id}`);
    expect((resource.body['progress'] as { wayBack: unknown }).wayBack).toMatchObject({
      rollbackAfterWriteCutover: true,
      columns: [
        { column: 'id', how: 'derived', expression: 'id' },
        { column: 'total', how: 'reverse-mapped', expression: '(total_cents / 100)::int' },
        { column: 'note', how: 'derived', expression: 'note' },
        { column: 'created', how: 'not-preserved', expression: null },
        { column: 'filler', how: 'not-preserved', expression: null },
      ],
      roundTrip: { passed: false, mismatches: 3000 },
    });

    // An operator may not change the way back; an admin may, until cutover, and it is bound again.
    const operator = await f.api('POST', '/v1/tokens', { name: `wb-operator-${n}`, role: 'operator' });
    const asOperator = await f.app.inject({
      method: 'PATCH',
      url: `/v1/migrations/${id}`,
      headers: { authorization: `Bearer ${operator.body['token'] as string}` },
      payload: { spec: { reverseMapping: { total: 'total_cents / 100.0' } } },
    });
    expect(asOperator.statusCode).toBe(403);
    const broken = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { reverseMapping: { total: 'no_such_column / 100.0' } } });
    expect(broken.status).toBe(422);
    const patched = await f.api('PATCH', `/v1/migrations/${id}`, { spec: { reverseMapping: { total: 'total_cents / 100.0' } } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const advanced = await f.api('POST', `/v1/migrations/${id}/advance`, {});
    expect(advanced.status, JSON.stringify(advanced.body)).toBe(200);
    expect(advanced.body['phase']).toBe('cutover');
    // From cutover on, the way back is fixed.
    expect((await f.api('PATCH', `/v1/migrations/${id}`, { spec: { reverseMapping: { total: 'total_cents / 100' } } })).status).toBe(409);

    // After the write cutover the application writes new; old gets every write back, exactly.
    await waitFor('write cutover', async () => ((await ramp(f, id)).status === 'write_cutover' ? true : null), 20_000, 50);
    await f.user.query(`insert into ${t} values (5001, 12345, 'written on new'); update ${t} set total_cents = 777 where id = 7`);
    expect((await f.user.query(`select id, total::text, note from wb_src where id in (7, 5001) order by id`)).rows).toEqual([
      { id: 7, total: '7.77', note: 'n7' },
      { id: 5001, total: '123.45', note: 'written on new' },
    ]);
    expect((await f.api('POST', `/v1/migrations/${id}/rollback`, {})).body['phase']).toBe('shadow_read');
  });

  it('an abort after the write cutover keeps the reverse sync until write-new has reached every instance, then removes it', async () => {
    const t = await target();
    const id = await driveToCutover(f, spec('wb-grace', t, { reverseMapping: { total: 'total_cents / 100.0' }, backfill: { flagPropagationSeconds: 2 } }));
    await waitFor('write cutover', async () => ((await ramp(f, id)).status === 'write_cutover' ? true : null), 20_000, 50);
    const reverseTriggers = async () =>
      (await f.user.query<{ n: number }>(`select count(*)::int as n from pg_trigger where tgrelid = $1::regclass and tgname like 'tideway_sync_%_rev%'`, [t])).rows[0]?.n ?? 0;
    expect(await reverseTriggers()).toBe(3);
    const aborted = await f.api('POST', `/v1/migrations/${id}/abort`, {});
    expect(aborted.status, JSON.stringify(aborted.body)).toBe(200);
    const abortedAt = Date.now();
    // An instance that has not seen write-new go off yet still writes new: old gets it.
    await f.user.query(`insert into ${t} values (9001, 4200, 'stale instance')`);
    expect((await f.user.query(`select total::text, note from wb_src where id = 9001`)).rows).toEqual([{ total: '42.00', note: 'stale instance' }]);
    expect(await reverseTriggers()).toBe(3);
    // Once the flag change has had backfill.flagPropagationSeconds to reach every instance, the reverse sync goes.
    // (The pass drops the triggers, then commits its audit event.)
    const converge = await waitFor('reverse sync removed', async () => (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'converge') ?? null, 15_000, 50);
    expect(await reverseTriggers()).toBe(0);
    expect(Date.now() - abortedAt).toBeLessThan(10_000);
    const abort = (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.action === 'abort');
    expect(converge).toMatchObject({ actor: 'tideway:reconciler', toStatus: 'aborted' });
    expect((converge.details['changes'] as { action: string }[]).map((c) => c.action)).toEqual(['removed', 'removed', 'removed', 'removed', 'removed']);
    // Not before the grace: 2 s after the abort's transaction.
    expect(converge.at.getTime() - abort!.at.getTime()).toBeGreaterThanOrEqual(2000);
    await f.user.query(`delete from wb_src where id = 9001`);
  });

  it('a re-run backfill after a rollback from write cutover waits for instances still writing new, and no write of Tideway reaches old through the reverse sync', async () => {
    const t = await target();
    const id = await driveToCutover(f, spec('wb-rerun', t, { reverseMapping: { total: 'total_cents / 100.0' }, backfill: { flagPropagationSeconds: 5 } }));
    await waitFor('write cutover', async () => ((await ramp(f, id)).status === 'write_cutover' ? true : null), 20_000, 50);
    const oldRows = async () => (await f.user.query<{ id: number; total: string; note: string | null }>(`select id, total::text, note from wb_src order by id`)).rows;
    const before = await oldRows();
    expect(before.length).toBeGreaterThanOrEqual(3000);

    // Back to shadow_read, then on into a new backfill at once: write-new went off moments ago
    // (the grace of 5 s covers the steps up to the purge check, also on a loaded machine).
    expect((await f.api('POST', `/v1/migrations/${id}/rollback`, {})).body['phase']).toBe('shadow_read');
    const rolled = await f.api('POST', `/v1/migrations/${id}/rollback`, {});
    expect(rolled.body['phase']).toBe('backfill');

    // An instance that has not seen write-new go off still writes new: its row is there to update
    // (the purge has not begun), and old gets the write through the reverse sync.
    const stale = await f.user.query(`update ${t} set total_cents = 4242, note = 'stale instance' where id = 11`);
    expect(stale.rowCount).toBe(1);
    const waiting = await f.engine.backfillReadModel.progress(id);
    expect(waiting?.targetPurge).toMatchObject({ done: false, rowsRemoved: 0, waitsUntil: expect.any(String) });
    const gate = (await f.engine.migrations.describe(id)).gates.find((g) => g.name === 'backfill-complete');
    expect(gate?.message).toMatch(/^waiting until .* before removing what an earlier run left in the target/);
    // A write on a Tideway session (as a chunk, the purge or a repair makes) is not taken for an
    // application's by the reverse sync, which is still installed.
    expect((await f.user.query<{ n: number }>(`select count(*)::int as n from pg_trigger where tgrelid = $1::regclass and tgname like 'tideway_sync_%_rev%'`, [t])).rows[0]?.n).toBe(3);
    await f.engine.datasources.withClient('main', (c) => c.query(`update public.${t} set note = 'tideway session' where id = 12`));
    expect((await f.user.query(`select note from wb_src where id = 12`)).rows).toEqual([{ note: 'n12' }]);

    // After the grace the purge and the chunks run; neither reaches old through the reverse sync
    // (which stays installed until the reconciler removes it).
    const done = await waitForBackfill(f.engine, id, 60_000);
    expect(done.targetPurge).toMatchObject({ done: true, waitsUntil: null });
    expect(done.targetPurge.rowsRemoved).toBeGreaterThanOrEqual(3000);
    const expected = before.map((r) => (r.id === 11 ? { id: 11, total: '42.42', note: 'stale instance' } : r));
    expect(await oldRows()).toEqual(expected);
    expect(await mappingDiff(f.user, { source: 'wb_src', target: t, mapping: { id: 'id::bigint', total_cents: '(total * 100)::bigint', note: 'note' } })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    expect((await f.api('POST', `/v1/migrations/${id}/abort`, {})).status).toBe(200);
  });

  it('rollbackAfterWriteCutover: false declares no way back: no reverse sync, and rollback past the write cutover is refused', async () => {
    const t = await target();
    const id = await driveToCutover(f, spec('wb-none', t, { rollbackAfterWriteCutover: false }));
    await waitFor('write cutover', async () => ((await ramp(f, id)).status === 'write_cutover' ? true : null), 20_000, 50);
    const r = (await ramp(f, id)) as { reverseSync?: boolean };
    expect(r.reverseSync).toBe(false);
    const refused = await f.api('POST', `/v1/migrations/${id}/rollback`, {});
    expect(refused.status).toBe(409);
    expect((refused.body['error'] as { message: string }).message).toMatch(/declared no way back after write cutover/);
    expect((await f.api('POST', `/v1/migrations/${id}/abort`, {})).status).toBe(409);
    expect((await f.api('GET', `/v1/migrations/${id}`)).body).toMatchObject({ phase: 'cutover', status: 'active' });
    expect((await f.api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('cleanup');
  });
});

