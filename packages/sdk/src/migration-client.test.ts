import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Value } from 'typebox/value';
import { DualWriteReportSchema, ShadowResultBatchSchema, TidewayError, type DualWriteReport, type ShadowResult, type ShadowResultBatch } from '@tideway/core';
import { createMigrationClient, type MigrationClient, type MigrationClientOptions } from './migration-client.js';
import type { SdkErrorEvent } from './sdk-error-event.js';
import { FAKE_INSTALLATION, delay, fakeFetch, fakeFlags, type FakeAnswer, type FakeFlagStates, type RecordedPost } from './test-fakes.js';

const MIGRATION = { id: 'mig-1', name: 'orders-v2', installation: FAKE_INSTALLATION };
const RESULTS_URL = 'http://cp.test/v1/migrations/mig-1/shadow-results';
const REPORTS_URL = 'http://cp.test/v1/migrations/mig-1/dual-write-reports';

const open: MigrationClient[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function setup(flags: FakeFlagStates, options: Partial<MigrationClientOptions> & { answer?: FakeAnswer } = {}) {
  const cp = fakeFetch(options.answer ?? { status: 202 });
  const errors: SdkErrorEvent[] = [];
  const client = createMigrationClient({
    baseUrl: 'http://cp.test/',
    token: 'secret-token',
    migration: MIGRATION,
    flags: fakeFlags(MIGRATION.name, flags),
    fetch: cp.fetch,
    onError: (e) => errors.push(e),
    flushIntervalMs: 60_000,
    ...options,
  });
  open.push(client);
  return { client, cp, errors };
}

/** Every shadow result the fake control plane accepted, after checking each body against the contract. */
function acceptedResults(posts: RecordedPost[]): ShadowResult[] {
  return posts
    .filter((p) => p.url === RESULTS_URL)
    .flatMap((p) => {
      expect(Value.Check(ShadowResultBatchSchema, p.body), JSON.stringify(p.body).slice(0, 500)).toBe(true);
      expect(p.headers.authorization).toBe('Bearer secret-token');
      return (p.body as ShadowResultBatch).results;
    });
}

function acceptedReports(posts: RecordedPost[]): DualWriteReport[] {
  return posts
    .filter((p) => p.url === REPORTS_URL)
    .map((p) => {
      expect(Value.Check(DualWriteReportSchema, p.body), JSON.stringify(p.body)).toBe(true);
      expect(p.headers.authorization).toBe('Bearer secret-token');
      return p.body as DualWriteReport;
    });
}

async function settled(client: MigrationClient): Promise<void> {
  await client.idle();
  await client.flush();
}

describe('read', () => {
  it('with every flag off reads old only and records nothing', async () => {
    const { client, cp } = setup({});
    const readNew = vi.fn(() => 'new');
    expect(await client.read({ key: 1, readOld: () => 'old', readNew })).toBe('old');
    await settled(client);
    expect(readNew).not.toHaveBeenCalled();
    expect(cp.attempts).toBe(0);
    expect(client.stats().shadowReads).toBe(0);
  });

  it('shadowed: serves old, compares new in the background and sends a match with both latencies', async () => {
    const { client, cp } = setup({ shadowRead: true }, { now: () => Date.parse('2026-01-02T03:04:05.000Z') });
    const row = { id: 7, total: 10 };
    expect(await client.read({ key: 7, readOld: async () => row, readNew: async () => ({ id: 7, total: 10 }) })).toBe(row);
    await settled(client);
    const [result, ...rest] = acceptedResults(cp.posts);
    expect(rest).toEqual([]);
    expect(result).toMatchObject({ key: '7', outcome: 'match', at: '2026-01-02T03:04:05.000Z' });
    expect(result?.oldLatencyMs).toBeGreaterThanOrEqual(0);
    expect(result?.newLatencyMs).toBeGreaterThanOrEqual(0);
    expect(result?.diffPaths).toBeUndefined();
    expect(client.stats()).toMatchObject({ shadowReads: 1, matches: 1, mismatches: 0, newErrors: 0, sent: 1, buffered: 0 });
  });

  it('records a mismatch with its diff paths and both values, after normalize and ignore', async () => {
    const { client, cp } = setup({ shadowRead: true });
    const oldRow = { id: 'a', total: 12.5, updatedAt: 1, items: [{ sku: 'x' }, { sku: 'y' }, { sku: 'z' }] };
    const newRow = { id: 'a', total_cents: 1250n, updatedAt: 2, items: [{ sku: 'x' }, { sku: 'y' }, { sku: 'Z' }] };
    type Row = typeof oldRow | typeof newRow;
    const normalize = (r: Row) => {
      if (!('total_cents' in r)) return r;
      const { total_cents, ...rest } = r;
      return { ...rest, total: Number(total_cents) / 100 };
    };
    await client.read<Row>({ key: ['tenant-1', 42n], readOld: () => oldRow, readNew: () => newRow, normalize, ignore: ['updatedAt'] });
    await settled(client);
    const [result] = acceptedResults(cp.posts);
    expect(result).toMatchObject({
      key: '["tenant-1","42"]',
      outcome: 'mismatch',
      diffPaths: ['items[2].sku'],
      oldValue: oldRow,
      newValue: { id: 'a', total: 12.5, updatedAt: 2, items: [{ sku: 'x' }, { sku: 'y' }, { sku: 'Z' }] },
    });
    // Without normalize the renamed column shows up too.
    await client.read<Row>({ key: 'k2', readOld: () => oldRow, readNew: () => newRow, ignore: ['updatedAt'] });
    await settled(client);
    expect(acceptedResults(cp.posts)[1]?.diffPaths).toEqual(['total', 'items[2].sku', 'total_cents']);
    expect(acceptedResults(cp.posts)[1]?.newValue).toMatchObject({ total_cents: '1250' });
    expect(client.stats()).toMatchObject({ shadowReads: 2, mismatches: 2 });
  });

  it('uses a custom compare on normalised values', async () => {
    const { client, cp } = setup({ shadowRead: true });
    await client.read({ key: 1, readOld: () => 'A', readNew: () => 'a', compare: (a, b) => String(a).toLowerCase() === String(b).toLowerCase() });
    await client.read({ key: 2, readOld: () => 'A', readNew: () => 'b', compare: () => false });
    await client.read({ key: 3, readOld: () => 'A', readNew: () => 'b', compare: () => ['custom.path'] });
    await settled(client);
    const results = acceptedResults(cp.posts);
    expect(results.map((r) => [r.key, r.outcome, r.diffPaths])).toEqual([
      ['1', 'match', undefined],
      ['2', 'mismatch', undefined],
      ['3', 'mismatch', ['custom.path']],
    ]);
  });

  it('records new_error when readNew fails and still serves old', async () => {
    const { client, cp } = setup({ shadowRead: true });
    const readNew = () => Promise.reject(new RangeError('relation "orders_v2" does not exist'));
    expect(await client.read({ key: 9, readOld: () => 'old', readNew })).toBe('old');
    expect(await client.read({ key: 10, readOld: () => 'old', readNew: () => { throw new Error('sync boom'); } })).toBe('old');
    await settled(client);
    const results = acceptedResults(cp.posts);
    expect(results[0]).toMatchObject({ key: '9', outcome: 'new_error', error: 'RangeError: relation "orders_v2" does not exist' });
    expect(results[0]?.newLatencyMs).toBeUndefined();
    expect(results[1]).toMatchObject({ key: '10', outcome: 'new_error', error: 'Error: sync boom' });
    expect(client.stats()).toMatchObject({ shadowReads: 2, newErrors: 2 });
  });

  it("throws readOld's own error to the caller and records nothing for that read", async () => {
    const { client, cp } = setup({ shadowRead: true });
    const boom = new Error('old store down');
    await expect(client.read({ key: 1, readOld: () => Promise.reject(boom), readNew: () => 'new' })).rejects.toBe(boom);
    await expect(client.read({ key: 1, readOld: () => { throw boom; }, readNew: () => 'new' })).rejects.toBe(boom);
    await settled(client);
    expect(cp.attempts).toBe(0);
    expect(client.stats().shadowReads).toBe(0);
  });

  it('read-new serves new; with shadow-read on it still compares against old in the background', async () => {
    const { client, cp, errors } = setup({ readNew: true, shadowRead: (k) => k !== 'plain' });
    const readOld = vi.fn(() => 'old');
    expect(await client.read({ key: 'plain', readOld, readNew: () => 'new' })).toBe('new');
    expect(readOld).not.toHaveBeenCalled();
    expect(await client.read({ key: 'shadowed', readOld, readNew: () => 'new' })).toBe('new');
    expect(readOld).toHaveBeenCalledTimes(1);
    const newFailure = new Error('new store down');
    await expect(client.read({ key: 'failing', readOld: () => 'old', readNew: () => Promise.reject(newFailure) })).rejects.toBe(newFailure);
    await client.read({ key: 'old-fails', readOld: () => Promise.reject(new Error('old gone')), readNew: () => 'new' });
    await settled(client);
    expect(acceptedResults(cp.posts).map((r) => [r.key, r.outcome, r.diffPaths])).toEqual([
      ['shadowed', 'mismatch', ['']],
      ['failing', 'new_error', undefined],
    ]);
    expect(errors).toMatchObject([{ kind: 'shadow_read', key: 'old-fails' }]);
  });

  it('a slow readNew does not delay the caller: latency ≈ readOld', async () => {
    const { client, cp } = setup({ shadowRead: true });
    let newFinished = false;
    // readNew takes at least 200 ms and cannot finish before the test releases it, so "the caller
    // was back before readNew finished" does not depend on how busy the machine is.
    let releaseNew: () => void = () => undefined;
    const newGate = new Promise<void>((resolve) => (releaseNew = resolve));
    const readOld = () => delay(20, 'old');
    const readNew = () => Promise.all([delay(200, 'new'), newGate]).then(([v]) => ((newFinished = true), v));

    // Minimum of five runs each, so a busy machine cannot make the comparison flaky.
    const direct: number[] = [];
    const viaSdk: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await readOld();
      direct.push(performance.now() - t0);
      const t1 = performance.now();
      expect(await client.read({ key: i, readOld, readNew })).toBe('old');
      viaSdk.push(performance.now() - t1);
    }
    expect(newFinished).toBe(false);
    expect(Math.min(...viaSdk)).toBeLessThan(Math.min(...direct) + 5);
    expect(Math.max(...viaSdk)).toBeLessThan(150);

    // Immediate readOld, 200 ms readNew: the caller is back at once.
    const t2 = performance.now();
    await client.read({ key: 'immediate', readOld: () => 'old', readNew });
    expect(performance.now() - t2).toBeLessThan(50);
    expect(newFinished).toBe(false);
    releaseNew();

    await client.idle();
    expect(newFinished).toBe(true);
    expect(client.stats().shadowReads).toBe(6);
    expect(acceptedResults((await client.flush(), cp.posts)).every((r) => (r.newLatencyMs ?? 0) >= 195)).toBe(true);
  });
});

describe('write', () => {
  it('with dual-write off writes old only', async () => {
    const { client, cp } = setup({});
    const writeNew = vi.fn(() => 'n');
    expect(await client.write({ key: 1, writeOld: () => 'o', writeNew })).toBe('o');
    await settled(client);
    expect(writeNew).not.toHaveBeenCalled();
    expect(cp.attempts).toBe(0);
  });

  it('dual-write: returns old result, starts new after old, does not wait for new', async () => {
    const { client, cp } = setup({ dualWrite: true });
    const order: string[] = [];
    let newDone = false;
    const writeOld = async () => {
      order.push('old-start');
      await delay(5, null);
      order.push('old-end');
      return { id: 1 };
    };
    const writeNew = async () => {
      order.push('new-start');
      await delay(200, null);
      newDone = true;
      return { id: 1 };
    };
    const t0 = performance.now();
    expect(await client.write({ key: 1, writeOld, writeNew })).toEqual({ id: 1 });
    expect(performance.now() - t0).toBeLessThan(150);
    expect(newDone).toBe(false);
    expect(order).toEqual(['old-start', 'old-end', 'new-start']);
    await settled(client);
    expect(newDone).toBe(true);
    // The old write's wall time (~5 ms) rides along for the latency guard.
    const [report] = acceptedReports(cp.posts) as { writes: number; failures: unknown[]; latency?: { counts: number[]; sumMs: number } }[];
    expect(report).toMatchObject({ writes: 1, failures: [] });
    expect(report?.latency?.counts.reduce((a, b) => a + b, 0)).toBe(1);
    expect(report?.latency?.sumMs).toBeGreaterThanOrEqual(4);
    expect(report?.latency?.sumMs).toBeLessThan(150);
    expect(client.stats()).toMatchObject({ dualWrites: 1, dualWriteFailures: 0 });
  });

  it('counts the old store calls for the latency guard only while dual writes are on', async () => {
    const off = setup({});
    await off.client.write({ key: 1, writeOld: async () => ({ id: 1 }), writeNew: async () => ({ id: 1 }) });
    await off.client.read({ key: 1, readOld: async () => ({ id: 1 }), readNew: async () => ({ id: 1 }) });
    await settled(off.client);
    expect(off.cp.posts).toEqual([]);
    const on = setup({ dualWrite: true });
    await on.client.read({ key: 2, readOld: () => delay(3, { id: 2 }), readNew: async () => ({ id: 2 }) });
    await on.client.read({ key: 3, readOld: () => delay(3, { id: 3 }), readNew: async () => ({ id: 3 }) });
    await settled(on.client);
    const reports = acceptedReports(on.cp.posts) as { writes: number; latency?: { counts: number[]; sumMs: number } }[];
    expect(reports.map((r) => r.writes)).toEqual([0]);
    expect(reports[0]?.latency?.counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(reports[0]?.latency?.sumMs).toBeGreaterThanOrEqual(5);
  });

  it("propagates writeOld's error unchanged and never calls writeNew then", async () => {
    const { client } = setup({ dualWrite: true });
    const boom = new Error('unique violation');
    const writeNew = vi.fn(() => 'n');
    await expect(client.write({ key: 1, writeOld: () => Promise.reject(boom), writeNew })).rejects.toBe(boom);
    await expect(client.write({ key: 1, writeOld: () => { throw boom; }, writeNew })).rejects.toBe(boom);
    expect(writeNew).not.toHaveBeenCalled();
    expect(client.stats().dualWrites).toBe(0);
  });

  it('swallows a new-side failure, counts it and reports its key for re-drive', async () => {
    const { client, cp, errors } = setup({ dualWrite: true }, { now: () => Date.parse('2026-01-02T00:00:00.000Z') });
    expect(await client.write({ key: ['tenant-1', 42n], writeOld: () => 'o', writeNew: () => Promise.reject(new Error('new down')) })).toBe('o');
    expect(await client.write({ key: 43, writeOld: () => 'o', writeNew: () => { throw new TypeError('sync'); } })).toBe('o');
    expect(await client.write({ key: 44, writeOld: () => 'o', writeNew: () => 'n' })).toBe('o');
    await settled(client);
    expect(acceptedReports(cp.posts)).toMatchObject([
      {
        writes: 3,
        latency: { counts: expect.any(Array) },
        failures: [
          { key: ['tenant-1', '42'], error: 'Error: new down', at: '2026-01-02T00:00:00.000Z', side: 'new' },
          { key: ['43'], error: 'TypeError: sync', at: '2026-01-02T00:00:00.000Z', side: 'new' },
        ],
      },
    ]);
    expect(client.stats()).toMatchObject({ dualWrites: 3, dualWriteFailures: 2 });
    expect(errors.map((e) => [e.kind, e.side, e.key])).toEqual([
      ['dual_write', 'new', '["tenant-1","42"]'],
      ['dual_write', 'new', '43'],
    ]);
  });

  it('write-new (cutover) mirrors: new is authoritative, old best-effort, a failed old write reported for reverse re-drive', async () => {
    const { client, cp, errors } = setup({ writeNew: true, dualWrite: true }, { now: () => Date.parse('2026-01-02T00:00:00.000Z') });
    const order: string[] = [];
    expect(await client.write({ key: 1, writeOld: () => (order.push('old'), 'o'), writeNew: () => (order.push('new'), 'n') })).toBe('n');
    expect(order).toEqual(['new', 'old']);
    const boom = new Error('new store rejects');
    const writeOld = vi.fn(() => 'o');
    await expect(client.write({ key: 2, writeOld, writeNew: () => Promise.reject(boom) })).rejects.toBe(boom);
    expect(writeOld).not.toHaveBeenCalled();
    expect(await client.write({ key: 3, writeOld: () => Promise.reject(new Error('old gone')), writeNew: () => 'n' })).toBe('n');
    await settled(client);
    expect(acceptedReports(cp.posts)).toEqual([{ writes: 2, failures: [{ key: ['3'], error: 'Error: old gone', at: '2026-01-02T00:00:00.000Z', side: 'old' }] }]);
    expect(client.stats()).toMatchObject({ dualWrites: 2, dualWriteFailures: 1 });
    expect(errors.map((e) => [e.kind, e.side, e.key])).toEqual([['dual_write', 'old', '3']]);
  });

  it('runs best-effort writes of one key in call order', async () => {
    const { client } = setup({ dualWrite: true });
    const applied: string[] = [];
    await client.write({ key: 'k', writeOld: () => 1, writeNew: () => delay(40, null).then(() => applied.push('first')) });
    await client.write({ key: 'k', writeOld: () => 2, writeNew: () => (applied.push('second'), 2) });
    await client.write({ key: 'other', writeOld: () => 3, writeNew: () => (applied.push('other'), 3) });
    await client.idle();
    expect(applied).toEqual(['other', 'first', 'second']);
  });

  it('skips and reports best-effort writes beyond maxPendingWrites', async () => {
    const { client, cp } = setup({ dualWrite: true }, { maxPendingWrites: 2, closeTimeoutMs: 10 });
    const hang = () => new Promise<never>(() => {});
    for (const key of [1, 2, 3]) expect(await client.write({ key, writeOld: () => 'o', writeNew: hang })).toBe('o');
    await client.flush();
    expect(acceptedReports(cp.posts)).toMatchObject([{ writes: 3, failures: [{ key: ['3'] }] }]);
    expect(client.stats()).toMatchObject({ dualWrites: 3, dualWriteFailures: 1 });
  });
});

describe('never throws into the application', () => {
  it('treats a throwing flag reader as all flags off', async () => {
    const { client, errors } = setup({ dualWrite: 'throws', shadowRead: 'throws', readNew: 'throws', writeNew: 'throws' });
    const readNew = vi.fn(() => 'n');
    const writeNew = vi.fn(() => 'n');
    expect(await client.read({ key: 1, readOld: () => 'o', readNew })).toBe('o');
    expect(await client.write({ key: 1, writeOld: () => 'o', writeNew })).toBe('o');
    expect(readNew).not.toHaveBeenCalled();
    expect(writeNew).not.toHaveBeenCalled();
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e.kind === 'flags')).toBe(true);
  });

  it('falls back to the old path when keyToString throws, and ignores a throwing onError', async () => {
    const { client } = setup(
      { shadowRead: true, dualWrite: true },
      {
        keyToString: () => {
          throw new Error('bad key');
        },
        onError: () => {
          throw new Error('bad hook');
        },
      },
    );
    const readNew = vi.fn(() => 'n');
    expect(await client.read({ key: 1, readOld: () => 'o', readNew })).toBe('o');
    expect(await client.write({ key: 1, writeOld: () => 'o', writeNew: readNew })).toBe('o');
    expect(readNew).not.toHaveBeenCalled();
  });

  it('keeps serving when fetch rejects, throws synchronously or answers 503', async () => {
    for (const answer of ['reject', 'throw-sync', { status: 503 }] as const) {
      const { client, errors } = setup({ shadowRead: true, dualWrite: true }, { answer, batchSize: 5 });
      for (let i = 0; i < 20; i++) {
        expect(await client.read({ key: i, readOld: () => 'o', readNew: () => 'n' })).toBe('o');
        expect(await client.write({ key: i, writeOld: () => 'o', writeNew: () => Promise.reject(new Error('x')) })).toBe('o');
      }
      await settled(client);
      await client.close();
      const s = client.stats();
      expect(s).toMatchObject({ shadowReads: 20, sent: 0, dropped: 0, buffered: 20, dualWrites: 20, dualWriteFailures: 20 });
      expect(s.sendFailures).toBeGreaterThanOrEqual(2);
      expect(errors.some((e) => e.kind === 'send')).toBe(true);
    }
  });

  it('does not hang when fetch never answers: flush and close finish after requestTimeoutMs', async () => {
    const { client, errors } = setup({ shadowRead: true }, { answer: 'hang', requestTimeoutMs: 50 });
    const t0 = performance.now();
    expect(await client.read({ key: 1, readOld: () => 'o', readNew: () => 'n' })).toBe('o');
    expect(performance.now() - t0).toBeLessThan(50);
    await client.idle();
    const t1 = performance.now();
    await client.flush();
    await client.close();
    expect(performance.now() - t1).toBeLessThan(1000);
    expect(client.stats()).toMatchObject({ sendFailures: 2, sent: 0, buffered: 1 });
    expect(errors.filter((e) => e.kind === 'send')).toHaveLength(2);
    expect((errors[0]?.error as TidewayError).code).toBe('DEPENDENCY_UNAVAILABLE');
  });
});

describe('batching and the bounded buffer', () => {
  it('sends a batch as soon as batchSize results are buffered, the rest on flush', async () => {
    const { client, cp } = setup({ shadowRead: true }, { batchSize: 50 });
    for (let i = 0; i < 120; i++) await client.read({ key: i, readOld: () => i, readNew: () => i });
    await client.idle();
    await vi.waitFor(() => expect(cp.posts).toHaveLength(2));
    expect(cp.posts.map((p) => (p.body as ShadowResultBatch).results.length)).toEqual([50, 50]);
    await client.flush();
    expect(cp.posts.map((p) => (p.body as ShadowResultBatch).results.length)).toEqual([50, 50, 20]);
    expect(acceptedResults(cp.posts).map((r) => Number(r.key))).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(client.stats()).toMatchObject({ sent: 120, buffered: 0 });
  });

  it('sends everything pending every flushIntervalMs, and arms no timer while idle', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const { client, cp } = setup({ shadowRead: true, dualWrite: true }, { flushIntervalMs: 1000, batchSize: 200 });
    expect(vi.getTimerCount()).toBe(0);
    for (let i = 0; i < 5; i++) await client.read({ key: i, readOld: () => i, readNew: () => i });
    await client.write({ key: 1, writeOld: () => 1, writeNew: () => 1 });
    await client.idle();
    await vi.advanceTimersByTimeAsync(999);
    expect(cp.attempts).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(acceptedResults(cp.posts)).toHaveLength(5);
    expect(acceptedReports(cp.posts)).toMatchObject([{ writes: 1, failures: [], latency: { counts: expect.any(Array) } }]);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(cp.attempts).toBe(2);
    // The next read arms the timer again.
    await client.read({ key: 9, readOld: () => 9, readNew: () => 9 });
    await client.idle();
    await vi.advanceTimersByTimeAsync(1000);
    expect(acceptedResults(cp.posts)).toHaveLength(6);
  });

  it('never keeps the process alive: its timers are unref()ed', async () => {
    const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = refTimers();
    const { client } = setup({ shadowRead: true }, { flushIntervalMs: 1000, answer: 'hang', requestTimeoutMs: 200 });
    await client.read({ key: 1, readOld: () => 1, readNew: () => 1 });
    await client.idle();
    void client.flush(); // a POST now hangs with its timeout timer armed
    expect(refTimers()).toBe(before);
  });

  it('holds at most maxBufferedResults while the control plane is down, counts drops exactly, then catches up', async () => {
    const { client, cp, errors } = setup({ shadowRead: true }, { answer: 'reject' });
    const total = 50_000;
    for (let i = 0; i < total; i++) await client.read({ key: i, readOld: () => i, readNew: () => i });
    await client.idle();
    await client.flush();
    const down = client.stats();
    expect(down.shadowReads).toBe(total);
    expect(down.buffered).toBe(10_000);
    expect(down.dropped).toBe(total - down.buffered);
    expect(down.sent).toBe(0);
    // Size-triggered sends back off after a failure instead of hammering a down control plane.
    expect(cp.attempts).toBeLessThanOrEqual(3);
    expect(errors.filter((e) => e.kind === 'overflow')).toHaveLength(1);

    cp.setAnswer({ status: 202 });
    await client.flush();
    const batches = cp.posts.map((p) => p.body as ShadowResultBatch);
    expect(batches).toHaveLength(10_000 / 200);
    expect(batches[0]?.dropped).toBe(40_000);
    expect(batches.slice(1).every((b) => b.dropped === undefined)).toBe(true);
    expect(acceptedResults(cp.posts)).toHaveLength(10_000);
    expect(client.stats()).toMatchObject({ sent: 10_000, buffered: 0, dropped: 40_000 });
  });

  it('retries a failed batch on the next flush, once, and sends the drop count with it', async () => {
    const { client, cp } = setup({ shadowRead: true }, { answer: { status: 503 }, batchSize: 10, maxBufferedResults: 10 });
    for (let i = 0; i < 12; i++) await client.read({ key: i, readOld: () => i, readNew: () => i });
    await client.idle();
    await client.flush();
    expect(client.stats()).toMatchObject({ buffered: 10, dropped: 2, sent: 0 });
    cp.setAnswer({ status: 202 });
    await client.flush();
    await client.flush();
    const accepted = cp.posts.filter((p) => p.url === RESULTS_URL && (p.body as ShadowResultBatch).results.length > 0);
    const okBodies = accepted.slice(-1).map((p) => p.body as ShadowResultBatch);
    expect(okBodies[0]?.dropped).toBe(2);
    expect(okBodies[0]?.results.map((r) => Number(r.key))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(client.stats()).toMatchObject({ buffered: 0, sent: 10, dropped: 2 });
  });

  it('drops a batch the control plane refuses (4xx) instead of retrying it forever', async () => {
    const body = JSON.stringify({ error: { code: 'MIGRATION_NOT_FOUND', message: 'no such migration' } });
    const { client, cp, errors } = setup({ shadowRead: true }, { answer: { status: 404, body } });
    await client.read({ key: 1, readOld: () => 1, readNew: () => 1 });
    await settled(client);
    await client.flush();
    expect(cp.attempts).toBe(1);
    expect(client.stats()).toMatchObject({ dropped: 1, buffered: 0, sendFailures: 1 });
    const err = errors.find((e) => e.kind === 'send')?.error as TidewayError;
    expect(err.code).toBe('MIGRATION_NOT_FOUND');
    expect(err.message).toContain('no such migration');
  });

  it('keeps wire payloads inside the contract limits (key length, path count, error length, big values)', async () => {
    const { client, cp } = setup({ shadowRead: true });
    const longKey = 'k'.repeat(2000);
    const wide = (v: number) => Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, v]));
    await client.read({ key: longKey, readOld: () => wide(1), readNew: () => wide(2) });
    await client.read({ key: 2, readOld: () => 'o', readNew: () => Promise.reject(new Error('e'.repeat(5000))) });
    await client.read({ key: 3, readOld: () => ({ blob: 'x'.repeat(100_000) }), readNew: () => ({ blob: 'y' }) });
    await settled(client);
    const [a, b, c] = acceptedResults(cp.posts);
    expect(a?.key).toHaveLength(512);
    expect(a?.diffPaths).toHaveLength(100);
    expect(b?.error).toHaveLength(2000);
    expect(typeof c?.oldValue).toBe('string');
    expect((c?.oldValue as string).length).toBeLessThanOrEqual(8193);
  });
});

describe('lifecycle and options', () => {
  it('close() waits for background work, flushes, and stops shadowing', async () => {
    const { client, cp } = setup({ shadowRead: true, dualWrite: true });
    await client.read({ key: 1, readOld: () => 'o', readNew: () => delay(30, 'n') });
    await client.close();
    expect(acceptedResults(cp.posts)).toHaveLength(1);
    const readNew = vi.fn(() => 'n');
    expect(await client.read({ key: 2, readOld: () => 'o', readNew })).toBe('o');
    expect(readNew).not.toHaveBeenCalled();
    // Writes still honour the flags after close (data must stay correct).
    const writeNew = vi.fn(() => 'n');
    expect(await client.write({ key: 2, writeOld: () => 'o', writeNew })).toBe('o');
    expect(writeNew).toHaveBeenCalledTimes(1);
    await client.close();
  });

  it('rejects invalid options with VALIDATION_FAILED', () => {
    const base: MigrationClientOptions = { baseUrl: 'http://cp.test', token: 't', migration: MIGRATION, flags: fakeFlags('x', {}) };
    const cases: Array<[Partial<MigrationClientOptions>, string]> = [
      [{ baseUrl: 'not a url' }, 'baseUrl'],
      [{ token: '' }, 'token'],
      [{ migration: { id: '', name: 'x', installation: FAKE_INSTALLATION } }, 'migration.id'],
      [{ migration: { id: 'm', name: 'x', installation: '' } }, 'migration.installation'],
      [{ migration: { id: 'm', name: 'x', installation: 'Not-An-Id' } }, 'migration.installation'],
      [{ batchSize: 1001 }, 'batchSize'],
      [{ batchSize: 0 }, 'batchSize'],
      [{ maxBufferedResults: 10 }, 'maxBufferedResults'],
      [{ shadowSamplePercent: 101 }, 'shadowSamplePercent'],
      [{ flushIntervalMs: 0 }, 'flushIntervalMs'],
    ];
    for (const [patch, option] of cases) {
      let caught: unknown;
      try {
        createMigrationClient({ ...base, ...patch });
      } catch (e) {
        caught = e;
      }
      expect(caught, option).toBeInstanceOf(TidewayError);
      expect((caught as TidewayError).code).toBe('VALIDATION_FAILED');
      expect((caught as TidewayError).details).toEqual({ option });
    }
  });
});
