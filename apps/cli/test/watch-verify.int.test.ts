import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@tideway/testing';
import { loadWorkerConfig, startWorker, type WorkerRuntime } from '@tideway/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, cli, ordersSpec, parseJson, spawnCli, startControlPlane, type CliOptions, type ControlPlane } from './support/harness.js';

const ROWS = 3000;
let cp: ControlPlane;
let worker: WorkerRuntime;
/** A migration whose backfill is complete (backfill/active). */
let backfilled: string;
const run = (args: string[], options?: CliOptions) => cli(cp.url, args, options);

interface Resource {
  id: string;
  phase: string;
  status: string;
  progress: { completedAt?: string | null; chunksDone?: number; chunksTotal?: number };
}

beforeAll(async () => {
  cp = await startControlPlane('cli_watch');
  await cp.user.query(`insert into orders select g, g % 1000 from generate_series(1, ${ROWS}) g; analyze orders;`);
  worker = await startWorker(loadWorkerConfig({ ...cp.env, TIDEWAY_RECONCILE_INTERVAL_MS: '250' }));
  const created = await cp.api<Resource>('POST', '/v1/migrations', ordersSpec('orders-w', { backfill: { initialChunkRows: 500, maxChunkRows: 500 } }));
  backfilled = created.body.id;
  for (const action of ['start', 'advance', 'advance']) {
    const res = await cp.api<Resource>('POST', `/v1/migrations/${backfilled}/${action}`, {});
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  await waitFor(
    'backfill complete',
    async () => {
      const m = (await cp.api<Resource>('GET', `/v1/migrations/${backfilled}`)).body;
      return m.progress.completedAt ? m : null;
    },
    90_000,
    100,
  );
});

afterAll(async () => {
  await worker?.close();
  await cp?.close();
});

describe('tideway watch', () => {
  it('--once renders one reading (line, JSON line, and bars on a terminal); chunks lists the backfill', async () => {
    const [line, json, chunks, get] = await Promise.all([
      run(['watch', backfilled, '--once']),
      run(['watch', backfilled, '--once', '--json']),
      run(['migrations', 'chunks', backfilled, '--status', 'done', '--limit', '2']),
      run(['migrations', 'get', backfilled]),
    ]);
    expect(line.code, line.stderr).toBe(0);
    expect(line.stderr).toBe('');
    const lines = line.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ orders-w backfill\/active v4 \| backfill (\d+)\/\1 chunks 100% 0 rows\/s done \| divergence: no samples yet$/);

    expect(json.code).toBe(0);
    const reading = JSON.parse(json.stdout) as { migration: Resource; divergences: { totals: { samples: number } } };
    expect(reading.migration).toMatchObject({ id: backfilled, phase: 'backfill', status: 'active' });
    expect(reading.divergences.totals.samples).toBe(0);

    expect(chunks.code).toBe(0);
    const chunkLines = chunks.stdout.trimEnd().split('\n');
    expect(chunkLines[0]).toMatch(/^ID\s+STATUS\s+AFTER\s+UP TO\s+ROWS\s+MS\s+ATTEMPTS\s+WORKER\s+LAST ERROR$/);
    expect(chunkLines[1]).toMatch(/^\d+\s+done\s+\(start\)\s+\d+\s+[\d,]+\s+\d+\s+1\s+\S+\s+-$/);
    expect(chunkLines[2]).toMatch(/^\d+\s+done\s+\d+\s+\d+\s+/);
    expect(chunkLines[3]).toMatch(/^more: --cursor \S+ \(or --all\)$/);

    expect(get.stdout).toMatch(/^ {2}met {6}backfill-complete: all \d+ chunks done, 3000 rows copied$/m);
    expect(get.stdout).toMatch(/^ {2}rows {7}3,000 of ~3,000, 0 rows\/s, ETA done$/m);

    // On a terminal (a pseudo-terminal from util-linux `script`), cli-progress draws bars.
    const tty = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const command = `${process.execPath} --import tsx ${JSON.stringify(fileURLToPath(new URL('../src/main.ts', import.meta.url)))} watch ${backfilled} --once`;
      const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env: { ...process.env, TIDEWAY_URL: cp.url, TIDEWAY_TOKEN: ADMIN_TOKEN } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stdin.end();
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, out }));
    });
    expect(tty.out).not.toContain(ADMIN_TOKEN);
    expect(tty.code, tty.out).toBe(0);
    // eslint-disable-next-line no-control-regex
    const screen = tty.out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(screen).toContain('orders-w backfill/active v4  allowed: advance, pause, abort, rollback');
    expect(screen).toMatch(/backfill {3}█{30} 100% \| (\d+)\/\1 chunks \| 0 rows\/s \| ETA done/);
    expect(screen).toContain('divergence: no samples yet');
  });

  it('exits 0 by itself when the migration is aborted, 130 on SIGINT, 1 on an unknown migration', async () => {
    const id = (await cp.api<Resource>('POST', '/v1/migrations', ordersSpec('orders-x'))).body.id;
    await cp.api('POST', `/v1/migrations/${id}/start`, {});

    const watching = spawnCli(cp.url, ['watch', id, '--interval-ms', '100']);
    const interrupted = spawnCli(cp.url, ['watch', backfilled, '--interval-ms', '100']);
    await watching.waitForLine(/ orders-x prepare\/active v2 \| backfill not started \| divergence: no samples yet$/);
    expect((await cp.api('POST', `/v1/migrations/${id}/abort`, { reason: 'watch test' })).status).toBe(200);
    const ended = await watching.result;
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stderr).toBe('');
    const lines = ended.stdout.trimEnd().split('\n');
    expect(lines.at(-2)).toMatch(/ orders-x prepare\/aborted v3 \| /);
    expect(lines.at(-1)).toBe('orders-x is aborted');

    await interrupted.waitForLine(/ orders-w backfill\/active v4 /);
    interrupted.kill('SIGINT');
    const stopped = await interrupted.result;
    expect(stopped.code).toBe(130);
    expect(stopped.stdout.trimEnd().split('\n').at(-1)).toBe('interrupted');

    const unknown = await run(['watch', randomUUID(), '--once']);
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^error MIGRATION_NOT_FOUND: /);
  });
});

describe('tideway verify', () => {
  it('exits 0 when the target matches, 3 when it differs, 0 again after --repair', async () => {
    const clean = await run(['verify', backfilled, '--wait', '--interval-ms', '100']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stderr).toMatch(/^verification [0-9a-f-]{36} started: 1 ranges\n$/);
    expect(clean.stdout).toMatch(/^verification [0-9a-f-]{36}: passed: target equals mapping\(source\)\n/);
    expect(clean.stdout).toMatch(/^ {2}rows {8}3,000 compared$/m);
    expect(clean.stdout).toMatch(/^ {2}missing {5}0 /m);

    // Differences planted straight in the target (no trigger there).
    await cp.user.query(`delete from orders_v2 where id = 10; update orders_v2 set total_cents = -1 where id = 20; insert into orders_v2 values (${ROWS + 1}, 1);`);
    const dirty = await run(['verify', backfilled, '--wait', '--interval-ms', '100']);
    expect(dirty.code, dirty.stderr).toBe(3);
    expect(dirty.stdout).toMatch(/^verification [0-9a-f-]{36}: differences found\n/);
    expect(dirty.stdout).toMatch(/^ {2}missing {5}1 \(in source, not in target\)$/m);
    expect(dirty.stdout).toMatch(/^ {2}extra {7}1 \(in target, not in source\)$/m);
    expect(dirty.stdout).toMatch(/^ {2}different {3}1$/m);
    expect(dirty.stdout).toMatch(/^ {2}missing\s+10$/m);
    expect(dirty.stdout).toMatch(/^ {2}different\s+20$/m);
    expect(dirty.stdout).toMatch(new RegExp(`^ {2}extra\\s+${ROWS + 1}$`, 'm'));

    const repairedText = await run(['verify', backfilled, '--repair', '--interval-ms', '100']);
    expect(repairedText.code, repairedText.stderr).toBe(0);
    expect(repairedText.stderr).toMatch(/\nrepairing 3 key\(s\)…\n$/);
    // What the check found, then the repair, then the verification after it: findings as found, every one repaired.
    const [foundPart, repairPart] = repairedText.stdout.split(/^(?=repair [0-9a-f-]{36} of verification)/m);
    expect(foundPart).toMatch(/^verification [0-9a-f-]{36}: differences found\n/);
    expect(foundPart).toMatch(/^ {2}repaired {4}0 of 3 \(3 not repaired\)$/m);
    expect(repairPart).toMatch(/^repair [0-9a-f-]{36} of verification [0-9a-f-]{36}: finished \(by bootstrap-admin\)\n {2}attempted {3}3 key\(s\) no earlier repair had fixed\n {2}re-copied {3}2 upserted, 1 deleted\n {2}fixed {7}3\n {2}still diff {2}0\n/);
    expect(repairPart).toMatch(/^ {2}missing\s+10\s+fixed$/m);
    expect(repairPart).toMatch(/^verification [0-9a-f-]{36}: differences found, every one repaired and re-checked\n/m);
    expect(repairPart).toMatch(/^ {2}missing {5}1 \(in source, not in target\)$/m);
    expect(repairPart).toMatch(/^ {2}repaired {4}3 of 3 \(0 not repaired\)$/m);
    expect(repairPart).toMatch(/^ {2}KIND\s+KEY\s+REPAIRED BY$/m);
    expect(repairPart).toMatch(/^ {2}different\s+20\s+[0-9a-f-]{36}$/m);
    expect(repairPart).toMatch(/^ {2}ID\s+STATUS\s+BY\s+ATTEMPTED\s+FIXED\s+STILL DIFFERENT\s+FINISHED\n {2}[0-9a-f-]{36}\s+finished\s+bootstrap-admin\s+3\s+3\s+0\s+\d{4}-/m);

    await cp.user.query(`delete from orders_v2 where id = 12;`);
    const repaired = await run(['verify', backfilled, '--repair', '--json', '--interval-ms', '100']);
    expect(repaired.code, repaired.stderr).toBe(0);
    expect(parseJson(repaired)).toMatchObject({
      status: 'finished',
      keysAttempted: 1,
      fixed: 1,
      stillDifferent: 0,
      verification: { migrationId: backfilled, status: 'failed', outcome: 'repaired', missingInTarget: 1, extraInTarget: 0, different: 0, repaired: 1, unrepaired: 0 },
    });
    const rows = await cp.user.query<{ n: string }>(`select count(*) as n from orders_v2 o join orders s using (id) where o.total_cents = s.total * 100`);
    expect(Number(rows.rows[0]?.n)).toBe(ROWS);

    const [started, draft] = await Promise.all([
      run(['verify', backfilled]),
      (async () => {
        const id = (await cp.api<Resource>('POST', '/v1/migrations', ordersSpec('orders-v'))).body.id;
        return run(['verify', id, '--wait']);
      })(),
    ]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toMatch(/^verification [0-9a-f-]{36}: (running|passed: target equals mapping\(source\))\n/);
    expect(started.stdout).toContain(`wait for it: tideway verify ${backfilled} --wait`);
    expect(draft.code).toBe(1);
    expect(draft.stderr).toMatch(/^error INVALID_TRANSITION: verification needs a migration from backfill on, not draft\/active\nallowed actions: none\n/);

    // Five verifications so far (clean, dirty, two repaired, the last one started): newest first.
    const [list, paged, json] = await Promise.all([
      run(['verifications', backfilled]),
      run(['verifications', backfilled, '--limit', '1']),
      run(['verifications', backfilled, '--limit', '3', '--all', '--json']),
    ]);
    expect(list.code, list.stderr).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+OUTCOME\s+RANGES\s+ROWS\s+MISSING\s+EXTRA\s+DIFFERENT\s+REPAIRED\s+REPAIRS\s+STARTED$/);
    expect(lines).toHaveLength(6);
    // Newest first: the one just started, the two repaired ones (findings as found), the dirty one, the clean one.
    expect(lines[2]).toMatch(/^[0-9a-f-]{36}\s+failed\s+repaired\s+(\d+)\/\1\s+3,00\d\s+1\s+0\s+0\s+1\s+1\s+\d{4}-/);
    expect(lines[3]).toMatch(/^[0-9a-f-]{36}\s+failed\s+repaired\s+(\d+)\/\1\s+3,00\d\s+1\s+1\s+1\s+3\s+1\s+\d{4}-/);
    expect(lines[4]).toMatch(/^[0-9a-f-]{36}\s+failed\s+failed\s+(\d+)\/\1\s+3,00\d\s+1\s+1\s+1\s+0\s+0\s+\d{4}-/);
    expect(lines[5]).toMatch(/^[0-9a-f-]{36}\s+passed\s+passed\s+1\/1\s+3,000\s+0\s+0\s+0\s+0\s+0\s+\d{4}-/);
    expect(paged.stdout).toMatch(/^more: --cursor [A-Za-z0-9_-]+ \(or --all\)$/m);
    const all = parseJson(json) as { items: { id: string; startedAt: string }[]; nextCursor: null };
    expect(all.nextCursor).toBeNull();
    expect(all.items.map((v) => v.id)).toEqual(lines.slice(1).map((l) => l.split(/\s+/)[0]));

    // One verification by id: the findings as found and its repairs.
    const oneId = lines[3]?.split(/\s+/)[0] as string;
    const one = await run(['verifications', backfilled, oneId]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^verification ${oneId}: differences found, every one repaired and re-checked\n`));
    expect(one.stdout).toMatch(/^ {2}different {3}1$/m);
    expect(one.stdout).toMatch(/^repairs\n {2}ID\s+STATUS/m);
  });
});
