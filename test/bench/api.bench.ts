/**
 * `npm run bench:api`: autocannon against one control-plane process (a child process, real
 * PostgreSQL, real HTTP on loopback). Prints JSON with req/s and latency percentiles for
 * `GET /v1/migrations/:id` and for `pause`/`resume` pairs. Goal (issue 2): ≥ 3,000 req/s and
 * p99 < 20 ms for the GET on a 2-core machine.
 *
 * Inputs: --seconds N (default 10), --connections N (default 20). Bounded in time; stops by itself.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { createOrchestratorTestDatabase, createTestDatabase, freePort } from '@tideway/testing';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : fallback;
};
const seconds = arg('seconds', 10);
const connections = arg('connections', 20);
const ADMIN = 'bench-admin-token-0123456789';

const orch = await createOrchestratorTestDatabase('bench_api');
const user = await createTestDatabase('bench_api_user');
await user.query('create table orders (id bigint primary key, total int); create table orders_v2 (id bigint primary key, total_cents bigint)');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../apps/control-plane/src/server.ts', import.meta.url))], {
  env: {
    ...process.env,
    TIDEWAY_PORT: String(port),
    TIDEWAY_DATABASE_URL: orch.url,
    TIDEWAY_ADMIN_TOKEN: ADMIN,
    TIDEWAY_DATASOURCES: JSON.stringify({ main: user.url }),
    TIDEWAY_LOG_LEVEL: 'warn',
    // Neither route measured talks to Unleash; with flags on, the Unleash server recomputes its
    // client feature cache for every flag the 21 migrations' start creates, and that work (measured
    // at ~0.8 of a core on this machine, growing with the flags earlier runs left) competes with
    // the control plane for the 2 cores during the GET run.
    TIDEWAY_UNLEASH_URL: 'off',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});

try {
  // Wait for the server to answer (bounded).
  const until = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > until) throw new Error('control plane did not start within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  // Realistic tokens stored in PostgreSQL (not the bootstrap token, which skips the lookup).
  const viewer = (await call('POST', '/v1/tokens', ADMIN, { name: 'bench-viewer', role: 'viewer' }))['token'] as string;
  const operator = (await call('POST', '/v1/tokens', ADMIN, { name: 'bench-operator', role: 'operator' }))['token'] as string;
  const ids: string[] = [];
  for (let i = 0; i < connections + 1; i++) {
    const m = await call('POST', '/v1/migrations', ADMIN, {
      name: `bench-${i}`,
      syncMode: 'trigger',
      source: { datasource: 'main', table: 'orders', key: 'id' },
      target: { datasource: 'main', table: 'orders_v2', key: 'id' },
      mapping: { id: 'id', total_cents: 'total * 100' },
      reverseMapping: { total: 'total_cents / 100' },
    });
    await call('POST', `/v1/migrations/${m['id'] as string}/start`, operator, {});
    ids.push(m['id'] as string);
  }

  const summarize = (r: autocannon.Result) => ({
    requestsPerSecond: Math.round(r.requests.average),
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  });

  const get = await autocannon({
    url: `${base}/v1/migrations/${ids[0]}`,
    connections,
    duration: seconds,
    headers: { authorization: `Bearer ${viewer}` },
  });

  // pause/resume pairs: one migration per connection, so pairs never conflict with each other.
  let next = 1;
  const pairs = await autocannon({
    url: base,
    connections,
    duration: seconds,
    headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
    setupClient: (client) => {
      const id = ids[next++];
      client.setRequests([
        { method: 'POST', path: `/v1/migrations/${id}/pause`, body: '{}' },
        { method: 'POST', path: `/v1/migrations/${id}/resume`, body: '{}' },
      ]);
    },
  });

  const getAdmin = process.env['BENCH_VARIANTS']
    ? summarize(await autocannon({ url: `${base}/v1/migrations/${ids[0]}`, connections, duration: seconds, headers: { authorization: `Bearer ${ADMIN}` } }))
    : undefined;
  const health = process.env['BENCH_VARIANTS'] ? summarize(await autocannon({ url: `${base}/healthz`, connections, duration: seconds })) : undefined;

  const events = await orch.query<{ n: string }>("select count(*) as n from migration_events where action in ('pause','resume')");
  const report = {
    bench: 'api',
    machine: { cores: (await import('node:os')).cpus().length, node: process.version },
    seconds,
    connections,
    getMigration: summarize(get),
    pauseResume: { ...summarize(pairs), pairsPerSecond: Math.round(pairs.requests.average / 2), auditEvents: Number(events.rows[0]?.n) },
    ...(getAdmin ? { variants: { getWithBootstrapToken: getAdmin, healthz: health } } : {}),
    goal: { getRequestsPerSecond: 3000, getP99Ms: 20 },
    met: get.requests.average >= 3000 && get.latency.p99 < 20,
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  await orch.drop();
  await user.drop();
}
