import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, call, createMigration, createToken, startHarness, type Harness } from './support/harness.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('concurrency');
});

afterAll(async () => {
  await h?.close();
});

describe('optimistic concurrency', () => {
  it('lets exactly one of 20 concurrent advances with the same expectedVersion win', async () => {
    const m = await createMigration(h.app, 'race');
    const started = await act(h.app, m.id, 'start');
    expect(started).toMatchObject({ phase: 'prepare', status: 'active', version: 2 });

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/advance`, body: { expectedVersion: 2, reason: `caller ${i}` } }),
      ),
    );

    const won = results.filter((r) => r.status === 200);
    const lost = results.filter((r) => r.status === 409);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(19);
    expect(won[0]?.body).toMatchObject({ phase: 'dual_write', status: 'active', version: 3 });
    for (const r of lost) {
      expect(r.body.error).toEqual({
        code: 'VERSION_CONFLICT',
        message: `migration ${m.id} is at version 3, not the expected 2`,
        details: { migrationId: m.id, expectedVersion: 2, actualVersion: 3 },
      });
    }

    const { rows } = await h.orch.query<{ action: string; reason: string }>(
      "select action, reason from migration_events where migration_id = $1 and action = 'advance'",
      [m.id],
    );
    expect(rows).toHaveLength(1);
    const winner = results.findIndex((r) => r.status === 200);
    expect(rows[0]?.reason).toBe(`caller ${winner}`);
    const state = await h.orch.query('select phase, status, version from migrations where id = $1', [m.id]);
    expect(state.rows).toEqual([{ phase: 'dual_write', status: 'active', version: 3 }]);
  });

  it('serialises concurrent callers without expectedVersion: each acts on the state the previous one left', async () => {
    const m = await createMigration(h.app, 'serial');
    await act(h.app, m.id, 'start');
    const operator = await createToken(h.app, 'ops', 'operator');

    // Pauses and resumes race; the row lock serialises them, so each sees the state the last one left.
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        call(h.app, { method: 'POST', url: `/v1/migrations/${m.id}/${i % 2 === 0 ? 'pause' : 'resume'}`, token: i < 5 ? operator : undefined }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const r of results.filter((x) => x.status !== 200)) expect(r.body.error.code).toBe('INVALID_TRANSITION');

    const { rows } = await h.orch.query<{ seq: number; action: string; from_status: string; to_status: string }>(
      "select seq, action, from_status, to_status from migration_events where migration_id = $1 and action in ('pause', 'resume') order by seq",
      [m.id],
    );
    expect(rows).toHaveLength(ok.length);
    // The log is a gapless chain: each event starts where the previous one ended.
    let status = 'active';
    for (const e of rows) {
      expect(e.from_status).toBe(status);
      status = e.to_status;
    }
    const final = await h.orch.query('select status, version from migrations where id = $1', [m.id]);
    expect(final.rows).toEqual([{ status, version: 2 + ok.length }]);
  });
});
