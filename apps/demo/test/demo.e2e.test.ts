import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { mappingDiff, PG_ADMIN_URL } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let out: string;
let run: { code: number | null; output: string };

beforeAll(async () => {
  out = await mkdtemp(path.join(tmpdir(), 'tideway-demo-'));
  // The real command at a small scale, faults included.
  run = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'apps/demo/src/run.ts'), '--scale', '1', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
}, 600_000);

afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('npm run demo', () => {
  it('exits 0 and writes both report files', async () => {
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('Tideway demo PASSED');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document walked by the assertions
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Record<string, any>;
    expect(report['ok']).toBe(true);
    expect(report['verification']['final']).toMatchObject({ status: 'passed', different: 0, missingInTarget: 0, extraInTarget: 0, rowsCompared: 100_000 });
    expect(report['backfill']['rowsCopied']).toBe(100_000);
    expect(report['pgbench']['during']['failed']).toBe(0);
    expect(report['pgbench']['before']['transactions']).toBeGreaterThan(0);
    // The latency guard paced the backfill (the default spec) and the report has its figures.
    expect(report['pgbench']['byPhase']['backfill']['transactions']).toBeGreaterThan(0);
    expect(report['pgbench']['byPhase']['backfill']['p99Ms']).toBeGreaterThan(0);
    expect(report['series']['guard'].some((g: { mode: string; paceRowsPerSecond: number | null }) => g.mode === 'guarding' && (g.paceRowsPerSecond ?? 0) > 0)).toBe(true);
    expect(typeof report['latencyGuard']['backfillP99Ratio']).toBe('number');
    expect(report['demoService']['requests']).toBeGreaterThan(100);
    expect(report['demoService']['errors'] + report['demoService']['non2xx']).toBe(0);
    expect(report['faultsInjected']).toHaveLength(2);
    expect(report['phases'].map((p: { phase: string }) => p.phase)).toEqual(expect.arrayContaining(['prepare', 'dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup']));
    expect(report['ramp']['history'].filter((h: { event: string }) => h.event === 'step').map((h: { percent: number }) => h.percent)).toEqual([1, 5, 25, 50, 100]);
    expect(Date.parse(report['cleanup']['deadline'])).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect((await stat(path.join(out, 'report.html'))).size).toBeGreaterThan(2000);
  });

  it('leaves accounts_v2 equal to mapping(pgbench_accounts), by an independent checksum', async () => {
    const url = new URL(PG_ADMIN_URL);
    url.pathname = '/tideway_demo';
    const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
    try {
      const mapping = { aid: 'aid', branch_id: 'bid', balance_cents: 'abalance::bigint * 100' };
      expect(await mappingDiff(pool, { source: 'pgbench_accounts', target: 'accounts_v2', mapping })).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
      const sums = await pool.query<{ a: string; b: string }>('select (select sum(abalance::bigint * 100) from pgbench_accounts) as a, (select sum(balance_cents) from accounts_v2) as b');
      expect(sums.rows[0]?.a).toBe(sums.rows[0]?.b);
    } finally {
      await pool.end();
    }
  });

  it('renders in headless Chromium with the latency chart', async () => {
    const chromium = spawnSync(process.execPath, [path.join(root, 'infra/debian-tool.mjs'), 'chromium'], { encoding: 'utf8' });
    expect(chromium.status, chromium.stderr).toBe(0);
    const bin = chromium.stdout.trim();
    const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(out, 'chrome')}`];
    const page = `file://${path.join(out, 'report.html')}`;
    const shot = path.join(out, 'report.png');
    const s = spawnSync(bin, [...flags, `--screenshot=${shot}`, '--window-size=1100,1400', page], { encoding: 'utf8', timeout: 60_000 });
    expect(s.status, s.stderr).toBe(0);
    const png = await readFile(shot);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(20_000);
    const dom = spawnSync(bin, [...flags, '--dump-dom', page], { encoding: 'utf8', timeout: 60_000 });
    expect(dom.status, dom.stderr).toBe(0);
    expect(dom.stdout).toContain('id="latency-chart"');
    const points = /<polyline id="pgbench-line"[^>]*points="([^"]+)"/.exec(dom.stdout)?.[1] ?? '';
    expect(points.split(' ').length).toBeGreaterThan(20);
    expect(/<polyline id="demo-line"[^>]*points="([^"]+)"/.exec(dom.stdout)?.[1]?.split(' ').length ?? 0).toBeGreaterThan(20);
    expect(/<polyline id="guard-pace"[^>]*points="([^"]+)"/.exec(dom.stdout)?.[1]?.split(' ').length ?? 0).toBeGreaterThan(3);
    expect(dom.stdout).toContain('PASSED');
  });
});
