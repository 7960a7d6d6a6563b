/**
 * Other clients' throughput judged by the latency guard (ADR 014, "Throughput as the backstop"),
 * end to end: on a private PostgreSQL with pg_stat_statements, a closed-loop client (it waits for
 * each answer, then a little, before the next statement) reads the source table while a real worker
 * guards its backfill. The guard learns the client's rate with the backfill held back and shows the
 * rate it sees. When the client slows down on its own side — the traffic goes away, the database
 * is no slower — the rate falls tenfold and the guard, which cannot tell that from harm, cuts to its
 * floor; sitting there over target it measures a new baseline at once (not a minute later, at the
 * scheduled one), which learns the lower rate, and the copy grows back to its cap with the rate
 * still down. The backfill ends exact.
 */
import { MIN_JUDGED_STATEMENTS, SMOOTH_WINDOW_MS } from '@tideway/core';
import { startPrivatePostgres, waitFor, type PrivatePostgres } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 20_000;
const FLOOR = 200;
/** The copy's static cap, rows/s: slow enough that it still runs when the client slows down. */
const CAP = 600;

let server: PrivatePostgres;
let f: BackfillFixture;
let client: pg.Client;

beforeAll(async () => {
  server = await startPrivatePostgres({ sharedPreloadLibraries: ['pg_stat_statements'] });
  f = await createGuardFixture('latency_guard_throughput', ROWS, { userServerUrl: server.url });
  await f.user.query('create extension pg_stat_statements');
  client = new pg.Client({ connectionString: f.user.url, application_name: 'the-application' });
  await client.connect();
}, 120_000);

afterAll(async () => {
  await client?.end();
  await f?.close();
  await server?.stop();
});

describe("latency guard: other clients' throughput", () => {
  it("shows the rate a closed-loop client runs at and, when that client's traffic goes away, relearns it at once and lets the copy grow back", async () => {
    // Slow enough that the copy still runs when the client slows down.
    const id = await driveToBackfill(f.engine, bigSpec('throughput-shown', { latencyGuard: { minRowsPerSecond: FLOOR }, backfill: { maxRowsPerSecond: CAP } }));
    // The client: an index lookup, then `thinkMs` of its own before the next one.
    let thinkMs = 1;
    const answeredAt: number[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        await client.query('select n from big where id = $1', [1 + Math.floor(Math.random() * ROWS)]);
        answeredAt.push(Date.now());
        await new Promise((r) => setTimeout(r, thinkMs));
      }
    })();
    try {
      const learned = await waitFor('the throughput with a baseline', async () => {
        const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
        return g?.mode === 'guarding' && g.throughput?.baselinePerSecond != null && g.throughput.observedPerSecond != null ? g : null;
      }, 30_000);
      const learnedAt = Date.now();
      const baselineRate = learned.throughput?.baselinePerSecond as number;
      // The client's own rate, counted where it runs, over the 4 s before the baseline was seen
      // (its window lies in them; a later window would see another load on a busy machine): the
      // baseline is that rate (the probe's and Tideway's marked statements are not counted).
      const clientRate = answeredAt.filter((t) => t > learnedAt - 4000 && t <= learnedAt).length / 4;
      expect(baselineRate).toBeGreaterThan(clientRate * 0.5);
      expect(baselineRate).toBeLessThan(clientRate * 2);
      // Busy enough for its rate to be judged (else the fall below would prove nothing).
      expect(baselineRate * (SMOOTH_WINDOW_MS / 1000)).toBeGreaterThan(MIN_JUDGED_STATEMENTS * 1.5);
      // Ten times slower on the client's side: the same statements, a tenth of them.
      thinkMs = 10 * (1000 / baselineRate);
      await waitFor('the shown rate falls', async () => {
        const observed = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard?.throughput?.observedPerSecond;
        return observed != null && observed < baselineRate / 3 ? true : null;
      }, 30_000);
      const fellAt = Date.now();
      // Judged: the fall cuts the copy to its floor and, there, a new baseline learns the lower
      // rate — well before the scheduled baseline, a minute after the first.
      const relearned = await waitFor('a new baseline with the lower rate', async () => {
        const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
        return g?.mode === 'guarding' && (g.throughput?.baselinePerSecond ?? Infinity) < baselineRate / 3 ? g : null;
      }, 40_000);
      expect(Date.now() - fellAt).toBeLessThan(25_000);
      expect(relearned.throughput?.baselinePerSecond).toBeGreaterThan(0);
      // With the rate still down, the copy grows back to its cap.
      const grown = await waitFor('the copy at its cap with the rate down', async () => {
        const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
        return g?.mode === 'guarding' && (g.paceRowsPerSecond ?? 0) >= CAP * 0.9 && (g.throughput?.observedPerSecond ?? Infinity) < baselineRate / 3 ? g : null;
      }, 60_000);
      expect(grown.paceRowsPerSecond).toBeGreaterThan(FLOOR * 2);
      expect((await f.engine.backfillReadModel.progress(id))?.completedAt).toBeNull();
    } finally {
      running = false;
      await loop;
    }
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { enabled: false } }, backfill: { maxRowsPerSecond: null } }, { actor: 'test', role: 'operator' });
    const done = await waitForBackfill(f.engine, id, 120_000);
    expect(done.rowsCopied).toBe(ROWS);
    expect(await bigDiff(f)).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  }, 180_000);
});
