/**
 * `npm run demo`: migrates a live pgbench workload through every phase of Tideway and writes a
 * report. See the README for what it shows. Options: --scale N (pgbench scale, default 10 = 1M
 * accounts), --no-faults, --rate N (pgbench TPS, default 100), --demo-rate N (demo service req/s,
 * default 300), --out DIR (default demo-report). Exit 0 only when the final verification found 0
 * differences, no pgbench transaction failed and no request to the demo service failed.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { createDb, migrateToLatest } from '@tideway/db';
import { ensureLocalUnleash } from '@tideway/flags/testing';
import { Processes, stop } from './processes.js';
import { initPgbench, runPgbench, type PgbenchRun } from '@tideway/testing';
import { writeReport, type DemoReport, type GuardPoint, type SeriesPoint } from './report.js';

const { values: opts } = parseArgs({
  options: {
    scale: { type: 'string', default: '10' },
    'no-faults': { type: 'boolean', default: false },
    rate: { type: 'string', default: '100' },
    'demo-rate': { type: 'string', default: '300' },
    out: { type: 'string', default: 'demo-report' },
  },
});
const scale = Number(opts.scale);
const faults = !opts['no-faults'];
const pgRate = Number(opts.rate);
const demoRate = Number(opts['demo-rate']);
if (!Number.isInteger(scale) || scale < 1 || scale > 1000) throw new Error('--scale must be an integer from 1 to 1000');

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PG_URL = process.env['TIDEWAY_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env['TIDEWAY_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
// TIDEWAY_UNLEASH_URL names a flag server to use; without it, this checkout's own (bootstrap started it).
const unleash = process.env['TIDEWAY_UNLEASH_URL'] ? null : await ensureLocalUnleash();
const UNLEASH_URL = unleash?.url ?? (process.env['TIDEWAY_UNLEASH_URL'] as string);
const UNLEASH_CLIENT_TOKEN = process.env['TIDEWAY_UNLEASH_CLIENT_TOKEN'] ?? unleash?.clientToken ?? 'default:development.tideway-client-dev-token';
const DB_NAME = 'tideway_demo';
const demoUrl = (() => {
  const u = new URL(PG_URL);
  u.pathname = `/${DB_NAME}`;
  return u.toString();
})();
const started = Date.now();
const since = (t = Date.now()) => (t - started) / 1000;
const tty = process.stdout.isTTY;
const log = (msg: string) => console.log(`${tty ? '\r\x1b[K' : ''}[${since().toFixed(0).padStart(3)} s] ${msg}`);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });

const processes = new Processes();
const failures: string[] = [];
const faultsInjected: string[] = [];
const phases: { phase: string; startedAt: number; seconds: number }[] = [];
/** The latency guard as progress showed it during the backfill. */
const guardSeries: GuardPoint[] = [];
const markPhase = (phase: string) => {
  const last = phases[phases.length - 1];
  if (last?.phase === phase) return;
  const now = since();
  if (last) last.seconds = now - last.startedAt;
  phases.push({ phase, startedAt: now, seconds: 0 });
};

async function main(): Promise<number> {
  // 1. A dedicated database, reset.
  log(`preparing database ${DB_NAME} (pgbench scale ${scale} = ${(scale * 100_000).toLocaleString()} accounts)`);
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB_NAME}`);
  await admin.end();
  const orch = createDb({ connectionString: demoUrl, max: 2 });
  await migrateToLatest(orch);
  await orch.destroy();
  const u = new URL(demoUrl);
  const pgTarget = { host: u.hostname, port: u.port || '5432', user: decodeURIComponent(u.username) || 'postgres', database: DB_NAME };
  markPhase('setup');
  await initPgbench(pgTarget, scale);
  const user = new pg.Pool({ connectionString: demoUrl, max: 2 });
  user.on('error', () => undefined);
  await user.query(`CREATE TABLE accounts_v2 (aid bigint PRIMARY KEY, branch_id int NOT NULL, balance_cents bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`);

  // 2. Tideway: control plane and two workers; then the demo service.
  const adminToken = `demo-admin-${randomBytes(12).toString('hex')}`;
  const cpPort = await freePort();
  const base = `http://127.0.0.1:${cpPort}`;
  const tidewayEnv = {
    TIDEWAY_DATABASE_URL: demoUrl,
    TIDEWAY_REDIS_URL: REDIS_URL,
    TIDEWAY_REDIS_PREFIX: '{tideway-demo}',
    TIDEWAY_DATASOURCES: JSON.stringify({ demo: demoUrl }),
    TIDEWAY_ADMIN_TOKEN: adminToken,
    TIDEWAY_UNLEASH_URL: UNLEASH_URL,
    ...(unleash ? { TIDEWAY_UNLEASH_ADMIN_TOKEN: unleash.adminToken } : {}),
    TIDEWAY_EVALUATION_INTERVAL_MS: '2000',
    TIDEWAY_RECONCILE_INTERVAL_MS: '500',
    TIDEWAY_LOG_LEVEL: 'warn',
  };
  spawnSync('redis-cli', ['-u', REDIS_URL, 'EVAL', "for _,k in ipairs(redis.call('KEYS','{tideway-demo}*')) do redis.call('DEL',k) end return 1", '0'], { stdio: 'ignore' });
  await processes.startTs(`${root}apps/control-plane/src/server.ts`, { ...tidewayEnv, TIDEWAY_PORT: String(cpPort) }, 'control plane');
  const workers = [
    await processes.startTs(`${root}apps/worker/src/main.ts`, { ...tidewayEnv, TIDEWAY_WORKER_NAME: 'worker-1' }, 'worker 1'),
    await processes.startTs(`${root}apps/worker/src/main.ts`, { ...tidewayEnv, TIDEWAY_WORKER_NAME: 'worker-2' }, 'worker 2'),
  ];
  const api = async (method: string, path: string, body?: unknown, token = adminToken): Promise<Record<string, unknown>> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const appToken = (await api('POST', '/v1/tokens', { name: 'demo-service', role: 'operator' }))['token'] as string;
  const migration = await api('POST', '/v1/migrations', {
    name: 'accounts-v2',
    description: 'pgbench_accounts → accounts_v2: balances in cents, a branch_id, no filler',
    syncMode: 'trigger',
    source: { datasource: 'demo', table: 'pgbench_accounts', key: 'aid' },
    target: { datasource: 'demo', table: 'accounts_v2', key: 'aid' },
    mapping: { aid: 'aid', branch_id: 'bid', balance_cents: 'abalance::bigint * 100' },
    reverseMapping: { aid: 'aid', bid: 'branch_id', abalance: '(balance_cents / 100)::int' },
    // The default backfill and throttle (the latency guard on): no hand-tuned pace.
    backfill: { chunkTimeoutMs: 5000 },
    shadowRead: { samplePercent: 100, minWindowSeconds: 10 },
    abortCriteria: { minSamples: 4000, action: 'pause' },
    ramp: { steps: [1, 5, 25, 50, 100], holdSeconds: 5 },
    cleanup: { deadlineDays: 30 },
  });
  const id = migration['id'] as string;
  const demoPort = await freePort();
  await processes.startTs(
    `${root}apps/demo/src/service.ts`,
    {
      DEMO_PORT: String(demoPort),
      DEMO_DATABASE_URL: demoUrl,
      TIDEWAY_URL: base,
      TIDEWAY_TOKEN: appToken,
      TIDEWAY_MIGRATION_ID: id,
      TIDEWAY_MIGRATION_NAME: 'accounts-v2',
      TIDEWAY_MIGRATION_INSTALLATION: migration['installation'] as string,
      TIDEWAY_UNLEASH_URL: UNLEASH_URL,
      TIDEWAY_UNLEASH_CLIENT_TOKEN: UNLEASH_CLIENT_TOKEN,
    },
    'demo service',
  );
  log(`control plane ${base}, 2 workers, demo service :${demoPort}, migration ${id}`);

  // 3. Production traffic: the demo service under autocannon for the whole run (80 % reads).
  const accounts = scale * 100_000;
  const demoSeries = new Map<number, number[]>();
  let demoRequests = 0;
  let demoErrors = 0;
  let demoNon2xx = 0;
  let cannonFinished: () => void = () => undefined;
  const cannonDone = new Promise<void>((r) => (cannonFinished = r));
  const cannon = autocannon({
    url: `http://127.0.0.1:${demoPort}`,
    connections: 8,
    overallRate: demoRate,
    duration: 3600,
    requests: [
      {
        setupRequest: (req) => {
          const aid = 1 + Math.floor(Math.random() * accounts);
          return Math.random() < 0.8
            ? { ...req, method: 'GET', path: `/accounts/${aid}` }
            : { ...req, method: 'POST', path: `/accounts/${aid}/deposit`, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 1 + Math.floor(Math.random() * 50) }) };
        },
      },
    ],
  }, () => cannonFinished());
  cannon.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    demoRequests++;
    if (statusCode >= 400) demoNon2xx++;
    const second = Math.floor(since());
    let bucket = demoSeries.get(second);
    if (!bucket) demoSeries.set(second, (bucket = []));
    bucket.push(responseTime);
  });
  cannon.on('reqError', () => void demoErrors++);

  // 4. pgbench before, during (in 15 s runs until the migration is done), after.
  markPhase('baseline');
  log(`pgbench alone for 15 s at ${pgRate} TPS`);
  const before = await runPgbench(pgTarget, 'before', 15, pgRate);
  const during: PgbenchRun[] = [];
  let migrating = true;
  const duringLoop = (async () => {
    while (migrating) during.push(await runPgbench(pgTarget, 'during', 15, pgRate));
  })();

  // 5. Drive the migration through every phase.
  const act = async (action: string) => {
    const m = await api('POST', `/v1/migrations/${id}/${action}`, {});
    markPhase(m['phase'] as string);
    return m;
  };
  const get = () => api('GET', `/v1/migrations/${id}`);
  let lastPrint = 0;
  const progressLine = async () => {
    const m = await get();
    const p = m['progress'] as Record<string, unknown> & { ramp?: { percent: number; status: string } };
    const d = await api('GET', `/v1/migrations/${id}/divergences?limit=1`);
    const pct = p['rowsEstimated'] ? Math.min(100, (Number(p['rowsCopied']) / Number(p['rowsEstimated'])) * 100) : 0;
    const throttled = p['throttled'] ? ` throttled:${(p['throttled'] as { reason: string }).reason}` : '';
    const g = p['latencyGuard'] as { mode: string; paceRowsPerSecond: number | null; observedP99Ms: number | null; targetP99Ms: number | null } | null | undefined;
    if (g && m['phase'] === 'backfill') guardSeries.push({ t: since(), paceRowsPerSecond: g.paceRowsPerSecond, observedP99Ms: g.observedP99Ms, targetP99Ms: g.targetP99Ms, mode: g.mode });
    const ramp = p.ramp ? ` ramp ${p.ramp.percent}% (${p.ramp.status})` : '';
    const totals = d['totals'] as { samples: number; mismatches: number };
    const line = `${m['phase']}/${m['status']} backfill ${pct.toFixed(0)}% ${p['rowsPerSecond'] ?? 0} rows/s eta ${p['etaSeconds'] ?? '-'} s${throttled}${ramp} divergence ${totals.mismatches}/${totals.samples} (≤ ${Number(d['rateUpper95']).toFixed(4)})`;
    if (tty) process.stdout.write(`\r\x1b[K[${since().toFixed(0).padStart(3)} s] ${line}`);
    else if (Date.now() - lastPrint >= 5000) {
      lastPrint = Date.now();
      log(line);
    }
    return m;
  };
  const until = async (what: string, check: (m: Record<string, unknown>) => boolean, timeoutS = 240) => {
    const end = Date.now() + timeoutS * 1000;
    for (;;) {
      const m = await progressLine();
      if (check(m)) return m;
      if (m['status'] === 'paused' || m['status'] === 'failed' || m['status'] === 'aborted') throw new Error(`migration is ${m['status']} while waiting for ${what} (see GET /v1/migrations/${id}/events)`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  await act('start');
  await act('advance'); // dual_write: trigger sync installed
  await act('advance'); // backfill
  let killed = false;
  let flushed = false;
  await until('backfill complete', (m) => {
    const p = m['progress'] as { rowsCopied?: number; rowsEstimated?: number; completedAt?: string | null };
    const share = p.rowsEstimated ? (p.rowsCopied ?? 0) / p.rowsEstimated : 0;
    if (faults && !killed && share >= 0.25) {
      killed = true;
      const victim = workers[1];
      if (victim) {
        victim.kill('SIGKILL');
        faultsInjected.push(`${since().toFixed(0)} s: SIGKILL worker-2 (pid ${victim.pid}) mid-backfill; a new worker-3 started`);
        log('fault: SIGKILL worker-2; starting worker-3');
        processes.startTs(`${root}apps/worker/src/main.ts`, { ...tidewayEnv, TIDEWAY_WORKER_NAME: 'worker-3' }, 'worker 3').catch((error: Error) => log(`worker 3 did not start: ${error.message.split('\n')[0]}`));
      }
    }
    if (faults && !flushed && share >= 0.5) {
      flushed = true;
      spawnSync('redis-cli', ['-u', REDIS_URL, 'FLUSHALL'], { stdio: 'ignore' });
      faultsInjected.push(`${since().toFixed(0)} s: FLUSHALL on Redis mid-backfill`);
      log('fault: FLUSHALL on Redis');
    }
    return Boolean(p.completedAt);
  });
  const backfill = (await get())['progress'] as Record<string, unknown>;
  await act('advance'); // shadow_read: the demo service now compares every read
  const v1 = await api('POST', `/v1/migrations/${id}/verifications`);
  let verification = v1;
  const vEnd = Date.now() + 240_000;
  while (verification['status'] === 'running') {
    if (Date.now() > vEnd) throw new Error('verification did not finish');
    await new Promise((r) => setTimeout(r, 1000));
    verification = await api('GET', `/v1/migrations/${id}/verifications/${v1['id'] as string}`);
  }
  log(`verification ${verification['status']}: ${verification['rowsCompared']} rows compared, ${verification['missingInTarget']} missing, ${verification['extraInTarget']} extra, ${verification['different']} different`);
  if (verification['status'] !== 'passed') throw new Error('verification found differences after the backfill');
  // Every gate holds by itself, the way back's round-trip check included (it ran on entering shadow_read).
  await until('shadow_read gates', (m) => (m['gates'] as { name: string; passed: boolean }[]).every((g) => g.passed));
  await act('advance'); // cutover: the ramp starts
  await until('write cutover', (m) => (m['progress'] as { ramp?: { status: string } }).ramp?.status === 'write_cutover');
  const rampView = ((await get())['progress'] as { ramp: Record<string, unknown> }).ramp;
  await act('advance'); // cleanup: deadline scheduled
  const cleanups = (await api('GET', '/v1/cleanups'))['items'] as Record<string, unknown>[];
  migrating = false;
  await duringLoop;
  markPhase('after');
  log('pgbench after the migration for 15 s');
  const after = await runPgbench(pgTarget, 'after', 15, pgRate);
  cannon.stop();
  await cannonDone;
  const finalVerification = await (async () => {
    const v = await api('POST', `/v1/migrations/${id}/verifications`);
    let r = v;
    while (r['status'] === 'running') {
      await new Promise((res) => setTimeout(res, 1000));
      r = await api('GET', `/v1/migrations/${id}/verifications/${v['id'] as string}`);
    }
    return r;
  })();
  markPhase('done');
  const divergence = await api('GET', `/v1/migrations/${id}/divergences?limit=20`);
  const sdk = await (await fetch(`http://127.0.0.1:${demoPort}/stats`)).json() as Record<string, unknown>;
  await user.end();

  // 6. Report.
  const summarize = (runs: PgbenchRun[]) => {
    const samples = runs.flatMap((r) => r.samples.map((s) => s.latencyMs)).sort((a, b) => a - b);
    const q = (x: number) => samples[Math.min(samples.length - 1, Math.ceil(x * samples.length) - 1)] ?? 0;
    const seconds = runs.reduce((a, r) => a + r.seconds, 0);
    const transactions = runs.reduce((a, r) => a + r.transactions, 0);
    return { tps: seconds ? transactions / seconds : 0, p50Ms: q(0.5), p99Ms: q(0.99), transactions, failed: runs.reduce((a, r) => a + r.failed, 0) };
  };
  const perSecond = (samples: { at: number; latencyMs: number }[]): SeriesPoint[] => {
    const buckets = new Map<number, number[]>();
    for (const s of samples) {
      const t = Math.floor((s.at - started) / 1000);
      let b = buckets.get(t);
      if (!b) buckets.set(t, (b = []));
      b.push(s.latencyMs);
    }
    return [...buckets].sort(([a], [b]) => a - b).map(([t, v]) => ({ t, ms: v.sort((a, b) => a - b)[Math.ceil(0.99 * v.length) - 1] as number }));
  };
  const demoAll = [...demoSeries.values()].flat().sort((a, b) => a - b);
  const allRuns = [before, ...during, after];
  const byPhase: Record<string, { tps: number; p99Ms: number; transactions: number }> = {};
  for (const ph of phases) {
    const from = started + ph.startedAt * 1000;
    const to = from + (ph.seconds || since() - ph.startedAt) * 1000;
    const inPhase = allRuns.flatMap((r) => r.samples).filter((x) => x.at >= from && x.at < to).map((x) => x.latencyMs).sort((a, b) => a - b);
    if (inPhase.length === 0) continue;
    byPhase[ph.phase] = { tps: inPhase.length / Math.max(0.001, (to - from) / 1000), p99Ms: inPhase[Math.min(inPhase.length - 1, Math.ceil(0.99 * inPhase.length) - 1)] as number, transactions: inPhase.length };
  }
  const pgbench = { before: summarize([before]), during: summarize(during), after: summarize([after]), byPhase };
  const backfillP99Ratio = byPhase['backfill'] && pgbench.before.p99Ms > 0 ? byPhase['backfill'].p99Ms / pgbench.before.p99Ms : null;
  const totalFailed = pgbench.before.failed + pgbench.during.failed + pgbench.after.failed;
  if (finalVerification['status'] !== 'passed') failures.push(`final verification: ${finalVerification['different']} different, ${finalVerification['missingInTarget']} missing, ${finalVerification['extraInTarget']} extra`);
  if (totalFailed > 0) failures.push(`${totalFailed} pgbench transaction(s) failed`);
  if (demoErrors + demoNon2xx > 0) failures.push(`${demoErrors + demoNon2xx} demo-service request(s) failed`);
  const report: DemoReport = {
    ok: failures.length === 0,
    failures,
    wallSeconds: since(),
    scale,
    faults,
    phases,
    backfill: { rowsCopied: backfill['rowsCopied'], chunksDone: backfill['chunksDone'], chunksFailed: backfill['chunksFailed'], finalChunkRows: backfill['chunkRows'], startedAt: backfill['startedAt'], completedAt: backfill['completedAt'], rowsPerSecond: phases.find((p) => p.phase === 'backfill') ? Math.round(Number(backfill['rowsCopied']) / (phases.find((p) => p.phase === 'backfill')?.seconds || 1)) : null },
    verification: { afterBackfill: { status: verification['status'], rowsCompared: verification['rowsCompared'], different: verification['different'], missingInTarget: verification['missingInTarget'], extraInTarget: verification['extraInTarget'] }, final: { status: finalVerification['status'], rowsCompared: finalVerification['rowsCompared'], different: finalVerification['different'], missingInTarget: finalVerification['missingInTarget'], extraInTarget: finalVerification['extraInTarget'] } },
    divergence: { totals: divergence['totals'], rateUpper95: divergence['rateUpper95'], ledgerEntries: (divergence['items'] as unknown[]).length },
    ramp: { steps: [1, 5, 25, 50, 100], history: rampView['history'], writeCutoverAt: rampView['writeCutoverAt'], reverseSync: rampView['reverseSync'] },
    cleanup: { deadline: cleanups[0]?.['deadline'] ?? null, overdue: cleanups[0]?.['overdue'] ?? null },
    pgbench,
    latencyGuard: { backfillP99Ratio, goal: 'byPhase.backfill.p99Ms / before.p99Ms <= 1.5', met: backfillP99Ratio === null ? null : backfillP99Ratio <= 1.5 },
    demoService: { requests: demoRequests, errors: demoErrors, non2xx: demoNon2xx, p99Ms: demoAll[Math.ceil(0.99 * demoAll.length) - 1] ?? 0, sdk },
    faultsInjected,
    series: {
      pgbenchP99: perSecond([before, ...during, after].flatMap((r) => r.samples)),
      demoP99: [...demoSeries].sort(([a], [b]) => a - b).map(([t, v]) => ({ t, ms: v.sort((a, b) => a - b)[Math.ceil(0.99 * v.length) - 1] as number })),
      guard: guardSeries,
    },
  };
  const files = await writeReport(opts.out as string, report);
  console.log('');
  console.log(`Tideway demo ${report.ok ? 'PASSED' : 'FAILED'} in ${report.wallSeconds.toFixed(0)} s`);
  console.log(`  rows copied ${report.backfill['rowsCopied']} (${report.backfill['rowsPerSecond']} rows/s), chunks ${report.backfill['chunksDone']}, faults: ${faultsInjected.length || 'none'}`);
  console.log(`  final verification ${finalVerification['status']}: ${finalVerification['rowsCompared']} rows, ${finalVerification['different']} different`);
  console.log(`  pgbench TPS / p99 ms: before ${pgbench.before.tps.toFixed(1)} / ${pgbench.before.p99Ms.toFixed(1)}, during ${pgbench.during.tps.toFixed(1)} / ${pgbench.during.p99Ms.toFixed(1)}, after ${pgbench.after.tps.toFixed(1)} / ${pgbench.after.p99Ms.toFixed(1)}, failed ${totalFailed}`);
  console.log(`  latency guard: pgbench p99 in backfill ${byPhase['backfill']?.p99Ms.toFixed(1) ?? '-'} ms vs ${pgbench.before.p99Ms.toFixed(1)} ms before (ratio ${backfillP99Ratio?.toFixed(2) ?? '-'}, goal ≤ 1.5), pace ${guardSeries.length ? `${Math.round(Math.min(...guardSeries.map((g) => g.paceRowsPerSecond ?? Infinity)))}–${Math.round(Math.max(...guardSeries.map((g) => g.paceRowsPerSecond ?? 0)))} rows/s` : '-'}`);
  console.log(`  demo service: ${demoRequests} requests, ${demoErrors + demoNon2xx} failed, p99 ${report.demoService.p99Ms} ms; shadow reads ${JSON.stringify(divergence['totals'])}`);
  console.log(`  cleanup deadline ${report.cleanup['deadline']}`);
  console.log(`  report: ${files.json}, ${files.html}`);
  if (!report.ok) console.log(`  why: ${failures.join('; ')}`);
  return report.ok ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  code = 1;
} finally {
  await processes.stopAll();
}
void stop;
process.exit(code);
