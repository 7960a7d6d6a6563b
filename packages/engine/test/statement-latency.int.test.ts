/**
 * The latency guard's statement-latency signal (ADR 014) on a private PostgreSQL with
 * pg_stat_statements loaded: off by itself where the extension is not created; the mean execution
 * time of other clients' statements from the deltas, leaving Tideway's marked statements out.
 */
import { startPrivatePostgres, waitFor, type PrivatePostgres } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasourceRegistry, StatementLatency, TIDEWAY_SQL_MARK } from '../src/index.js';

let server: PrivatePostgres;
let registry: DatasourceRegistry;
let app: pg.Client;
const signals: StatementLatency[] = [];

beforeAll(async () => {
  server = await startPrivatePostgres({ sharedPreloadLibraries: ['pg_stat_statements'] });
  const url = await server.createDatabase('shop');
  registry = new DatasourceRegistry({ main: url });
  app = new pg.Client({ connectionString: url, application_name: 'the-application' });
  await app.connect();
  await app.query('create table t (id bigint primary key, v int); insert into t select g, g from generate_series(1, 1000) g');
}, 60_000);

afterAll(async () => {
  for (const s of signals) s.stop();
  await app?.end();
  await registry?.close();
  await server?.stop();
});

function signal(): StatementLatency {
  const s = new StatementLatency(registry.pool('main'), 200);
  signals.push(s);
  s.start();
  return s;
}

/**
 * `n` application statements of about `ms` each (pg_sleep), one after another; resolves to their
 * mean round trip as the client saw it, ms — an upper bound of their execution time, however
 * loaded the machine is.
 */
async function appStatements(n: number, ms: number): Promise<number> {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await app.query(`select pg_sleep($1), v from t where id = $2`, [ms / 1000, 1 + (i % 1000)]);
    total += performance.now() - t;
  }
  return total / n;
}

describe('statement latency (pg_stat_statements)', () => {
  it('is unavailable, saying why, where the extension is not created', async () => {
    const s = signal();
    await waitFor('the first reading', async () => (s.available !== null ? true : null), 10_000);
    expect(s.available).toBe(false);
    expect(s.error).toMatch(/pg_stat_statements is not created/);
    expect(s.meanWithin(60_000)).toBeNull();
  });

  it("measures other clients' mean statement time from the deltas and leaves Tideway's marked statements out", async () => {
    await app.query('create extension pg_stat_statements');
    const s = signal();
    await waitFor('available', async () => (s.available ? true : null), 10_000);
    // The application at ~2 ms a statement, and Tideway at ~500 ms (marked: not counted).
    const t0 = performance.now();
    const tideway = new pg.Client({ connectionString: server.urlFor('shop') });
    await tideway.connect();
    const heavy = (async () => {
      for (let i = 0; i < 6; i++) await tideway.query(`${TIDEWAY_SQL_MARK}select pg_sleep(0.5), count(*) from t`);
    })();
    const appRoundTrip = await appStatements(200, 2);
    await heavy;
    await tideway.end();
    const quiet = await waitFor('a reading after the statements', async () => s.meanWithin(performance.now() - t0 + 500), 10_000);
    expect(quiet.calls).toBeGreaterThanOrEqual(200);
    // At least the 2 ms slept, at most what the client waited; with Tideway's 6 × 500 ms counted it
    // would be ~14 ms over the execution time (3 s over ~206 calls).
    expect(quiet.meanMs).toBeGreaterThan(1.5);
    expect(quiet.meanMs).toBeLessThanOrEqual(appRoundTrip + 1);

    // The application slows down to ~10 ms a statement: the signal follows.
    const t1 = performance.now();
    await appStatements(60, 10);
    const slow = await waitFor('a reading of the slow statements', async () => {
      const m = s.meanWithin(performance.now() - t1 + 200);
      return m && m.calls >= 60 ? m : null;
    }, 10_000);
    expect(slow.meanMs).toBeGreaterThan(8);
    expect((slow.meanMs ?? 0) - (quiet.meanMs ?? 0)).toBeGreaterThan(5);
  }, 60_000);

  it("measures other clients' throughput: a closed-loop client whose statements take 20× longer shows a rate several times lower", async () => {
    await app.query('create extension if not exists pg_stat_statements');
    const s = signal();
    await waitFor('available', async () => (s.available ? true : null), 10_000);
    const phase = async (n: number, ms: number) => {
      const t0 = performance.now();
      await appStatements(n, ms);
      const end = performance.now();
      // The window from the first reading after t0 - 300 to the newest reading at end + 300, taken
      // once a reading that late exists (readings every 200 ms): the phase and ≤ 600 ms around it.
      const to = end + 300;
      const window = await waitFor('a reading after the phase', async () => {
        if (performance.now() < to + 250) return null;
        const w = s.meanWithin(to - (t0 - 300), to);
        return w && w.calls >= n ? w : null;
      }, 10_000);
      return { clientRate: n / ((end - t0) / 1000), phaseSeconds: (end - t0) / 1000, window };
    };
    const fast = await phase(1000, 1);
    const slow = await phase(100, 20);
    // The readings' span covers the phase and up to 600 ms around it, and the phases last ≥ 1 s,
    // so the signal's rate is the client's within that share.
    for (const p of [fast, slow]) {
      const rate = p.window.calls / p.window.seconds;
      expect(p.window.seconds).toBeGreaterThan(p.phaseSeconds * 0.5);
      expect(p.window.seconds).toBeLessThan(p.phaseSeconds + 0.8);
      expect(rate).toBeGreaterThan(p.clientRate * 0.4);
      expect(rate).toBeLessThan(p.clientRate * 1.6);
    }
    expect((fast.window.calls / fast.window.seconds) / (slow.window.calls / slow.window.seconds)).toBeGreaterThan(2.5);
    // A reset inside a span is no reading, even when the sums at its ends are not lower (more
    // statements after the reset than before it).
    const t2 = performance.now();
    await appStatements(30, 1);
    await app.query('select pg_stat_statements_reset()');
    await appStatements(300, 1);
    const after = performance.now() + 300;
    await waitFor('a reading after the statements', async () => (performance.now() > after + 250 ? true : null), 10_000);
    expect(s.meanWithin(after - (t2 - 300), after)).toBeNull();
    // Too few calls for a mean still give a rate.
    const t3 = performance.now();
    await appStatements(5, 1);
    const end3 = performance.now() + 300;
    const few = await waitFor('a reading of a few statements', async () => (performance.now() > end3 + 250 ? s.meanWithin(end3 - (t3 - 300), end3) : null), 10_000);
    expect(few.meanMs).toBeNull();
    expect(few.calls).toBeGreaterThanOrEqual(5);
  }, 60_000);
});
