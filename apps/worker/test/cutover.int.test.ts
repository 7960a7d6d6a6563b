import pg from 'pg';
import { mappingDiff, waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverFixture, driveToCutover, flagsOf, keysOn, ramp, waitForShare, type CutoverFixture } from './cutover-fixture.js';

let f: CutoverFixture;

beforeAll(async () => {
  f = await createCutoverFixture('cutover', { TIDEWAY_EVALUATION_INTERVAL_MS: '1000' });
  await f.user.query(`
    create table src (id bigint primary key, total bigint, note text);
    insert into src select g, g % 1000, 'n' || g from generate_series(1, 20000) g;
    analyze src;`);
});

afterAll(async () => {
  await f?.close();
});

let n = 0;
async function freshTarget(): Promise<string> {
  n++;
  const target = `dst_${n}`;
  await f.user.query(`create table ${target} (id bigint primary key, total_cents bigint, note text)`);
  return target;
}

const mapping = { id: 'id', total_cents: 'total * 100', note: 'note' };
const reverseMapping = { id: 'id', total: 'total_cents / 100', note: 'note' };

describe('ramp on real Unleash flags', () => {
  it('ramps 1 → 5 → 25 → 50 → 100 with the configured share at each step, sticky keys, then write cutover', async () => {
    const target = await freshTarget();
    const name = `ramp-${f.suffix}`;
    const id = await driveToCutover(f, {
      name,
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      ramp: { steps: [1, 5, 25, 50, 100], holdSeconds: 5 },
    });
    const reader = await f.reader();
    const flag = (await flagsOf(f, name)).readNew;
    let before = new Set<number>();
    for (const [step, percent] of [1, 5, 25, 50, 100].entries()) {
      await waitFor(`ramp step ${step}`, async () => (await ramp(f, id)).step >= step, 30_000, 100);
      const on = await waitForShare(reader, flag, percent);
      // The same key keeps its answer as the percentage grows.
      for (const k of before) expect(on.has(k), `key ${k} lost new at ${percent} %`).toBe(true);
      before = on;
    }
    expect(before.size).toBe(10_000);
    const cut = await waitFor('write cutover', async () => {
      const r = await ramp(f, id);
      return r.status === 'write_cutover' ? r : null;
    }, 30_000, 100);
    expect(cut.percent).toBe(100);
    expect(await f.flags.getRollout((await flagsOf(f, name)).writeNew)).toBe(100);
    const events = (await f.engine.migrationReadModel.allEvents(id)).map((e) => e.action);
    expect(events.filter((a) => a === 'ramp.step')).toHaveLength(4);
    expect(events).toContain('ramp.write_cutover');
    const m = await f.api('POST', `/v1/migrations/${id}/advance`, {});
    expect(m.body['phase']).toBe('cleanup');

    // After write cutover old is the best-effort side: an application's old-side write that failed
    // (new changed, the reverse sync kept out of it) is re-driven from new to old.
    await f.user.query(`alter table ${target} disable trigger user`);
    await f.user.query(`update ${target} set total_cents = 4242400, note = 'only-new' where id = 11`);
    await f.user.query(`alter table ${target} enable trigger user`);
    const oldRow = async () => (await f.user.query(`select total, note from src where id = 11`)).rows;
    expect(await oldRow()).toEqual([{ total: '11', note: 'n11' }]);
    const report = await f.api('POST', `/v1/migrations/${id}/dual-write-reports`, {
      writes: 1,
      failures: [{ key: ['11'], error: 'old store timeout', at: new Date().toISOString(), side: 'old' }],
    });
    expect(report).toEqual({ status: 202, body: { failures: 1, redriven: 1 } });
    expect(await oldRow()).toEqual([{ total: '42424', note: 'only-new' }]);
    const ledger = await f.api('GET', `/v1/migrations/${id}/divergences?kind=old_write_failure`);
    expect(ledger.body['items']).toMatchObject([{ key: '["11"]', kind: 'old_write_failure', error: 'old store timeout' }]);
    expect((ledger.body['items'] as { redrivenAt: string | null }[])[0]?.redrivenAt).not.toBeNull();

    // Back to cutover (write cutover stays): old is still the best-effort side.
    expect((await f.api('POST', `/v1/migrations/${id}/rollback`, {})).body['phase']).toBe('cutover');
    const newOnly = async (key: number, totalCents: number) => {
      await f.user.query(`alter table ${target} disable trigger user`);
      await f.user.query(`update ${target} set total_cents = $2, note = 'only-new' where id = $1`, [key, totalCents]);
      await f.user.query(`alter table ${target} enable trigger user`);
    };
    const rowOf = async (table: string, key: number) => (await f.user.query(`select * from ${table} where id = $1`, [key])).rows[0] as Record<string, string>;

    // A key whose new-side write failed, then (after write cutover) its old-side write: the latest
    // failure decides the direction. Copying old → new as well would overwrite new's newer value.
    await newOnly(12, 1_200_000);
    const t = Date.now();
    const both = await f.api('POST', `/v1/migrations/${id}/dual-write-reports`, {
      writes: 10_000,
      failures: [
        { key: ['12'], error: 'new store timeout', at: new Date(t).toISOString(), side: 'new' },
        { key: ['12'], error: 'old store timeout', at: new Date(t + 1).toISOString(), side: 'old' },
      ],
    });
    expect(both).toEqual({ status: 202, body: { failures: 2, redriven: 1 } });
    expect(await rowOf(target, 12)).toMatchObject({ total_cents: '1200000', note: 'only-new' });
    expect(await rowOf('src', 12)).toMatchObject({ total: '12000', note: 'only-new' });
    const superseded = await f.api('GET', `/v1/migrations/${id}/divergences?kind=dual_write_failure`);
    expect(superseded.body['items']).toMatchObject([{ key: '["12"]', error: 'new store timeout (superseded by a later old_write_failure)' }]);

    // Rolling back makes old authoritative again: an old-side failure that cannot be copied back
    // (old refuses the row for now) refuses the rollback, which changes nothing; once old takes the
    // row, the rollback copies it and goes through.
    await newOnly(13, 7_777_700);
    await f.user.query(`alter table src add constraint not_77777 check (total <> 77777)`);
    try {
      const stuck = await f.api('POST', `/v1/migrations/${id}/dual-write-reports`, {
        writes: 10_000,
        failures: [{ key: ['13'], error: 'old store timeout', at: new Date().toISOString(), side: 'old' }],
      });
      expect(stuck).toEqual({ status: 202, body: { failures: 1, redriven: 0 } });
      const refused = await f.api('POST', `/v1/migrations/${id}/rollback`, {});
      expect(refused.status).toBe(503);
      expect(refused.body['error']).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', details: { keys: [{ key: '["13"]' }] } });
      expect(((refused.body['error'] as { details: { keys: { error: string }[] } }).details.keys[0]?.error)).toMatch(/re-drive failed: .*not_77777/);
      expect((await f.api('GET', `/v1/migrations/${id}`)).body['phase']).toBe('cutover');
      expect(await f.flags.getRollout((await flagsOf(f, name)).writeNew)).toBe(100);
    } finally {
      await f.user.query(`alter table src drop constraint not_77777`);
    }
    const rolled = await f.api('POST', `/v1/migrations/${id}/rollback`, {});
    expect(rolled.status, JSON.stringify(rolled.body)).toBe(200);
    expect(rolled.body['phase']).toBe('shadow_read');
    expect(await rowOf('src', 13)).toMatchObject({ total: '77777', note: 'only-new' });
  });

  it('rolls back to 0 % within one evaluation interval when divergence crosses the threshold during a hold', async () => {
    const target = await freshTarget();
    const name = `breach-${f.suffix}`;
    const id = await driveToCutover(f, {
      name,
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      ramp: { steps: [25, 100], holdSeconds: 120 },
      abortCriteria: { minSamples: 500, action: 'rollback' },
    }, async (mid) => {
      // Clean shadow reads so the shadow_read gate holds: 5,000 samples put the Wilson upper
      // bound of 0 mismatches (≈ 0.00077) under 0.001; 1,000 would not (≈ 0.0038).
      const now = new Date().toISOString();
      const clean = Array.from({ length: 1000 }, (_, i) => ({ key: String(i + 1), outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at: now }));
      for (let b = 0; b < 5; b++) expect((await f.api('POST', `/v1/migrations/${mid}/shadow-results`, { results: clean })).status).toBe(202);
    });
    await waitFor('25 % holding', async () => (await ramp(f, id)).percent === 25, 10_000, 50);
    expect(await f.flags.getRollout((await flagsOf(f, name)).readNew)).toBe(25);
    const at = new Date().toISOString();
    const results = Array.from({ length: 1000 }, (_, i) => (i < 40 ? { key: String(i + 1), outcome: 'mismatch', diffPaths: ['note'], oldLatencyMs: 1, newLatencyMs: 1, at } : { key: String(i + 1), outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at }));
    const injected = Date.now();
    expect((await f.api('POST', `/v1/migrations/${id}/shadow-results`, { results })).status).toBe(202);
    const event = await waitFor('automatic rollback', async () => (await f.engine.migrationReadModel.allEvents(id)).find((e) => e.actor === 'tideway:abort-criteria') ?? null, 10_000, 20);
    expect(event.at.getTime() - injected).toBeLessThanOrEqual(1000 + 500);
    expect(event).toMatchObject({ action: 'rollback', fromPhase: 'cutover', toPhase: 'shadow_read', toStatus: 'active' });
    // Judged on the evidence of this step only (its window): the 5,000 clean reads of shadow_read do not dilute it.
    expect((event.details['breaches'] as { criterion: string; samples: number; observed: number }[])[0]).toMatchObject({ criterion: 'maxDivergenceRate', samples: 1000 });
    expect(event.details['evidenceWindow']).toMatchObject({ reason: 'ramp.step' });
    const readNew = (await flagsOf(f, name)).readNew;
    expect(await f.flags.getRollout(readNew)).toBe(0);
    const reader = await f.reader();
    await waitFor('readers see 0 %', () => keysOn(reader, readNew).size === 0, 15_000, 100);
    expect((await ramp(f, id)).status).toBe('rolled_back');

    // One breach, one action (issue 12 §2): the rollback opened a new window, so the next rounds
    // judge nothing and nothing cascades back through shadow_read, backfill, dual_write.
    for (let round = 0; round < 3; round++) {
      const results = await f.engine.abortEvaluator.evaluateAll();
      expect(results.find((r) => r.migrationId === id)).toMatchObject({ breaches: [], acted: null });
    }
    const automatic = (await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.actor === 'tideway:abort-criteria');
    expect(automatic).toHaveLength(1);
    expect((await f.api('GET', `/v1/migrations/${id}`)).body).toMatchObject({ phase: 'shadow_read', status: 'active' });

    // Back into cutover with fresh clean evidence: the old breach does not stop it again.
    const clean = Array.from({ length: 1000 }, (_, i) => ({ key: String(i + 1), outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at: new Date().toISOString() }));
    for (let b = 0; b < 5; b++) expect((await f.api('POST', `/v1/migrations/${id}/shadow-results`, { results: clean })).status).toBe(202);
    const v = await f.api('POST', `/v1/migrations/${id}/verifications`);
    await waitFor('verification passed', async () => (await f.api('GET', `/v1/migrations/${id}/verifications/${v.body['id'] as string}`)).body['status'] === 'passed', 60_000, 50);
    const again = await f.api('POST', `/v1/migrations/${id}/advance`, {});
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body['phase']).toBe('cutover');
    const judged = await f.engine.abortEvaluator.evaluateAll();
    expect(judged.find((r) => r.migrationId === id)).toMatchObject({ breaches: [], acted: null });
    expect((await f.api('GET', `/v1/migrations/${id}`)).body).toMatchObject({ phase: 'cutover', status: 'active' });
  });

  it('every ramp step needs fresh evidence: a step whose hold ended waits for samples gathered at that step', async () => {
    const target = await freshTarget();
    const name = `evidence-${f.suffix}`;
    const clean = (n: number) => Array.from({ length: n }, (_, i) => ({ key: String(i + 1), outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at: new Date().toISOString() }));
    const id = await driveToCutover(
      f,
      {
        name,
        syncMode: 'trigger',
        source: { datasource: 'main', table: 'src', key: 'id' },
        target: { datasource: 'main', table: target, key: 'id' },
        mapping,
        reverseMapping,
        ramp: { steps: [10, 100], holdSeconds: 1 },
        // 400 clean reads prove a rate under 1 % (Wilson upper bound 0.0095).
        abortCriteria: { minSamples: 400, maxDivergenceRate: 0.01 },
      },
      async (mid) => {
        expect((await f.api('POST', `/v1/migrations/${mid}/shadow-results`, { results: clean(400) })).status).toBe(202);
      },
    );
    // Step 0 (10 %) holds 1 s, then waits: the 400 reads of shadow_read were another window.
    const waiting = await waitFor('waiting for samples', async () => {
      const r = (await f.api('GET', `/v1/migrations/${id}`)).body['progress'] as { ramp: { step: number; waitsFor: string | null; waiting: { reason: string } | null } };
      return r.ramp.waitsFor === 'samples' ? r.ramp : null;
    }, 15_000, 50);
    expect(waiting).toMatchObject({ step: 0, waiting: { reason: '0 of 400 shadow reads at this step' } });
    const dry = await f.api('POST', `/v1/migrations/${id}/cutover/dry-run`);
    expect(dry.body).toMatchObject({ next: { kind: 'ramp-step', step: 1, percent: 100 }, waitsFor: 'samples', waiting: { reason: '0 of 400 shadow reads at this step' } });
    expect((await f.engine.migrationReadModel.allEvents(id)).filter((e) => e.action === 'ramp.waiting')).toHaveLength(1);
    expect(await f.flags.getRollout((await flagsOf(f, name)).readNew)).toBe(10);

    // Enough clean reads at this step: the ramp takes the next step, which waits for its own.
    expect((await f.api('POST', `/v1/migrations/${id}/shadow-results`, { results: clean(400) })).status).toBe(202);
    await waitFor('step 1 waiting for its own samples', async () => {
      const r = await ramp(f, id);
      return r.step === 1 && (r as { waitsFor?: string }).waitsFor === 'samples' ? true : null;
    }, 15_000, 50);
    expect(await f.flags.getRollout((await flagsOf(f, name)).readNew)).toBe(100);
    expect((await ramp(f, id)).status).toBe('holding');
    expect((await f.api('POST', `/v1/migrations/${id}/shadow-results`, { results: clean(400) })).status).toBe(202);
    await waitFor('write cutover', async () => ((await ramp(f, id)).status === 'write_cutover' ? true : null), 15_000, 50);
  });

  it('write cutover in trigger mode keeps both sides current while writes go on, and rollback loses nothing', async () => {
    const target = await freshTarget();
    const name = `writes-${f.suffix}`;
    const id = await driveToCutover(f, {
      name,
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'src', key: 'id' },
      target: { datasource: 'main', table: target, key: 'id' },
      mapping,
      reverseMapping,
      ramp: { steps: [100], holdSeconds: 1 },
    });
    // Writers: one on old (src) throughout, one on new after the write cutover (instances switching over).
    let stop = false;
    const writer = async (table: 'src' | 'new', from: number) => {
      const c = new pg.Client({ connectionString: f.user.url });
      c.on('error', () => undefined);
      await c.connect();
      let i = 0;
      let deadlocks = 0;
      const inserted: number[] = [];
      const deleted: number[] = [];
      // Bidirectional sync can deadlock two writers crossing the same key from both sides;
      // PostgreSQL aborts one and an application retries it, as here.
      const q = async (text: string, values: unknown[]) => {
        for (;;) {
          try {
            return await c.query(text, values);
          } catch (error) {
            if ((error as { code?: string }).code !== '40P01') throw error;
            deadlocks++;
          }
        }
      };
      while (!stop) {
        i++;
        const key = 1 + ((i * 7919 + from) % 20_000);
        if (table === 'src') {
          if (i % 5 === 0) {
            const id = from + i;
            await q(`insert into src values ($1, $2, 'w') on conflict do nothing`, [id, i]);
            inserted.push(id);
          } else if (i % 11 === 0) {
            await q(`delete from src where id = $1`, [key]);
            deleted.push(key);
          } else await q(`update src set total = $2, note = $3 where id = $1`, [key, i, `old-${i}`]);
        } else {
          if (i % 5 === 0) {
            const id = from + i;
            await q(`insert into ${target} values ($1, $2, 'w') on conflict do nothing`, [id, i * 100]);
            inserted.push(id);
          } else if (i % 11 === 0) {
            await q(`delete from ${target} where id = $1`, [key + 1]);
            deleted.push(key + 1);
          } else await q(`update ${target} set total_cents = $2, note = $3 where id = $1`, [key + 1, i * 100, `new-${i}`]);
        }
      }
      await c.end();
      return { inserted, deleted, writes: i, deadlocks };
    };
    const oldWriter = writer('src', 1_000_000);
    const cut = await waitFor('write cutover', async () => ((await ramp(f, id)).status === 'write_cutover' ? true : null), 30_000, 50);
    expect(cut).toBe(true);
    const newWriter = writer('new', 2_000_000);
    await waitFor('writes on new', async () => (await f.user.query<{ n: number }>(`select count(*)::int as n from src where id >= 2000000`)).rows[0]!.n >= 20, 20_000, 50);
    const rolled = await f.api('POST', `/v1/migrations/${id}/rollback`, {});
    expect(rolled.status, JSON.stringify(rolled.body)).toBe(200);
    expect(rolled.body['phase']).toBe('shadow_read');
    expect(await f.flags.getRollout((await flagsOf(f, name)).writeNew)).toBe(0);
    // Stragglers still write new for a moment after the rollback; then everyone writes old.
    await waitFor('more writes after rollback', async () => (await f.user.query<{ n: number }>(`select count(*)::int as n from src where id >= 2000000`)).rows[0]!.n >= 40, 20_000, 50);
    stop = true;
    const [o, w] = await Promise.all([oldWriter, newWriter]);
    expect(o.writes).toBeGreaterThan(50);
    expect(w.writes).toBeGreaterThan(50);
    expect(await mappingDiff(f.user, { source: 'src', target, mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
    const lostNewInserts = await f.user.query<{ n: number }>(`select count(*)::int as n from unnest($1::bigint[]) k where not exists (select 1 from src where id = k)`, [w.inserted.filter((k) => !w.deleted.includes(k))]);
    expect(lostNewInserts.rows[0]?.n).toBe(0);
  });
});
