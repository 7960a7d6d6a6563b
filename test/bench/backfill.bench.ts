/**
 * `npm run bench:backfill`: the backfill engine against a plain `INSERT … SELECT`, on real PostgreSQL
 * and Redis with two worker processes (children started through tsx). Prints one JSON document.
 *
 * 1. Fresh orchestrator, user ("main"), second user ("other") and pgbench databases; `orders` with
 *    `--rows` rows, VACUUM ANALYZE; an empty `orders_v2`.
 * 2. Baseline: one `INSERT INTO orders_v2 SELECT <mapping> FROM orders` (rows/s), then TRUNCATE.
 * 3. Tideway, unthrottled (trigger sync): wall time from entering backfill to completion, ratio to
 *    the baseline (goal ≥ 0.8), exactness with mappingDiff (0/0), chunk count and final chunk size,
 *    and where the time went (copy statements, leases, gaps). Diagnostic: the engine's own chunk
 *    statement run once over the whole table, which separates the cost of its SQL from the cost
 *    of orchestration (`--no-diagnostics` skips it).
 * 4. pgbench (`-c 4 -j 2`, per-transaction log for p99) in alternating windows: alone, during a
 *    throttled backfill, alone, … alone (`--pgbench-pairs` during windows; the backfill is paused
 *    through the engine for each alone window and resumed for each during one), so each during
 *    window is bracketed by alone ones and machine drift cancels out. Goals: TPS during ≥ 0.9 ×
 *    alone (sum of during TPS over the sum of the bracketing alone means), p99 of all during
 *    transactions ≤ 1.5 × p99 of all alone ones; marked inconclusive when the alone windows range
 *    over more than 20 % in TPS. The throttled backfill is then un-throttled by a live PATCH,
 *    resumed, finished and checked exactly.
 * 5. Across datasources ("main" → "other", application sync, COPY path): `--cross-rows` rows,
 *    rows/s and ratio to the same baseline (goal ≥ 0.4), exactness by count + md5 of the mapped
 *    rows in key order on each side.
 *
 * 6. The latency guard (issue 13, ADR 014): under pgbench at half its saturation TPS (`-R`) and at
 *    saturation, the unthrottled backfill, static caps of 2k/8k/32k/128k rows/s and the default spec
 *    (guarded) in interleaved windows; goals: guarded p99 ratio ≤ 1.3, TPS ratio ≥ 0.95, rows/s ≥ 0.8 ×
 *    the best static cap that also keeps p99 ≤ 1.3 (`--guard-seconds N` (10) per window,
 *    `--guard-settle-seconds N` (8), `--skip-guard`, `--only-guard` for this section alone,
 *    `--guard-configs a,b` to run some of the configs, `--guard-levels saturation` some of the loads, `--guard-repeats N` (1) during windows of each,
 *    interleaved and pooled per config, `--guard-private`: the user databases on a
 *    private cluster with pg_stat_statements and pgbench in "main", so the statement signal sees it).
 *    With 2 or more repeats each guarded goal also carries the 90 % confidence interval of its
 *    windows' ratios and is inconclusive while that interval contains the bound; `noise` gives the
 *    same ratios for alone windows judged against their neighbours (what the machine does alone).
 *
 * Inputs: --rows N (2000000), --cross-rows N (1000000), --pgbench-scale N (10), --pgbench-seconds N
 * (10, per window), --pgbench-pairs N (3), --throttled-max-rows-per-second N (4000), --throttled-chunk-rows N (4000),
 * --throttled-target-chunk-ms N (100), --target-chunk-ms N (500) and --concurrency N (2) of the
 * unthrottled runs, --timeout-minutes N (15), --no-diagnostics, --skip-pgbench, --skip-cross.
 * Loopback only. Every child process is stopped by its PID and every database it created is
 * dropped, also on error, timeout and Ctrl-C. `WAL MB` figures are server-wide LSN differences.
 * Reduced run (< 2 min): `npm run bench:backfill -- --rows 200000 --cross-rows 100000
 * --pgbench-seconds 5 --pgbench-scale 2`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jstat from 'jstat';
import type { MigrationSpecInput } from '@tideway/core';
import { BullmqWorkQueue, chunkUpsertSql, createEngine, type Engine } from '@tideway/engine';
import { QUEUE_NAMES, createRedisConnection, openQueue } from '@tideway/queue';
import {
  PG_ADMIN_URL,
  TEST_REDIS_URL,
  createOrchestratorTestDatabase,
  createTestDatabase,
  mappingDiff,
  startPrivatePostgres,
  startTsProcess,
  uniqueRedisPrefix,
  waitFor,
  type TestDatabase,
  type TsProcess,
} from '@tideway/testing';

// ---------------------------------------------------------------------------------------------
// Inputs

const argv = process.argv.slice(2);
function intArg(name: string, fallback: number): number {
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  const i = argv.indexOf(`--${name}`);
  const raw = eq ? eq.slice(name.length + 3) : i >= 0 ? argv[i + 1] : undefined;
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

const ROWS = intArg('rows', 2_000_000);
const CROSS_ROWS = intArg('cross-rows', 1_000_000);
const PGBENCH_SCALE = intArg('pgbench-scale', 10);
const PGBENCH_SECONDS = intArg('pgbench-seconds', 10);
/** During windows; the alone windows are one more, around them. */
const PGBENCH_PAIRS = intArg('pgbench-pairs', 3);
const PGBENCH_CLIENTS = 4;
const PGBENCH_THREADS = 2;
/**
 * The gentle backfill beside pgbench: one 4,000-row chunk at a time (~35 ms of copy each), capped at
 * 4,000 rows/s. The engine's cap admits about 1.6 × that (measured ~6,600 rows/s), which still
 * leaves a 2M-row backfill running through the whole pgbench run.
 */
const THROTTLED = {
  maxRowsPerSecond: intArg('throttled-max-rows-per-second', 4000),
  chunkRows: intArg('throttled-chunk-rows', 4000),
  targetChunkMs: intArg('throttled-target-chunk-ms', 100),
};
/** The unthrottled runs: the brief's settings, overridable to explore the engine. */
const TARGET_CHUNK_MS = intArg('target-chunk-ms', 500);
const CONCURRENCY = intArg('concurrency', 2);
const TIMEOUT_MS = intArg('timeout-minutes', 15) * 60_000;
const DIAGNOSTICS = !argv.includes('--no-diagnostics');
const SKIP_PGBENCH = argv.includes('--skip-pgbench');
const SKIP_GUARD = argv.includes('--skip-guard');
/** Only the guarded section (skips the unthrottled, paced and cross sections). */
const ONLY_GUARD = argv.includes('--only-guard');
/** Seconds of each window of the guarded section. */
const GUARD_SECONDS = intArg('guard-seconds', 10);
/** During windows of each config of the guarded section (interleaved; their figures are pooled per config). */
const GUARD_REPEATS = intArg('guard-repeats', 1);
/** The static caps the guarded section compares the guard with, rows/s. */
const GUARD_CAPS = [2000, 8000, 32000, 128000] as const;
/** Configs of the guarded section to run (`--guard-configs unthrottled,cap8000,guarded`); all by default. */
const GUARD_CONFIGS = (() => {
  const i = argv.indexOf('--guard-configs');
  return i >= 0 && argv[i + 1] ? new Set(argv[i + 1]?.split(',')) : null;
})();
/** Loads of the guarded section to run (`--guard-levels saturation`); both by default. */
const GUARD_LEVELS = (() => {
  const i = argv.indexOf('--guard-levels');
  return i >= 0 && argv[i + 1] ? new Set(argv[i + 1]?.split(',')) : null;
})();
/**
 * The user databases on a private PostgreSQL cluster of the bench's own, with pg_stat_statements
 * loaded and created in "main", durability as on the shared server (fsync, full_page_writes on), and
 * the guarded section's pgbench in "main" itself — production traffic in the database of the table
 * being migrated, so every signal of the guard (probe, statements) can see it.
 */
const GUARD_PRIVATE = argv.includes('--guard-private');
/** Seconds the guard has, after its first baseline, to settle before its during window. */
const GUARD_SETTLE_SECONDS = intArg('guard-settle-seconds', 8);
const SKIP_CROSS = argv.includes('--skip-cross');
const PGBENCH = process.env['PGBENCH'] ?? 'pgbench';
const WORKER_ENTRY = fileURLToPath(new URL('../../apps/worker/src/main.ts', import.meta.url));

const GOALS = { tidewayRatio: 0.8, pgbenchTpsRatio: 0.9, pgbenchP99Ratio: 1.5, crossRatio: 0.4, guardedP99Ratio: 1.3, guardedTpsRatio: 0.95, guardedToBestCap: 0.8 } as const;

const MAPPING = {
  id: 'id',
  customer_id: 'customer_id',
  subtotal_cents: '(total_cents * 0.92)::bigint',
  status: "CASE status_code WHEN 0 THEN 'placed' WHEN 1 THEN 'paid' ELSE 'other' END",
  created_at: 'created_at',
  payload: 'payload',
} as const;
const TARGET_COLUMNS = Object.keys(MAPPING).sort();
const MAPPED_SELECT = TARGET_COLUMNS.map((c) => MAPPING[c as keyof typeof MAPPING]).join(', ');

const baselineSql = () => `INSERT INTO orders_v2 (${TARGET_COLUMNS.join(', ')}) SELECT ${MAPPED_SELECT} FROM orders`;
const SOURCE_DDL = (table: string) =>
  `CREATE TABLE ${table} (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, total_cents bigint NOT NULL, ` +
  `status_code int NOT NULL, created_at timestamptz NOT NULL, payload text NOT NULL)`;
const TARGET_DDL = (table: string) =>
  `CREATE TABLE ${table} (id bigint PRIMARY KEY, customer_id bigint, subtotal_cents bigint, status text, created_at timestamptz, payload text)`;
/** Deterministic rows 1..n: four status codes (3 maps to 'other'), a 60-character payload. */
const FILL = (table: string, n: number) =>
  `INSERT INTO ${table} (id, customer_id, total_cents, status_code, created_at, payload) ` +
  `SELECT g, (g * 7919) % 100000, (g * 104729) % 1000000, (g % 4)::int, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', ` +
  `substr(md5(g::text) || md5((g + 1)::text), 1, 60) FROM generate_series(1::bigint, ${n}::bigint) g`;

// ---------------------------------------------------------------------------------------------
// Cleanup: every resource registers how to release it; run newest first, once.

const cleanups: { what: string; run: () => Promise<unknown> }[] = [];
const defer = (what: string, run: () => Promise<unknown>) => cleanups.push({ what, run });
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      await c.run().catch((error: unknown) => console.error(`bench: cleanup of ${c.what} failed: ${error instanceof Error ? error.message : String(error)}`));
    }
    // Safety net: any direct child still alive (e.g. a worker whose start timed out) is stopped by PID.
    for (const pid of ownChildren()) stopPid(pid, 'SIGKILL');
  })();
  return cleaning;
}

/** PIDs of this process's direct children (Linux /proc), to stop any that escaped bookkeeping. */
function ownChildren(): number[] {
  try {
    const tasks = readdirSync(`/proc/${process.pid}/task`);
    return tasks.flatMap((t) => readFileSync(`/proc/${process.pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

function stopPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM (a worker finishes its chunk), then SIGKILL after `graceMs`. */
async function stopChild(pid: number, exited: Promise<unknown>, graceMs = 10_000): Promise<void> {
  stopPid(pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
  clearTimeout(timer);
  if (killed) {
    stopPid(pid, 'SIGKILL');
    await exited;
  }
}

/** Set once by a signal or the global timeout: the exit code, after cleanup. */
let stopCode: number | null = null;
function stop(code: number, why: string): void {
  if (stopCode !== null) return;
  stopCode = code;
  console.error(`bench: ${why}, cleaning up`);
  void cleanup().finally(() => process.exit(code));
}
process.on('SIGINT', () => stop(130, 'SIGINT'));
process.on('SIGTERM', () => stop(143, 'SIGTERM'));
const deadline = setTimeout(() => stop(124, `global timeout of ${TIMEOUT_MS / 60_000} min reached`), TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------
// Helpers

const seconds = (ms: number) => Math.round(ms) / 1000;
const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;
const log = (msg: string) => console.error(`bench: ${msg}`);
const notes: string[] = [];

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) throw new Error(`loopback only: refusing ${host}`);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

// ---------------------------------------------------------------------------------------------
// pgbench

interface PgbenchResult {
  readonly tps: number;
  readonly transactions: number;
  readonly failed: number;
  readonly latencyMs: { readonly avg: number; readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  /** TPS of each second (`-P 1`), to see when a disturbance happened. */
  readonly tpsPerSecond: number[];
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** Every transaction's latency, ms, sorted (pooled across windows; not printed). */
  readonly sortedLatencies: Float64Array;
}

function pgbenchConnArgs(db: TestDatabase): string[] {
  const u = new URL(db.url);
  return ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), db.name];
}

/** Runs pgbench to completion (its PID is registered for cleanup while it runs). */
async function runProcess(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGAPPNAME: 'bench-pgbench' } });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
  const pid = child.pid;
  const entry = { what: `${cmd} (pid ${pid})`, run: () => (pid ? stopChild(pid, exited, 2000) : Promise.resolve()) };
  cleanups.push(entry);
  const code = await exited;
  cleanups.splice(cleanups.indexOf(entry), 1);
  return { code, stdout, stderr };
}

async function pgbenchInit(db: TestDatabase): Promise<void> {
  const r = await runProcess(PGBENCH, ['-i', '-q', '-s', String(PGBENCH_SCALE), ...pgbenchConnArgs(db)]);
  if (r.code !== 0) throw new Error(`pgbench -i failed (${r.code}):\n${r.stderr}`);
}

/** Runs one pgbench window; `rate` adds `-R` (transactions/s), `seconds` overrides `--pgbench-seconds`. */
async function pgbenchRun(db: TestDatabase, label: string, opts: { rate?: number | null; seconds?: number } = {}): Promise<PgbenchResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tideway-bench-pgbench-'));
  try {
    const startedAtMs = Date.now();
    const r = await runProcess(PGBENCH, [
      '-c', String(PGBENCH_CLIENTS), '-j', String(PGBENCH_THREADS), '-T', String(opts.seconds ?? PGBENCH_SECONDS), '-P', '1',
      ...(opts.rate ? ['-R', String(opts.rate)] : []),
      '-l', `--log-prefix=${path.join(dir, label)}`, ...pgbenchConnArgs(db),
    ]);
    const endedAtMs = Date.now();
    if (r.code !== 0) throw new Error(`pgbench (${label}) failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
    const text = `${r.stdout}\n${r.stderr}`;
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(text)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(text)?.[1] ?? 0);
    const tpsPerSecond = [...text.matchAll(/progress: [\d.]+ s, ([\d.]+) tps/g)].map((m) => Math.round(Number(m[1])));
    // Per-transaction log: "client_id transaction_no time_us script_no epoch epoch_us".
    const latencies: number[] = [];
    for (const file of (await readdir(dir)).filter((f) => f.startsWith(`${label}.`))) {
      for (const line of (await readFile(path.join(dir, file), 'utf8')).split('\n')) {
        const us = Number(line.split(' ')[2]);
        if (line && Number.isFinite(us)) latencies.push(us / 1000);
      }
    }
    if (latencies.length === 0) throw new Error(`pgbench (${label}) wrote no per-transaction log in ${dir}`);
    const sorted = Float64Array.from(latencies).sort();
    const avg = latencies.reduce((a, b) => a + b, 0) / latencies.length;
    return {
      tps: round(tps, 1),
      transactions: latencies.length,
      failed,
      latencyMs: { avg: round(avg), p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)), max: round(percentile(sorted, 100)) },
      tpsPerSecond,
      startedAtMs,
      endedAtMs,
      sortedLatencies: sorted,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Tideway

interface Stack {
  readonly engine: Engine;
  readonly orch: TestDatabase;
}

/** Creates the migration and drives it to `dual_write` (trigger installed for trigger sync). */
async function createToDualWrite(engine: Engine, spec: MigrationSpecInput): Promise<string> {
  const m = await engine.migrations.create(spec, { actor: 'bench' });
  await engine.migrations.act(m.id, 'start', { actor: 'bench' });
  await engine.migrations.act(m.id, 'advance', { actor: 'bench' });
  return m.id;
}

/** Advances into backfill and waits for the run to complete; returns the client-side wall time. */
async function backfillToCompletion(engine: Engine, id: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await engine.migrations.act(id, 'advance', { actor: 'bench' });
  await waitForCompletion(engine, id, timeoutMs);
  return performance.now() - t0;
}

async function waitForCompletion(engine: Engine, id: string, timeoutMs: number) {
  return waitFor(
    'backfill complete',
    async () => {
      const p = await engine.backfillReadModel.progress(id);
      if (p && p.chunksFailed > 0) throw new Error(`chunks failed: ${JSON.stringify(p)}`);
      return p?.completedAt ? p : null;
    },
    timeoutMs,
    100,
  );
}

/** Chunk figures from the orchestrator database, and where the wall time of the run went. */
async function runStats({ orch }: Stack, id: string, concurrency: number) {
  const run = (
    await orch.query<{ chunk_rows: number; db_seconds: number | null }>(
      `SELECT chunk_rows, extract(epoch FROM completed_at - started_at)::float8 AS db_seconds FROM backfill_runs WHERE migration_id = $1`,
      [id],
    )
  ).rows[0];
  const c = (
    await orch.query<{
      done: number; split: number; extra_attempts: number; rows: string; min_rows: number; avg_rows: number; max_rows: number;
      copy_ms: number; lease_ms: number; wait_ms: number; first_rows: number | null; last_rows: number | null;
    }>(
      `SELECT count(*) FILTER (WHERE status = 'done')::int AS done,
              count(*) FILTER (WHERE status = 'split')::int AS split,
              coalesce(sum(attempts - 1) FILTER (WHERE status = 'done'), 0)::int AS extra_attempts,
              coalesce(sum(rows_copied) FILTER (WHERE status = 'done'), 0)::text AS rows,
              min(rows_copied) FILTER (WHERE status = 'done') AS min_rows,
              round(avg(rows_copied) FILTER (WHERE status = 'done'))::int AS avg_rows,
              max(rows_copied) FILTER (WHERE status = 'done') AS max_rows,
              coalesce(sum(duration_ms) FILTER (WHERE status = 'done'), 0)::float8 AS copy_ms,
              coalesce(sum(extract(epoch FROM finished_at - started_at) * 1000) FILTER (WHERE status = 'done'), 0)::float8 AS lease_ms,
              coalesce(avg(extract(epoch FROM started_at - created_at) * 1000) FILTER (WHERE status = 'done'), 0)::float8 AS wait_ms,
              (array_agg(rows_copied ORDER BY id) FILTER (WHERE status = 'done'))[1] AS first_rows,
              (array_agg(rows_copied ORDER BY id DESC) FILTER (WHERE status = 'done'))[2] AS last_rows
         FROM backfill_chunks WHERE migration_id = $1`,
      [id],
    )
  ).rows[0];
  if (!run || !c) throw new Error(`no backfill run for ${id}`);
  const dbMs = (run.db_seconds ?? 0) * 1000;
  return {
    chunks: c.done,
    chunksSplit: c.split,
    extraAttempts: c.extra_attempts,
    rowsCopied: Number(c.rows),
    finalChunkRows: run.chunk_rows,
    chunkRows: { first: c.first_rows, min: c.min_rows, avg: c.avg_rows, max: c.max_rows, lastFull: c.last_rows },
    dbSeconds: round(dbMs / 1000),
    timeBreakdown: {
      // Server-side time of the copy statements (what the chunk sizing sees).
      copyStatementSeconds: seconds(c.copy_ms),
      // Claim → checkpoint of each chunk (copy + BEGIN/SET/COMMIT + lease bookkeeping).
      leaseSeconds: seconds(c.lease_ms),
      // Share of the available worker slots (wall × concurrency) spent holding a chunk lease.
      slotUtilisation: dbMs > 0 ? round(c.lease_ms / (dbMs * concurrency)) : null,
      // Slot time outside leases per chunk: health check, pump/planning, queue hand-off.
      gapPerChunkMs: c.done > 0 ? Math.round((dbMs * concurrency - c.lease_ms) / c.done) : null,
      avgPlannedToClaimedMs: Math.round(c.wait_ms),
      copyStatementRowsPerSecond: c.copy_ms > 0 ? Math.round((Number(c.rows) / c.copy_ms) * 1000 * concurrency) : null,
    },
  };
}

async function abortQuietly(engine: Engine, id: string): Promise<void> {
  await engine.migrations.act(id, 'abort', { actor: 'bench', reason: 'benchmark finished' }).catch((error: unknown) => {
    notes.push(`abort of ${id} failed: ${error instanceof Error ? error.message : String(error)}`);
  });
}

/** count + md5 over the md5 of each mapped row in key order (timestamps as epoch, so no time zone enters). */
function checksumSql(select: Readonly<Record<string, string>>, from: string): string {
  const cols = TARGET_COLUMNS.map((c) => {
    const expr = select[c];
    if (expr === undefined) throw new Error(`no expression for ${c}`);
    return c === 'created_at' ? `extract(epoch FROM ${expr})` : `(${expr})`;
  });
  return `SELECT count(*)::text AS n, md5(coalesce(string_agg(md5(ROW(${cols.join(', ')})::text), '' ORDER BY id), '')) AS h FROM ${from}`;
}

// ---------------------------------------------------------------------------------------------
// The benchmark

interface Goal {
  readonly goal: string;
  readonly value: unknown;
  readonly met: boolean;
  /** Set when noise on the machine is larger than the effect the goal is about: `met` is then not a verdict. */
  readonly inconclusive?: string;
  /** The 90 % confidence interval of the per-window values the verdict rests on, where there are several. */
  readonly ci90?: readonly [number, number] | null;
}

/** What the sections share. */
interface Bench extends Stack {
  readonly user: TestDatabase;
  readonly baselineMs: number;
  readonly baselineRps: number;
  readonly goals: Record<string, Goal>;
}

const UNTHROTTLED_BACKFILL = { initialChunkRows: 5000, maxChunkRows: 100_000, targetChunkMs: TARGET_CHUNK_MS, concurrency: CONCURRENCY };
const SAME_DATASOURCE = {
  syncMode: 'trigger',
  source: { datasource: 'main', table: 'orders', key: 'id' },
  target: { datasource: 'main', table: 'orders_v2', key: 'id' },
  mapping: MAPPING,
  // subtotal_cents is lossy (× 0.92): no way back past write cutover, declared (the bench never gets there).
  rollbackAfterWriteCutover: false,
} as const;

const exactGoal = (d: { missingOrDifferent: number; extraOrDifferent: number }): Goal => ({
  goal: '0/0',
  value: d,
  met: d.missingOrDifferent === 0 && d.extraOrDifferent === 0,
});

/** Server-wide WAL position; the difference of two is the WAL written in between (all sessions). */
async function walLsn(db: TestDatabase): Promise<string> {
  return (await db.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l ?? '0/0';
}
async function walMbSince(db: TestDatabase, lsn: string): Promise<number> {
  const r = await db.query<{ b: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::text AS b', [lsn]);
  return Math.round(Number(r.rows[0]?.b ?? 0) / 1e6);
}

/** 3. The unthrottled same-datasource backfill, and the engine statement once over all rows. */
async function sectionTideway(b: Bench) {
  const { engine, user } = b;
  log('Tideway unthrottled backfill');
  const id = await createToDualWrite(engine, { ...SAME_DATASOURCE, name: 'bench-orders-v2', backfill: UNTHROTTLED_BACKFILL, throttle: { enabled: false } });
  await user.query('CHECKPOINT');
  const wal0 = await walLsn(user);
  const ms = await backfillToCompletion(engine, id, TIMEOUT_MS);
  const walMb = await walMbSince(user, wal0);
  const stats = await runStats(b, id, CONCURRENCY);
  log('mappingDiff');
  const diff = await mappingDiff(user, { source: 'orders', target: 'orders_v2', mapping: MAPPING });
  const spec = (await engine.migrations.describe(id)).migration.spec;
  await abortQuietly(engine, id);
  const rps = ROWS / (ms / 1000);
  b.goals['tidewayRatio'] = { goal: `>= ${GOALS.tidewayRatio}`, value: round(rps / b.baselineRps), met: rps / b.baselineRps >= GOALS.tidewayRatio };
  b.goals['tidewayExact'] = exactGoal(diff);

  let diagnostics: Record<string, unknown> | undefined;
  if (DIAGNOSTICS) {
    log('diagnostic: the engine chunk statement over the whole table');
    const stmt = chunkUpsertSql(spec, { columns: ['id'], types: ['bigint'] }, null, null);
    await user.query('TRUNCATE orders_v2');
    await user.query('CHECKPOINT');
    const w0 = await walLsn(user);
    const single = await timed(() => user.query(stmt.sql, stmt.params));
    const singleWalMb = await walMbSince(user, w0);
    // The machine may be shared: the same baseline again shows how much the ground moved meanwhile.
    log('diagnostic: baseline again');
    await user.query('TRUNCATE orders_v2');
    await user.query('CHECKPOINT');
    const again = await timed(() => user.query(baselineSql()));
    diagnostics = {
      engineStatementSingleShot: {
        what: "chunkUpsertSql with 'share' locking (INSERT … SELECT … FOR SHARE … ON CONFLICT DO UPDATE, the conflict path of application sync, ADR 003) over all rows in one statement: what row locks and upserts cost without orchestration; trigger sync's lock-free chunks run the baseline's plain INSERT … SELECT (ADR 005)",
        seconds: seconds(single.ms),
        rowsPerSecond: Math.round(ROWS / (single.ms / 1000)),
        ratioToBaseline: round(b.baselineMs / single.ms),
        walMb: singleWalMb,
      },
      baselineAgain: { seconds: seconds(again.ms), rowsPerSecond: Math.round(ROWS / (again.ms / 1000)), tidewayRatioToIt: round(again.ms / ms) },
    };
  }
  await user.query('TRUNCATE orders_v2');
  return {
    tideway: {
      spec: { syncMode: 'trigger', backfill: UNTHROTTLED_BACKFILL, throttle: { enabled: false } },
      seconds: seconds(ms),
      rowsPerSecond: Math.round(rps),
      ratioToBaseline: round(rps / b.baselineRps),
      walMb,
      mappingDiff: diff,
      ...stats,
    },
    ...(diagnostics ? { diagnostics } : {}),
  };
}

/** 4. pgbench in alone windows interleaved with windows beside a (paused in between) throttled backfill. */
let pgbenchDbOnce: Promise<TestDatabase> | null = null;
/** pgbench's own database (`pgbench -i -s --pgbench-scale`), created once for the sections that use it. */
function pgbenchDatabase(): Promise<TestDatabase> {
  pgbenchDbOnce ??= (async () => {
    const db = await createTestDatabase('bench_pgbench');
    defer('pgbench database', () => db.drop());
    log(`pgbench -i -s ${PGBENCH_SCALE}`);
    await pgbenchInit(db);
    await db.query('VACUUM ANALYZE');
    return db;
  })();
  return pgbenchDbOnce;
}

async function sectionPgbench(b: Bench) {
  const { engine, user, orch } = b;
  const pgbenchDb = await pgbenchDatabase();
  await user.query('CHECKPOINT');
  const throttledBackfill = {
    initialChunkRows: THROTTLED.chunkRows,
    maxChunkRows: THROTTLED.chunkRows,
    minChunkRows: Math.min(100, THROTTLED.chunkRows),
    targetChunkMs: THROTTLED.targetChunkMs,
    concurrency: 1,
    maxRowsPerSecond: THROTTLED.maxRowsPerSecond,
  };
  // Alone and during windows alternate (A D A D … A): the backfill is paused for every alone
  // window and resumed for every during window, so each during window is compared with the alone
  // windows right before and after it, and the machine's drift (often ±15 % in TPS over a minute
  // here) cancels out instead of deciding the verdict.
  const alone: PgbenchResult[] = [];
  const during: PgbenchResult[] = [];
  const duringRows: number[] = [];
  log(`pgbench alone (window 1 of ${PGBENCH_PAIRS + 1}, ${PGBENCH_SECONDS} s)`);
  await user.query('CHECKPOINT');
  alone.push(await pgbenchRun(pgbenchDb, 'alone-0'));
  log('Tideway throttled backfill + pgbench');
  // The static cap alone (the guard has its own section).
  const id = await createToDualWrite(engine, { ...SAME_DATASOURCE, name: 'bench-orders-v2-throttled', backfill: throttledBackfill, throttle: { latencyGuard: { enabled: false } } });
  const t0 = performance.now();
  await engine.migrations.act(id, 'advance', { actor: 'bench' });
  const wal0 = await walLsn(user);
  let walMbDuring = 0;
  let chunksDuring: { n: number; avg_rows: number; avg_ms: number } | null = null;
  let throttledReasonAtEnd: string | null = null;
  for (let pair = 1; pair <= PGBENCH_PAIRS; pair++) {
    // The during window starts once a chunk has been checkpointed since the (re)start.
    const before = (await engine.backfillReadModel.progress(id))?.rowsCopied ?? 0;
    await waitFor('a throttled chunk', async () => ((await engine.backfillReadModel.progress(id))?.rowsCopied ?? 0) > before, 60_000, 20);
    const rowsAtStart = (await engine.backfillReadModel.progress(id))?.rowsCopied ?? 0;
    const walAt = await walLsn(user);
    log(`pgbench during the throttled backfill (window ${pair} of ${PGBENCH_PAIRS})`);
    const d = await pgbenchRun(pgbenchDb, `during-${pair}`);
    walMbDuring += await walMbSince(user, walAt);
    const atEnd = await engine.backfillReadModel.progress(id);
    if (atEnd?.completedAt) throw new Error('the throttled backfill finished during a pgbench window: lower --throttled-max-rows-per-second or raise --rows');
    throttledReasonAtEnd = atEnd?.throttled?.reason ?? null;
    duringRows.push((atEnd?.rowsCopied ?? 0) - rowsAtStart);
    during.push(d);
    const c = (
      await orch.query<{ n: number; avg_rows: number; avg_ms: number }>(
        `SELECT count(*)::int AS n, round(avg(rows_copied))::int AS avg_rows, round(avg(duration_ms))::int AS avg_ms FROM backfill_chunks
          WHERE migration_id = $1 AND status = 'done' AND finished_at BETWEEN to_timestamp($2 / 1000.0) AND to_timestamp($3 / 1000.0)`,
        [id, d.startedAtMs, d.endedAtMs],
      )
    ).rows[0];
    if (c) chunksDuring = chunksDuring ? { n: chunksDuring.n + c.n, avg_rows: c.avg_rows, avg_ms: c.avg_ms } : c;
    // Pause (an operator action): the alone window starts once no chunk is running.
    await engine.migrations.act(id, 'pause', { actor: 'bench', reason: 'pgbench alone window' });
    await waitFor(
      'no chunk running',
      async () => (await orch.query<{ n: number }>(`SELECT count(*)::int AS n FROM backfill_chunks WHERE migration_id = $1 AND status = 'running'`, [id])).rows[0]?.n === 0,
      60_000,
      20,
    );
    log(`pgbench alone (window ${pair + 1} of ${PGBENCH_PAIRS + 1})`);
    alone.push(await pgbenchRun(pgbenchDb, `alone-${pair}`));
    if (pair < PGBENCH_PAIRS) await engine.migrations.act(id, 'resume', { actor: 'bench', reason: 'pgbench during window' });
  }
  const walMbOverall = await walMbSince(user, wal0);

  // Finish at full speed through a live PATCH, then check the result exactly.
  log('un-throttling (PATCH), resuming and finishing the throttled backfill');
  await engine.migrations.patch(id, { backfill: { ...UNTHROTTLED_BACKFILL, maxRowsPerSecond: null }, throttle: { enabled: false } }, { actor: 'bench', role: 'admin', reason: 'pgbench finished' });
  await engine.migrations.act(id, 'resume', { actor: 'bench', reason: 'pgbench finished' });
  await waitForCompletion(engine, id, TIMEOUT_MS);
  const totalMs = performance.now() - t0;
  const diff = await mappingDiff(user, { source: 'orders', target: 'orders_v2', mapping: MAPPING });
  await abortQuietly(engine, id);
  await user.query('TRUNCATE orders_v2');

  // Each during window against the mean of the alone windows around it; the verdict on the pooled
  // figures (all during windows against all bracketing alone means, all transactions for p99).
  const windows = during.map((d, i) => {
    const a0 = alone[i] as PgbenchResult;
    const a1 = alone[i + 1] as PgbenchResult;
    const aloneTps = (a0.tps + a1.tps) / 2;
    const aloneP99 = (a0.latencyMs.p99 + a1.latencyMs.p99) / 2;
    return {
      aloneBefore: { tps: a0.tps, p99Ms: a0.latencyMs.p99 },
      during: { tps: d.tps, p99Ms: d.latencyMs.p99, failed: d.failed },
      aloneAfter: { tps: a1.tps, p99Ms: a1.latencyMs.p99 },
      tpsRatio: round(d.tps / aloneTps),
      p99Ratio: round(d.latencyMs.p99 / aloneP99),
      backfillRowsPerSecond: Math.round((duringRows[i] ?? 0) / ((d.endedAtMs - d.startedAtMs) / 1000)),
    };
  });
  const bracketTps = during.reduce((sum, _d, i) => sum + ((alone[i] as PgbenchResult).tps + (alone[i + 1] as PgbenchResult).tps) / 2, 0);
  const tpsRatio = during.reduce((sum, d) => sum + d.tps, 0) / bracketTps;
  const aloneP99 = pooledP99(alone);
  const duringP99 = pooledP99(during);
  const p99Ratio = duringP99 / aloneP99;
  const aloneTpsList = alone.map((a) => a.tps);
  const spread = (Math.max(...aloneTpsList) - Math.min(...aloneTpsList)) / Math.max(...aloneTpsList);
  const duringSeconds = during.reduce((sum, d) => sum + (d.endedAtMs - d.startedAtMs) / 1000, 0);
  const duringRps = duringRows.reduce((a, b) => a + b, 0) / duringSeconds;
  // Drift larger than twice the effect judged (10 % TPS) even between interleaved windows: say so.
  const inconclusive =
    spread > 2 * (1 - GOALS.pgbenchTpsRatio)
      ? `pgbench alone windows ranged over ${Math.round(spread * 100)}% in TPS, more than twice the ${Math.round((1 - GOALS.pgbenchTpsRatio) * 100)}% effect measured: the machine's load changed meanwhile`
      : undefined;
  if (inconclusive) notes.push(inconclusive);
  b.goals['pgbenchTpsRatio'] = { goal: `>= ${GOALS.pgbenchTpsRatio}`, value: round(tpsRatio), met: tpsRatio >= GOALS.pgbenchTpsRatio, ...(inconclusive ? { inconclusive } : {}) };
  b.goals['pgbenchP99Ratio'] = { goal: `<= ${GOALS.pgbenchP99Ratio}`, value: round(p99Ratio), met: p99Ratio <= GOALS.pgbenchP99Ratio, ...(inconclusive ? { inconclusive } : {}) };
  b.goals['throttledExact'] = exactGoal(diff);
  return {
    command: `pgbench -c ${PGBENCH_CLIENTS} -j ${PGBENCH_THREADS} -T ${PGBENCH_SECONDS} -P 1 -l (scale ${PGBENCH_SCALE}, own database), ${PGBENCH_PAIRS + 1} alone windows interleaved with ${PGBENCH_PAIRS} during windows (backfill paused for the alone ones)`,
    alone: alone.map(strip),
    during: during.map(strip),
    windows,
    pooled: {
      aloneTps: round(aloneTpsList.reduce((a, x) => a + x, 0) / aloneTpsList.length, 1),
      duringTps: round(during.reduce((a, d) => a + d.tps, 0) / during.length, 1),
      aloneP99Ms: round(aloneP99),
      duringP99Ms: round(duringP99),
      aloneSpread: round(spread),
      rule: 'TPS: sum of during TPS over sum of the mean of the alone windows around each; p99: all during transactions against all alone transactions',
    },
    tpsRatio: round(tpsRatio),
    p99Ratio: round(p99Ratio),
    throttledBackfill: {
      spec: { syncMode: 'trigger', backfill: throttledBackfill, throttle: 'defaults (enabled)' },
      rowsCopiedDuringPgbench: duringRows.reduce((a, x) => a + x, 0),
      rowsPerSecondDuringPgbench: Math.round(duringRps),
      // Achieved rate over the configured maxRowsPerSecond (at most 1: the cap holds).
      rateToCap: round(duringRps / THROTTLED.maxRowsPerSecond, 2),
      chunksDuringPgbench: chunksDuring,
      walMbDuringPgbench: walMbDuring,
      walMbWhilePacedIncludingAloneWindows: walMbOverall,
      throttledReasonAtLastWindowEnd: throttledReasonAtEnd,
      totalSecondsIncludingUnthrottledFinish: seconds(totalMs),
      mappingDiff: diff,
    },
  };
}

/**
 * 6. The latency guard against static caps (issue 13): for two loads — pgbench at half its
 * saturation TPS (`-R`) and at saturation (`-c 4`, no rate) — the unthrottled backfill, each static
 * cap of {@link GUARD_CAPS} and the default spec (the guard) each get one during window, bracketed
 * by alone windows (A D A D … A), on a fresh migration each (aborted and the target truncated
 * after). Per config: rows/s during its window, pgbench TPS over the mean of the bracketing alone
 * windows, p99 over the p99 of both alone windows' transactions. Goals: guarded p99 ratio ≤ 1.3 and
 * TPS ratio ≥ 0.95, guarded rows/s ≥ 0.8 × the best static cap whose p99 ratio is ≤ 1.3.
 */
async function sectionGuarded(b: Bench, pgbenchDb: TestDatabase) {
  const { engine, user, orch } = b;
  // Every window starts from the same ground: no autovacuum lands inside one (the tables are
  // vacuumed between windows instead), and the checkpoint writes out what the last one dirtied.
  // It removes one source of noise, not the largest: alone windows at -R still ranged 18–818 ms in
  // p99 afterwards (21–431 ms before), stalls of the machine that pooling repeats only dilutes.
  const tables = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];
  for (const t of tables) await pgbenchDb.query(`ALTER TABLE ${t} SET (autovacuum_enabled = off)`);
  for (const t of ['orders', 'orders_v2']) await user.query(`ALTER TABLE ${t} SET (autovacuum_enabled = off)`);
  const settle = async () => {
    await pgbenchDb.query(`VACUUM ${tables.join(', ')}`);
    await user.query('CHECKPOINT');
    if (pgbenchDb.url !== user.url) await pgbenchDb.query('CHECKPOINT');
  };
  log(`guarded section: pgbench saturation (${GUARD_SECONDS} s)`);
  await settle();
  const saturation = await pgbenchRun(pgbenchDb, 'guard-saturation', { seconds: GUARD_SECONDS });
  const levels = [
    { name: 'halfSaturation', rate: Math.max(10, Math.round(saturation.tps / 2)) },
    { name: 'saturation', rate: null },
  ].filter((l) => GUARD_LEVELS === null || GUARD_LEVELS.has(l.name));
  const configs = [
    { name: 'unthrottled', spec: { backfill: UNTHROTTLED_BACKFILL, throttle: { enabled: false } } },
    ...GUARD_CAPS.map((cap) => ({ name: `cap${cap}`, cap, spec: { backfill: { ...UNTHROTTLED_BACKFILL, maxRowsPerSecond: cap }, throttle: { latencyGuard: { enabled: false } } } })),
    { name: 'guarded', spec: {} },
    // The guard's own cost: probes, ticks and small chunks, with the copy held at the floor's pace
    // (only with --guard-configs; compare it with cap2000).
    { name: 'guardedFloor', spec: { backfill: { maxRowsPerSecond: 200 } }, optIn: true },
  ].filter((c) => (GUARD_CONFIGS === null ? !('optIn' in c) : GUARD_CONFIGS.has(c.name)));
  const out: Record<string, unknown> = { saturationTps: saturation.tps };
  let n = 0;
  for (const level of levels) {
    const windows: Record<string, unknown>[] = [];
    const alone: PgbenchResult[] = [];
    log(`guarded section, ${level.name}: alone window`);
    await settle();
    alone.push(await pgbenchRun(pgbenchDb, `g-${level.name}-alone-0`, { rate: level.rate, seconds: GUARD_SECONDS }));
    const pooled = new Map<string, { during: PgbenchResult[]; brackets: PgbenchResult[]; bracketTps: number; rows: number; seconds: number }>();
    // Repetitions interleave the configs (A c1 A c2 … A c1 A c2 … A): the machine's drift (±30 % in
    // TPS between 15 s windows here) is spread over every config instead of landing on one.
    for (const [repeat, config] of Array.from({ length: GUARD_REPEATS }, (_, r) => configs.map((c) => [r, c] as const)).flat()) {
      await settle();
      // The guard starts under the production load, as it would in production: pgbench runs through
      // its baseline window and its settling, then the during window follows at once.
      // The backfill starts 3 s into it: its baseline is the load in its stride, not pgbench's start.
      const warm = config.name.startsWith('guarded') ? pgbenchRun(pgbenchDb, `g-${level.name}-warm`, { rate: level.rate, seconds: GUARD_SETTLE_SECONDS + 7 }) : null;
      if (warm) await new Promise((r) => setTimeout(r, 3000));
      const id = await createToDualWrite(engine, { ...SAME_DATASOURCE, name: `bench-guard-${n++}`, ...config.spec } as MigrationSpecInput);
      await engine.migrations.act(id, 'advance', { actor: 'bench' });
      if (warm) {
        await waitFor('the guard paces', async () => ((await engine.paces.get(engine.db, 'main'))?.mode === 'guarding' ? true : null), 60_000, 50);
        await warm;
      } else {
        await waitFor('a first chunk', async () => (((await engine.backfillReadModel.progress(id))?.rowsCopied ?? 0) > 0 ? true : null), 60_000, 20);
      }
      const rows0 = (await engine.backfillReadModel.progress(id))?.rowsCopied ?? 0;
      log(`guarded section, ${level.name}: during ${config.name}`);
      const trace: { pace: number | null; p99: number | null; baseline: number | null; commitP99: number | null; commitBaseline: number | null; statements: number | null; statementsBaseline: number | null; throughput: number | null; throughputBaseline: number | null; worse: string | null; mode: string }[] = [];
      let tracing = config.name.startsWith('guarded');
      const tracer = (async () => {
        while (tracing) {
          const row = await engine.paces.get(engine.db, 'main');
          if (row) {
            trace.push({
              pace: row.pace_rows_per_second, p99: row.observed_p99_ms, baseline: row.baseline_p99_ms, commitP99: row.commit_observed_p99_ms, commitBaseline: row.commit_baseline_p99_ms,
              statements: row.statements_observed_ms, statementsBaseline: row.statements_baseline_ms, throughput: row.throughput_observed_per_second, throughputBaseline: row.throughput_baseline_per_second, worse: row.worse_signal, mode: row.mode,
            });
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      const d = await pgbenchRun(pgbenchDb, `g-${level.name}-${config.name}`, { rate: level.rate, seconds: GUARD_SECONDS });
      tracing = false;
      await tracer;
      const after = await engine.backfillReadModel.progress(id);
      const rows = (after?.rowsCopied ?? 0) - rows0;
      await abortQuietly(engine, id);
      await waitFor(
        'no chunk running',
        async () => (await orch.query<{ n: number }>(`SELECT count(*)::int AS n FROM backfill_chunks WHERE migration_id = $1 AND status = 'running'`, [id])).rows[0]?.n === 0,
        60_000,
        20,
      );
      await user.query('TRUNCATE orders_v2');
      await settle();
      log(`guarded section, ${level.name}: alone window`);
      const a1 = await pgbenchRun(pgbenchDb, `g-${level.name}-alone-${alone.length}`, { rate: level.rate, seconds: GUARD_SECONDS });
      const a0 = alone[alone.length - 1] as PgbenchResult;
      alone.push(a1);
      const guardTrace = trace.filter((t) => t.mode === 'guarding' && t.pace !== null);
      const acc = pooled.get(config.name) ?? { during: [], brackets: [], bracketTps: 0, rows: 0, seconds: 0 };
      acc.during.push(d);
      acc.brackets.push(a0, a1);
      acc.bracketTps += (a0.tps + a1.tps) / 2;
      acc.rows += rows;
      acc.seconds += (d.endedAtMs - d.startedAtMs) / 1000;
      pooled.set(config.name, acc);
      windows.push({
        config: config.name,
        repeat,
        rowsPerSecond: Math.round(rows / ((d.endedAtMs - d.startedAtMs) / 1000)),
        finishedDuringWindow: after?.completedAt !== null && after?.completedAt !== undefined,
        tps: d.tps,
        p99Ms: d.latencyMs.p99,
        failed: d.failed,
        tpsRatio: round(d.tps / ((a0.tps + a1.tps) / 2)),
        p99Ratio: round(d.latencyMs.p99 / pooledP99([a0, a1])),
        ...(guardTrace.length
          ? {
              guard: {
                paceRowsPerSecond: { min: Math.round(Math.min(...guardTrace.map((t) => t.pace as number))), max: Math.round(Math.max(...guardTrace.map((t) => t.pace as number))), last: Math.round(guardTrace[guardTrace.length - 1]?.pace ?? 0) },
                baselineP99Ms: round(guardTrace[guardTrace.length - 1]?.baseline ?? 0),
                observedP99Ms: guardTrace.map((t) => round(t.p99 ?? 0, 2)),
                commitBaselineP99Ms: round(guardTrace[guardTrace.length - 1]?.commitBaseline ?? 0),
                commitObservedP99Ms: guardTrace.map((t) => round(t.commitP99 ?? 0, 2)),
                ...(guardTrace.some((t) => t.statements !== null)
                  ? {
                      statementsBaselineMs: round(guardTrace[guardTrace.length - 1]?.statementsBaseline ?? 0),
                      statementsObservedMs: guardTrace.map((t) => round(t.statements ?? 0, 2)),
                      throughputBaselinePerSecond: Math.round(guardTrace[guardTrace.length - 1]?.throughputBaseline ?? 0),
                      throughputObservedPerSecond: guardTrace.map((t) => Math.round(t.throughput ?? 0)),
                    }
                  : {}),
                worseSignal: guardTrace.map((t) => t.worse ?? '-').join(' '),
                paceTrace: guardTrace.map((t) => Math.round(t.pace ?? 0)),
                measuringBaselineSamples: trace.length - guardTrace.length,
              },
            }
          : {}),
      });
    }
    // Each config over all its repetitions: rows/s over its during windows, the sum of their TPS
    // over the sum of their brackets' means, and the p99 of all their transactions over the p99 of
    // all their brackets' transactions.
    // With each, the mean of its windows' own ratios and its 90 % confidence interval: what decides
    // whether a goal is met or the windows cannot tell.
    const windowRatios = (config: string, key: 'tpsRatio' | 'p99Ratio') => windows.filter((w) => w['config'] === config).map((w) => w[key] as number);
    const summary = [...pooled].map(([config, acc]) => ({
      config,
      windows: acc.during.length,
      rowsPerSecond: Math.round(acc.rows / acc.seconds),
      tpsRatio: round(acc.during.reduce((t, d) => t + d.tps, 0) / acc.bracketTps),
      p99Ratio: round(pooledP99(acc.during) / pooledP99(acc.brackets)),
      perWindow: { tpsRatio: meanCi90(windowRatios(config, 'tpsRatio')), p99Ratio: meanCi90(windowRatios(config, 'p99Ratio')) },
    }));
    // The machine's own noise on the same statistics: each inner alone window judged against the
    // alone windows bracketing it, as a during window is (no backfill ran in any of them).
    const nullTps: number[] = [];
    const nullP99: number[] = [];
    for (let i = 1; i + 1 < alone.length; i++) {
      const [before, self, next] = [alone[i - 1], alone[i], alone[i + 1]] as [PgbenchResult, PgbenchResult, PgbenchResult];
      nullTps.push(round(self.tps / ((before.tps + next.tps) / 2)));
      nullP99.push(round(self.latencyMs.p99 / pooledP99([before, next])));
    }
    const noise = { tpsRatio: meanCi90(nullTps), p99Ratio: meanCi90(nullP99), tpsRatios: nullTps, p99Ratios: nullP99 };
    const guarded = summary.find((w) => w.config === 'guarded') as (typeof summary)[number];
    const capsMeeting = summary.filter((w) => w.config.startsWith('cap') && w.p99Ratio <= GOALS.guardedP99Ratio);
    const bestCap = capsMeeting.reduce<(typeof summary)[number] | null>((best, w) => (best === null || w.rowsPerSecond > best.rowsPerSecond ? w : best), null);
    const toBest = bestCap ? guarded.rowsPerSecond / bestCap.rowsPerSecond : null;
    const p99Undecided = undecided(guarded.perWindow.p99Ratio, GOALS.guardedP99Ratio);
    const tpsUndecided = undecided(guarded.perWindow.tpsRatio, GOALS.guardedTpsRatio);
    b.goals[`guarded.${level.name}.p99Ratio`] = {
      goal: `<= ${GOALS.guardedP99Ratio}`, value: guarded.p99Ratio, met: guarded.p99Ratio <= GOALS.guardedP99Ratio, ci90: guarded.perWindow.p99Ratio.ci90, ...(p99Undecided ? { inconclusive: p99Undecided } : {}),
    };
    b.goals[`guarded.${level.name}.tpsRatio`] = {
      goal: `>= ${GOALS.guardedTpsRatio}`, value: guarded.tpsRatio, met: guarded.tpsRatio >= GOALS.guardedTpsRatio, ci90: guarded.perWindow.tpsRatio.ci90, ...(tpsUndecided ? { inconclusive: tpsUndecided } : {}),
    };
    b.goals[`guarded.${level.name}.toBestCap`] = {
      goal: `>= ${GOALS.guardedToBestCap} × the best static cap with p99 ratio <= ${GOALS.guardedP99Ratio}`,
      value: toBest === null ? 'no static cap met the p99 goal' : round(toBest),
      met: toBest === null ? guarded.p99Ratio <= GOALS.guardedP99Ratio : toBest >= GOALS.guardedToBestCap,
    };
    out[level.name] = { pgbench: level.rate === null ? `-c ${PGBENCH_CLIENTS} (saturation)` : `-c ${PGBENCH_CLIENTS} -R ${level.rate}`, alone: alone.map((a) => ({ tps: a.tps, p99Ms: a.latencyMs.p99 })), noise, summary, windows, bestStaticCap: bestCap ? bestCap.config : null };
  }
  return out;
}

/** 5. main.orders_x → other.orders_v2 (application sync: the COPY path). */
async function sectionCross(b: Bench, other: TestDatabase) {
  const { engine, user } = b;
  log(`cross-datasource backfill of ${CROSS_ROWS} rows`);
  await user.query(SOURCE_DDL('orders_x'));
  await user.query(FILL('orders_x', CROSS_ROWS));
  await user.query('VACUUM ANALYZE orders_x');
  await other.query(TARGET_DDL('orders_v2'));
  const id = await createToDualWrite(engine, {
    name: 'bench-orders-cross',
    syncMode: 'application',
    source: { datasource: 'main', table: 'orders_x', key: 'id' },
    target: { datasource: 'other', table: 'orders_v2', key: 'id' },
    mapping: MAPPING,
    rollbackAfterWriteCutover: false,
    backfill: UNTHROTTLED_BACKFILL,
    throttle: { enabled: false },
  });
  await user.query('CHECKPOINT');
  const wal0 = await walLsn(user);
  const ms = await backfillToCompletion(engine, id, TIMEOUT_MS);
  const walMb = await walMbSince(user, wal0);
  const stats = await runStats(b, id, CONCURRENCY);
  const identity = Object.fromEntries(TARGET_COLUMNS.map((c) => [c, c]));
  const [src, dst] = await Promise.all([
    user.query<{ n: string; h: string }>(checksumSql(MAPPING, 'orders_x')),
    other.query<{ n: string; h: string }>(checksumSql(identity, 'orders_v2')),
  ]);
  await abortQuietly(engine, id);
  const rps = CROSS_ROWS / (ms / 1000);
  const exact = !!src.rows[0] && src.rows[0].n === String(CROSS_ROWS) && src.rows[0].n === dst.rows[0]?.n && src.rows[0].h === dst.rows[0]?.h;
  b.goals['crossRatio'] = { goal: `>= ${GOALS.crossRatio}`, value: round(rps / b.baselineRps), met: rps / b.baselineRps >= GOALS.crossRatio };
  b.goals['crossExact'] = { goal: 'equal count and md5', value: exact, met: exact };
  return {
    spec: { syncMode: 'application', source: 'main.orders_x', target: 'other.orders_v2', backfill: UNTHROTTLED_BACKFILL, throttle: { enabled: false } },
    rows: CROSS_ROWS,
    seconds: seconds(ms),
    rowsPerSecond: Math.round(rps),
    ratioToBaseline: round(rps / b.baselineRps),
    walMb,
    checksum: { source: src.rows[0] ?? null, target: dst.rows[0] ?? null, equal: exact },
    ...stats,
  };
}

async function main() {
  const startedAt = new Date();
  const loadStart = os.loadavg().map((l) => round(l, 2));
  for (const url of [PG_ADMIN_URL, TEST_REDIS_URL]) assertLoopback(url);

  // 1. Databases and tables ----------------------------------------------------------------------
  log('creating databases');
  const orch = await createOrchestratorTestDatabase('bench_backfill');
  defer('orchestrator database', () => orch.drop());
  let userServer: string | undefined;
  if (GUARD_PRIVATE) {
    const shared = (await orch.query<{ s: string }>(`SELECT current_setting('shared_buffers') AS s`)).rows[0]?.s ?? '128MB';
    const server = await startPrivatePostgres({
      sharedPreloadLibraries: ['pg_stat_statements'],
      settings: { fsync: 'on', full_page_writes: 'on', shared_buffers: shared, max_connections: 200 },
      timeoutMs: 120_000,
    });
    defer('private PostgreSQL', () => server.stop());
    userServer = server.url;
    log(`private PostgreSQL on port ${server.port} (pg_stat_statements, fsync on)`);
  }
  const user = await createTestDatabase('bench_backfill_main', userServer);
  defer('main database', () => user.drop());
  if (GUARD_PRIVATE) await user.query('CREATE EXTENSION pg_stat_statements');
  const other = SKIP_CROSS ? null : await createTestDatabase('bench_backfill_other', userServer);
  if (other) defer('other database', () => other.drop());
  const settings = (
    await user.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', 'max_wal_size', 'synchronous_commit', 'wal_compression', 'full_page_writes', 'autovacuum')`,
    )
  ).rows;

  log(`building orders with ${ROWS} rows`);
  const build = await timed(async () => {
    await user.query(SOURCE_DDL('orders'));
    await user.query(FILL('orders', ROWS));
    await user.query(`SELECT setval(pg_get_serial_sequence('orders', 'id'), ${ROWS})`);
    await user.query('VACUUM ANALYZE orders');
    await user.query(TARGET_DDL('orders_v2'));
  });

  // 2. Baseline ------------------------------------------------------------------------------------
  log('baseline INSERT … SELECT');
  const insertSql = baselineSql();
  await user.query('CHECKPOINT');
  const wal0 = await walLsn(user);
  const base = await timed(() => user.query(insertSql));
  const baselineWalMb = await walMbSince(user, wal0);
  if (base.value.rowCount !== ROWS) throw new Error(`baseline copied ${base.value.rowCount} rows, expected ${ROWS}`);
  await user.query('TRUNCATE orders_v2');

  // Queue, a control engine (no Worker in this process) and two worker processes.
  const prefix = uniqueRedisPrefix();
  const redis = createRedisConnection(TEST_REDIS_URL);
  defer('redis connection', async () => redis.disconnect());
  const queue = openQueue(QUEUE_NAMES.work, { redisUrl: TEST_REDIS_URL, prefix }, redis);
  defer('queue', async () => {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  });
  const datasources: Record<string, string> = other ? { main: user.url, other: other.url } : { main: user.url };
  const engine = createEngine({ db: orch.db, datasources, queue: new BullmqWorkQueue(queue), workerName: 'bench-control' });
  defer('engine', () => engine.close());
  const workerEnv = {
    TIDEWAY_DATABASE_URL: orch.url,
    TIDEWAY_REDIS_URL: TEST_REDIS_URL,
    TIDEWAY_REDIS_PREFIX: prefix,
    TIDEWAY_DATASOURCES: JSON.stringify(datasources),
    TIDEWAY_WORKER_CONCURRENCY: '1',
    TIDEWAY_LOG_LEVEL: 'warn',
  };
  log('starting 2 workers');
  const workers: TsProcess[] = [];
  for (let i = 0; i < 2; i++) {
    const w = await startTsProcess(WORKER_ENTRY, { ...workerEnv, TIDEWAY_WORKER_NAME: `bench-worker-${i + 1}` }, 120_000);
    workers.push(w);
    defer(`worker ${w.pid}`, () => stopChild(w.pid, w.exited));
  }

  const b: Bench = { engine, orch, user, baselineMs: base.ms, baselineRps: ROWS / (base.ms / 1000), goals: {} };
  const same = ONLY_GUARD ? {} : await sectionTideway(b);
  const pgbench = SKIP_PGBENCH || ONLY_GUARD ? undefined : await sectionPgbench(b);
  const cross = other && !ONLY_GUARD ? await sectionCross(b, other) : undefined;
  let guarded: Awaited<ReturnType<typeof sectionGuarded>> | undefined;
  if (!SKIP_GUARD) {
    let pgbenchDb: TestDatabase;
    if (GUARD_PRIVATE) {
      log(`pgbench -i -s ${PGBENCH_SCALE} in the main database`);
      await pgbenchInit(user);
      await user.query('VACUUM ANALYZE');
      pgbenchDb = user;
    } else {
      pgbenchDb = await pgbenchDatabase();
    }
    guarded = await sectionGuarded(b, pgbenchDb);
  }

  const crashed = workers.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
  if (crashed) notes.push(`worker ${crashed.pid} exited during the run:\n${crashed.output().slice(-2000)}`);
  const loadEnd = os.loadavg().map((l) => round(l, 2));
  if (Math.max(...loadStart, ...loadEnd) > os.cpus().length + 0.5) {
    notes.push(`the machine was busy with other work (load average ${loadStart.join('/')} at start, ${loadEnd.join('/')} at end, ${os.cpus().length} cores): figures are noisier than on an idle machine`);
  }
  return {
    bench: 'backfill',
    startedAt: startedAt.toISOString(),
    durationSeconds: seconds(Date.now() - startedAt.getTime()),
    machine: { cores: os.cpus().length, node: process.version, loadAverageStart: loadStart, loadAverageEnd: loadEnd, postgres: Object.fromEntries(settings.map((s) => [s.name, s.setting])) },
    inputs: { rows: ROWS, crossRows: SKIP_CROSS ? null : CROSS_ROWS, pgbenchScale: PGBENCH_SCALE, pgbenchSeconds: PGBENCH_SECONDS, workers: 2, workerConcurrency: 1, throttled: THROTTLED },
    setup: { buildSeconds: seconds(build.ms) },
    baseline: { sql: insertSql, seconds: seconds(base.ms), rowsPerSecond: Math.round(b.baselineRps), walMb: baselineWalMb },
    ...same,
    ...(pgbench ? { pgbench } : {}),
    ...(cross ? { crossDatasource: cross } : {}),
    ...(guarded ? { guarded } : {}),
    goals: b.goals,
    allGoalsMet: Object.values(b.goals).every((g) => g.met && !g.inconclusive),
    notes,
  };
}

function strip(r: PgbenchResult) {
  const { startedAtMs: _s, endedAtMs: _e, sortedLatencies: _l, tpsPerSecond: _t, ...rest } = r;
  return rest;
}

/**
 * The mean of `values` with its two-sided 90 % Student-t confidence interval (`null` under two
 * values): mean ± t(0.95, n − 1) · s / √n, s the sample standard deviation.
 */
function meanCi90(values: readonly number[]): { n: number; mean: number | null; ci90: [number, number] | null } {
  const n = values.length;
  if (n === 0) return { n, mean: null, ci90: null };
  const mean = values.reduce((a, v) => a + v, 0) / n;
  if (n < 2) return { n, mean: round(mean), ci90: null };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const half = (jstat.jStat.studentt.inv(0.95, n - 1) * sd) / Math.sqrt(n);
  return { n, mean: round(mean), ci90: [round(mean - half), round(mean + half)] };
}

/** Why a goal's bound cannot be judged from these windows (their 90 % interval contains it, or there is no interval), or `undefined` when it can. */
function undecided(perWindow: { n: number; ci90: [number, number] | null }, bound: number): string | undefined {
  if (!perWindow.ci90) return `${perWindow.n} window(s): no confidence interval (--guard-repeats 2 or more gives one)`;
  const [lo, hi] = perWindow.ci90;
  return lo < bound && bound < hi ? `the 90 % confidence interval of the windows' ratios, [${lo}, ${hi}], contains the bound ${bound}: these windows cannot tell` : undefined;
}

/** p99 of the transactions of several windows together, ms. */
function pooledP99(results: readonly PgbenchResult[]): number {
  const all = new Float64Array(results.reduce((n, r) => n + r.sortedLatencies.length, 0));
  let at = 0;
  for (const r of results) {
    all.set(r.sortedLatencies, at);
    at += r.sortedLatencies.length;
  }
  return percentile(all.sort(), 99);
}

let exitCode = 0;
try {
  const report = await main();
  console.log(JSON.stringify(report, null, 2));
} catch (error) {
  exitCode = 1;
  // After a signal or the timeout, errors are the echo of the cleanup closing things underneath.
  if (stopCode === null) console.error('bench: failed:', error);
} finally {
  clearTimeout(deadline);
  await cleanup();
}
process.exit(stopCode ?? exitCode);
