/**
 * The latency guard's Prometheus signal end to end (ADR 014, issue 13 acceptance 5): a real
 * Prometheus server (Debian's package) scrapes a real target — an application that times its own
 * queries on the source database in a prom-client histogram — and the guard, in a real worker,
 * keeps the query's p99 under `throttle.latencyGuard.prometheus.max`. A ceiling the application is
 * always over holds the copy at its floor, audited with the Prometheus numbers; raised by PATCH, the
 * pace grows again. A server that does not answer and a query that gives no number are refused at
 * start, naming the field, and change nothing. The source runs on a private PostgreSQL with
 * pg_stat_statements loaded, so the statement-latency signal is measured beside.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startPrivatePostgres, startPrivatePrometheus, waitFor, type PrivatePostgres, type PrivatePrometheus } from '@tideway/testing';
import pg from 'pg';
import { Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ROWS = 20_000;
const FLOOR = 200;
const QUERY = 'histogram_quantile(0.99, sum by (le) (rate(app_query_duration_seconds_bucket[5s])))';

let f: BackfillFixture;
let prometheus: PrivatePrometheus;
let server: PrivatePostgres;
let app: { server: http.Server; client: pg.Client; stop: () => void };

/** The application: looks a random row up every 10 ms on its own connection and exports how long each took. */
async function startApp(url: string): Promise<typeof app> {
  const registry = new Registry();
  const histogram = new Histogram({ name: 'app_query_duration_seconds', help: 'The application query latency', buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1], registers: [registry] });
  const client = new pg.Client({ connectionString: url, application_name: 'the-application' });
  client.on('error', () => undefined);
  await client.connect();
  let running = true;
  void (async () => {
    while (running) {
      const end = histogram.startTimer();
      await client.query('SELECT payload FROM big WHERE id = $1', [1 + Math.floor(Math.random() * ROWS)]).catch(() => undefined);
      end();
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, client, stop: () => (running = false) };
}

beforeAll(async () => {
  // The source on a server with pg_stat_statements loaded: the statement-latency signal runs beside.
  server = await startPrivatePostgres({ sharedPreloadLibraries: ['pg_stat_statements'] });
  f = await createGuardFixture('latency_guard_prometheus', ROWS, { userServerUrl: server.url });
  await f.user.query('create extension pg_stat_statements');
  app = await startApp(f.user.url);
  prometheus = await startPrivatePrometheus({ targets: [`127.0.0.1:${(app.server.address() as AddressInfo).port}`] });
  // Two scrapes with observations between them before the rate has a value.
  await waitFor('the application p99 in Prometheus', async () => {
    const r = (await (await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(QUERY)}`)).json()) as { data: { result: { value: [number, string] }[] } };
    const v = Number(r.data.result[0]?.value[1]);
    return Number.isFinite(v) ? v : null;
  }, 30_000);
}, 120_000);

afterAll(async () => {
  app?.stop();
  await prometheus?.stop();
  await new Promise((r) => app?.server.close(r));
  await app?.client.end().catch(() => undefined);
  await f?.close();
  await server?.stop();
});

/**
 * The guard with the widest budget (10: target = 11 × each baseline): the probe's and the
 * statements' noise on a machine busy with other tests never holds the copy back, so what holds it
 * is the Prometheus signal alone (its ratio is value / max × (1 + budget): with a ceiling of 1 µs,
 * thousands of times the target).
 */
const spec = (name: string, prom: { url: string; query: string; max: number }) => bigSpec(name, { latencyGuard: { minRowsPerSecond: FLOOR, latencyBudget: 10, prometheus: prom } });

describe('latency guard: the Prometheus signal', () => {
  it('refuses at start a server that does not answer and a query that gives no number, naming the field', async () => {
    const cases = [
      { prom: { url: 'http://127.0.0.1:9', query: QUERY, max: 1 }, field: 'throttle.latencyGuard.prometheus.url' },
      { prom: { url: prometheus.url, query: 'no_such_metric_anywhere', max: 1 }, field: 'throttle.latencyGuard.prometheus.query', problem: /0 series/ },
      { prom: { url: prometheus.url, query: 'rate(app_query_duration_seconds_bucket[5s])', max: 1 }, field: 'throttle.latencyGuard.prometheus.query', problem: /series/ },
      { prom: { url: prometheus.url, query: 'sum(', max: 1 }, field: 'throttle.latencyGuard.prometheus.query', problem: /refused/ },
    ];
    for (const [i, c] of cases.entries()) {
      const m = await f.engine.migrations.create(spec(`bad-prometheus-${i}`, c.prom), { actor: 'test' });
      await expect(f.engine.migrations.act(m.id, 'start', { actor: 'test' }), JSON.stringify(c)).rejects.toMatchObject({
        code: 'INVALID_SPEC',
        problems: [expect.objectContaining({ field: c.field, ...(c.problem ? { problem: expect.stringMatching(c.problem) } : {}) })],
      });
      expect((await f.engine.migrationReadModel.get(m.id))?.phase).toBe('draft');
      await f.engine.migrations.act(m.id, 'abort', { actor: 'test' });
    }
    // And the schema refuses what is not a URL before anything is stored.
    await expect(f.engine.migrations.create(spec('bad-prometheus-url', { url: 'file:///etc/passwd', query: QUERY, max: 1 }), { actor: 'test' })).rejects.toMatchObject({
      code: 'INVALID_SPEC',
      problems: [expect.objectContaining({ field: 'throttle.latencyGuard.prometheus.url' })],
    });
  });

  it('holds the copy at its floor while the application p99 is over max, and lets it grow once PATCH raises max', async () => {
    // A ceiling the application is always over (a lookup takes more than 1 µs).
    const id = await driveToBackfill(f.engine, spec('prometheus-guarded', { url: prometheus.url, query: QUERY, max: 0.000001 }));
    const held = await waitFor('the guard held back by the Prometheus signal', async () => {
      const p = await f.engine.backfillReadModel.progress(id, 0.3);
      const g = p?.latencyGuard;
      return g && g.mode === 'guarding' && g.signal === 'prometheus' && g.paceRowsPerSecond !== null && g.paceRowsPerSecond <= FLOOR * 1.05 && g.prometheus?.value != null ? { p, g } : null;
    }, 30_000);
    expect(held.g.prometheus).toMatchObject({ max: 0.000001, error: null });
    // The application's statements, from pg_stat_statements, beside it: a lookup's mean, well under 50 ms.
    const statements = await waitFor('the statement-latency signal', async () => {
      const s = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard?.statements;
      return s && s.baselineMeanMs !== null && s.observedMeanMs !== null ? s : null;
    }, 30_000);
    expect(statements.baselineMeanMs).toBeGreaterThan(0);
    expect(statements.observedMeanMs).toBeLessThan(50);
    expect(held.g.prometheus?.value).toBeGreaterThan(0.000001);
    const events = await f.engine.migrationReadModel.allEvents(id);
    const holding = events.find((e) => e.action === 'latency-guard.holding');
    expect(holding?.details).toMatchObject({ signal: 'prometheus', prometheusMax: 0.000001 });
    expect(Number(holding?.details['prometheusValue'])).toBeGreaterThan(0.000001);
    // Slower than the floor allows, the copy is not done.
    expect((await f.engine.backfillReadModel.progress(id))?.completedAt).toBeNull();

    // The SLO raised far over what the application sees: the guard lets the pace grow.
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { prometheus: { url: prometheus.url, query: QUERY, max: 10 } } } }, { actor: 'test', role: 'admin' });
    let seen: unknown = null;
    await waitFor('the pace grows again', async () => {
      const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
      seen = g;
      return g && g.prometheus?.max === 10 && (g.paceRowsPerSecond ?? 0) > FLOOR * 4 ? g : null;
    }, 30_000).catch((error: Error) => {
      throw new Error(`${error.message}; the guard last showed ${JSON.stringify(seen)}`);
    });
    // Shown: the rest runs unguarded (the operator's switch), so the test does not wait on the ramp-up.
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { enabled: false } } }, { actor: 'test', role: 'operator' });
    const done = await waitForBackfill(f.engine, id, 120_000);
    expect(done.rowsCopied).toBe(ROWS);
    expect(await bigDiff(f)).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  }, 240_000);

  it('refuses a PATCH to a query that gives no number, and keeps the one in force', async () => {
    const id = await driveToBackfill(f.engine, spec('prometheus-patched', { url: prometheus.url, query: QUERY, max: 10 }));
    const before = await f.engine.migrationReadModel.get(id);
    await expect(
      f.engine.migrations.patch(id, { throttle: { latencyGuard: { prometheus: { url: prometheus.url, query: 'no_such_metric_anywhere', max: 10 } } } }, { actor: 'test', role: 'admin' }),
    ).rejects.toMatchObject({ code: 'INVALID_SPEC', problems: [expect.objectContaining({ field: 'throttle.latencyGuard.prometheus.query' })] });
    // An operator may not point the guard elsewhere: the field is admin only.
    await expect(f.engine.migrations.patch(id, { throttle: { latencyGuard: { prometheus: null } } }, { actor: 'test', role: 'operator' })).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('throttle.latencyGuard.prometheus') });
    const after = await f.engine.migrationReadModel.get(id);
    expect(after?.version).toBe(before?.version);
    expect(after?.spec.throttle.latencyGuard.prometheus?.query).toBe(QUERY);
    await f.engine.migrations.act(id, 'abort', { actor: 'test' });
  });
});
