/**
 * pgbench as a live workload (the demo, the latency guard's tests): `pgbench -i` and fixed-rate runs with
 * per-transaction logs, from which TPS and latency percentiles are computed.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Connection of pgbench (libpq environment). */
export interface PgTarget {
  readonly host: string;
  readonly port: string;
  readonly user: string;
  readonly database: string;
}

function pgEnv(t: PgTarget): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: t.host, PGPORT: t.port, PGUSER: t.user, PGDATABASE: t.database };
}

function run(args: string[], t: PgTarget): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('pgbench', args, { env: pgEnv(t), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out }));
  });
}

/** `pgbench -i -s <scale>`: pgbench_accounts gets scale × 100,000 rows. */
export async function initPgbench(t: PgTarget, scale: number): Promise<void> {
  const r = await run(['-i', '-s', String(scale), '-q'], t);
  if (r.code !== 0) throw new Error(`pgbench -i failed:\n${r.out}`);
}

/** One latency sample of a pgbench transaction. */
export interface PgbenchSample {
  /** Completion time, epoch milliseconds. */
  readonly at: number;
  readonly latencyMs: number;
}

/** The outcome of one pgbench run. */
export interface PgbenchRun {
  readonly label: string;
  readonly seconds: number;
  readonly transactions: number;
  readonly failed: number;
  readonly tps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly samples: PgbenchSample[];
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

/**
 * Runs the TPC-B-like built-in script at a fixed rate (`-R`) with per-transaction logging and
 * returns TPS, failed transactions and latency percentiles computed from the log.
 */
export async function runPgbench(t: PgTarget, label: string, seconds: number, rate: number, clients = 4): Promise<PgbenchRun> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tideway-pgbench-'));
  try {
    const r = await run(['-n', '-c', String(clients), '-j', '2', '-R', String(rate), '-T', String(seconds), '-l', `--log-prefix=${path.join(dir, 'tx')}`], t);
    if (r.code !== 0 && !/number of transactions actually processed/.test(r.out)) throw new Error(`pgbench failed:\n${r.out}`);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(r.out)?.[1] ?? 0);
    const failed = Number(/number of failed transactions: (\d+)/.exec(r.out)?.[1] ?? 0) + (r.code !== 0 ? 1 : 0);
    const tps = Number(/tps = ([\d.]+)/.exec(r.out)?.[1] ?? 0);
    const samples: PgbenchSample[] = [];
    for (const file of await readdir(dir)) {
      for (const line of (await readFile(path.join(dir, file), 'utf8')).split('\n')) {
        // client_id transaction_no time script_no time_epoch time_us [schedule_lag]
        const f = line.trim().split(/\s+/);
        if (f.length < 6) continue;
        samples.push({ at: Number(f[4]) * 1000 + Math.floor(Number(f[5]) / 1000), latencyMs: Number(f[2]) / 1000 });
      }
    }
    const sorted = samples.map((s) => s.latencyMs).sort((a, b) => a - b);
    return { label, seconds, transactions: processed, failed, tps, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), samples };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
