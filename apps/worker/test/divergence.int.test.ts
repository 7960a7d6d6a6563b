import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildApp, loadConfig } from '@tideway/control-plane';
import type { ShadowResult } from '@tideway/core';
import { fileURLToPath } from 'node:url';
import { startTsProcess, waitFor, unguarded } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillFixture, waitForBackfill, type BackfillFixture } from './fixture.js';

const ADMIN = 'divergence-admin-token-0123456789';
const SECRET = 'divergence-webhook-secret';
const INTERVAL_MS = 1000;

let f: BackfillFixture;
let app: FastifyInstance;
let receiver: http.Server;
const received: { body: string; signature: string | undefined; event: string | undefined }[] = [];

beforeAll(async () => {
  f = await createBackfillFixture('divergence');
  await f.user.query(`
    create table accounts (id bigint primary key, balance bigint, email text);
    insert into accounts select g, g * 10, 'user' || g || '@example.com' from generate_series(1, 2000) g;
    create table accounts_v2 (id bigint primary key, balance_cents bigint, email text);`);
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push({ body, signature: req.headers['x-tideway-signature'] as string | undefined, event: req.headers['x-tideway-event'] as string | undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  await f.startWorker({ TIDEWAY_EVALUATION_INTERVAL_MS: String(INTERVAL_MS), TIDEWAY_WEBHOOK_URLS: hook, TIDEWAY_WEBHOOK_SECRET: SECRET });
  app = await buildApp(loadConfig({ ...f.env, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent', TIDEWAY_WEBHOOK_URLS: hook, TIDEWAY_WEBHOOK_SECRET: SECRET }));
});

afterAll(async () => {
  await app?.close();
  await new Promise((r) => receiver?.close(r));
  await f?.close();
});

const api = async (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) => {
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
};

let n = 0;
async function migrationInShadowRead(overrides: Record<string, unknown> = {}): Promise<string> {
  n++;
  await f.user.query(`truncate accounts_v2`);
  const created = await api('POST', '/v1/migrations', unguarded({
    name: `accounts-${n}`,
    syncMode: 'trigger',
    source: { datasource: 'main', table: 'accounts', key: 'id' },
    target: { datasource: 'main', table: 'accounts_v2', key: 'id' },
    mapping: { id: 'id', balance_cents: 'balance * 100', email: 'email' },
    reverseMapping: { balance: 'balance_cents / 100' },
    shadowRead: { redact: ['email', 'card.number'], minWindowSeconds: 0 },
    ...overrides,
  }));
  expect(created.status).toBe(201);
  const id = created.body['id'] as string;
  for (const action of ['start', 'advance', 'advance']) expect((await api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);
  await waitForBackfill(f.engine, id);
  expect((await api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('shadow_read');
  return id;
}

function results(count: number, mismatchKeys: Set<number>, at = new Date()): ShadowResult[] {
  return Array.from({ length: count }, (_, i) => {
    const key = (i % 2000) + 1;
    const base = { key: String(key), oldLatencyMs: 1 + (i % 3), newLatencyMs: 1 + (i % 4), at: at.toISOString() };
    return mismatchKeys.has(key) && i < 2000
      ? { ...base, outcome: 'mismatch' as const, diffPaths: ['balance'], oldValue: { id: key, balance: key * 10, email: `user${key}@example.com`, card: { number: '4111', brand: 'visa' } }, newValue: { id: key, balance: key * 10 + 1, email: `user${key}@example.com` } }
      : { ...base, outcome: 'match' as const };
  });
}

describe('divergence recorder', () => {
  it('keeps exactly the 37 diverging keys among 10,000 reads, with field paths and redacted samples', async () => {
    const id = await migrationInShadowRead({ abortCriteria: { maxDivergenceRate: 0.5 } });
    const planted = new Set(Array.from({ length: 37 }, (_, i) => 17 + i * 53));
    const all = results(10_000, planted);
    for (let i = 0; i < all.length; i += 1000) {
      const res = await api('POST', `/v1/migrations/${id}/shadow-results`, { results: all.slice(i, i + 1000) });
      expect(res).toEqual({ status: 202, body: { recorded: 1000 } });
    }
    const d = await api('GET', `/v1/migrations/${id}/divergences?limit=1000`);
    expect(d.body['totals']).toEqual({ samples: 10_000, mismatches: 37, errors: 0 });
    expect(d.body['rate']).toBeCloseTo(0.0037, 6);
    expect(d.body['rateUpper95']).toBeGreaterThan(0.0037);
    const items = d.body['items'] as { key: string; diffPaths: string[]; sampleOld: Record<string, unknown>; count: number }[];
    expect(items.map((i) => Number(i.key)).sort((a, b) => a - b)).toEqual([...planted].sort((a, b) => a - b));
    for (const item of items) {
      expect(item.diffPaths).toEqual(['balance']);
      expect(item.count).toBe(1);
      expect(item.sampleOld['email']).toBe('[REDACTED]');
      expect(item.sampleOld['card']).toEqual({ number: '[REDACTED]', brand: 'visa' });
      expect(item.sampleOld['balance']).toBe(Number(item.key) * 10);
    }
    const window = d.body['window5m'] as { samples: number; oldP99Ms: number; newP99Ms: number };
    expect(window).toMatchObject({ samples: 10_000, oldP99Ms: 3, newP99Ms: 5 });
  });

  it('re-drives a failed new-side write so the row matches afterwards', async () => {
    const id = await migrationInShadowRead();
    // The application wrote old, its new-side write failed, and nothing else touched new.
    await f.user.query(`alter table accounts disable trigger user`);
    await f.user.query(`update accounts set balance = 4242 where id = 7`);
    await f.user.query(`alter table accounts enable trigger user`);
    expect((await f.user.query(`select balance_cents from accounts_v2 where id = 7`)).rows).toEqual([{ balance_cents: '7000' }]);
    const res = await api('POST', `/v1/migrations/${id}/dual-write-reports`, { writes: 10, failures: [{ key: ['7'], error: 'ECONNRESET', at: new Date().toISOString() }] });
    expect(res).toEqual({ status: 202, body: { failures: 1, redriven: 1 } });
    expect((await f.user.query(`select balance_cents from accounts_v2 where id = 7`)).rows).toEqual([{ balance_cents: '424200' }]);
    const ledger = await api('GET', `/v1/migrations/${id}/divergences?kind=dual_write_failure`);
    expect(ledger.body['items']).toMatchObject([{ key: '["7"]', kind: 'dual_write_failure', error: 'ECONNRESET' }]);
    expect((ledger.body['items'] as { redrivenAt: string | null }[])[0]?.redrivenAt).not.toBeNull();
    expect((ledger.body['all'] as { dualWrites: number; dualWriteFailures: number })).toMatchObject({ dualWrites: 10, dualWriteFailures: 1 });
  });

  it('a re-drive that fails stays pending and an evaluation round re-drives it once the target takes the row', async () => {
    const id = await migrationInShadowRead();
    await f.user.query(`alter table accounts disable trigger user`);
    await f.user.query(`update accounts set balance = 777777 where id = 9`);
    await f.user.query(`update accounts set balance = 5 where id = 10`);
    await f.user.query(`alter table accounts enable trigger user`);
    const newRow = async () => (await f.user.query<{ balance_cents: string }>(`select balance_cents from accounts_v2 where id = 9`)).rows[0]?.balance_cents;
    // The new store refuses the row for now: a constraint an operator is about to fix.
    await f.user.query(`alter table accounts_v2 add constraint balance_cap check (balance_cents < 10000000)`);
    try {
      const at = new Date().toISOString();
      // A key of the wrong width is refused as a whole report, before anything is recorded.
      const wide = await api('POST', `/v1/migrations/${id}/dual-write-reports`, { writes: 1000, failures: [{ key: ['9'], error: 'timeout', at }, { key: ['10', 'x'], error: 'timeout', at }] });
      expect(wide.status).toBe(400);
      expect(wide.body['error']).toMatchObject({ code: 'VALIDATION_FAILED', details: { problems: [{ field: 'failures[1].key' }] } });
      // The batch fails on key 9; key 10 is then copied on its own, key 9 stays pending with the reason.
      const res = await api('POST', `/v1/migrations/${id}/dual-write-reports`, { writes: 1000, failures: [{ key: ['9'], error: 'timeout', at }, { key: ['10'], error: 'timeout', at }] });
      expect(res).toEqual({ status: 202, body: { failures: 2, redriven: 1 } });
      const pending = await api('GET', `/v1/migrations/${id}/divergences?kind=dual_write_failure`);
      const items = (pending.body['items'] as { key: string; redrivenAt: string | null; error: string }[]).sort((a, b) => a.key.localeCompare(b.key));
      expect(items.map((i) => [i.key, i.redrivenAt === null])).toEqual([['["10"]', false], ['["9"]', true]]);
      expect(items[1]?.error).toMatch(/^re-drive failed: .*balance_cap/);
      expect(await newRow()).toBe('9000');
      expect((await f.user.query(`select balance_cents from accounts_v2 where id = 10`)).rows).toEqual([{ balance_cents: '500' }]);
    } finally {
      await f.user.query(`alter table accounts_v2 drop constraint balance_cap`);
    }
    // The worker's evaluation round (every INTERVAL_MS) retries it.
    await waitFor('re-drive by an evaluation round', async () => (await newRow()) === '77777700', 15_000, 50);
    const done = await api('GET', `/v1/migrations/${id}/divergences?kind=dual_write_failure`);
    expect((done.body['items'] as { redrivenAt: string | null }[]).every((i) => i.redrivenAt !== null)).toBe(true);
  });
});

describe('SDK in an application process', () => {
  it('reports exactly the 37 diverging keys among 10,000 reads, with field paths and redacted values', async () => {
    const id = await migrationInShadowRead({ abortCriteria: { maxDivergenceRate: 0.5 } });
    const listening = await buildApp(loadConfig({ ...f.env, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent' }));
    await listening.listen({ port: 0, host: '127.0.0.1' });
    try {
      const token = ((await api('POST', '/v1/tokens', { name: `app-${Date.now()}`, role: 'operator' })).body['token']) as string;
      const planted = Array.from({ length: 37 }, (_, i) => 101 + i * 263);
      const app = await startTsProcess(fileURLToPath(new URL('./support/sdk-app.ts', import.meta.url)), {
        APP_BASE_URL: `http://127.0.0.1:${(listening.server.address() as AddressInfo).port}`,
        APP_TOKEN: token,
        APP_MIGRATION_ID: id,
        APP_MIGRATION_NAME: `accounts-${n}`,
        APP_MIGRATION_INSTALLATION: await f.engine.installation.id(),
        APP_DIVERGENT_KEYS: planted.join(','),
      }, 60_000, false);
      expect(await app.exited).toBe(0);
      const stats = JSON.parse(app.output().trim().split('\n').pop() as string) as Record<string, number>;
      expect(stats).toMatchObject({ served: 10_000, shadowReads: 10_000, matches: 9963, mismatches: 37, dropped: 0, sendFailures: 0 });
      const d = await api('GET', `/v1/migrations/${id}/divergences?limit=1000`);
      expect(d.body['totals']).toEqual({ samples: 10_000, mismatches: 37, errors: 0 });
      const items = d.body['items'] as { key: string; diffPaths: string[]; sampleOld: Record<string, unknown>; sampleNew: Record<string, unknown> }[];
      expect(items.map((i) => Number(i.key)).sort((a, b) => a - b)).toEqual(planted);
      for (const item of items) {
        expect(item.diffPaths).toEqual(['balance']);
        expect(item.sampleOld).toMatchObject({ email: '[REDACTED]', card: { number: '[REDACTED]', brand: 'visa' }, balance: Number(item.key) * 10 });
        expect(item.sampleNew).toMatchObject({ email: '[REDACTED]', card: { number: '[REDACTED]' }, balance: Number(item.key) * 10 + 1 });
      }
    } finally {
      await listening.close();
    }
  });
});

describe('abort criteria', () => {
  it('below the threshold nothing happens', async () => {
    const id = await migrationInShadowRead();
    await api('POST', `/v1/migrations/${id}/shadow-results`, { results: results(1000, new Set()) });
    for (let i = 0; i < 9; i++) await api('POST', `/v1/migrations/${id}/shadow-results`, { results: results(1000, new Set()) });
    const m = await f.engine.migrationReadModel.get(id);
    const evaluation = await f.engine.abortEvaluator.evaluate(m!);
    expect(evaluation).toEqual({ migrationId: id, breaches: [], acted: null });
    expect((await f.engine.migrationReadModel.get(id))?.status).toBe('active');
    const gate = (await api('GET', `/v1/migrations/${id}`)).body['gates'] as { name: string; passed: boolean; observed: Record<string, number> }[];
    expect(gate.find((g) => g.name === 'divergence-within-criteria')).toMatchObject({ passed: true, observed: { samples: 10_000, mismatches: 0 } });
  });

  it('a divergence above the threshold runs the configured action within one evaluation interval, audited with the numbers, and notifies the webhook', async () => {
    const id = await migrationInShadowRead({ abortCriteria: { action: 'rollback', minSamples: 500 } });
    const injectedAt = Date.now();
    await api('POST', `/v1/migrations/${id}/shadow-results`, { results: results(1000, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])) });
    const event = await waitFor('automatic rollback', async () => {
      const events = await f.engine.migrationReadModel.allEvents(id);
      return events.find((e) => e.actor === 'tideway:abort-criteria') ?? null;
    }, 10_000, 20);
    expect(event.action).toBe('rollback');
    expect(event.toPhase).toBe('backfill');
    expect(event.at.getTime() - injectedAt).toBeLessThanOrEqual(INTERVAL_MS + 500);
    const breach = (event.details['breaches'] as { criterion: string; observed: number; threshold: number; samples: number }[])[0];
    expect(breach).toMatchObject({ criterion: 'maxDivergenceRate', threshold: 0.001, samples: 1000 });
    expect(breach?.observed).toBeGreaterThan(0.005); // Wilson lower bound of 10/1000 ≈ 0.0054: proven over 0.001
    const hook = await waitFor('webhook received', () => received.find((r) => r.body.includes(id)) ?? null, 15_000);
    expect(hook.event).toBe('migration.abort_criteria_breached');
    expect(hook.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(hook.body).digest('hex')}`);
    expect(JSON.parse(hook.body)).toMatchObject({ event: 'migration.abort_criteria_breached', migrationId: id, action: 'rollback' });
  });
});
