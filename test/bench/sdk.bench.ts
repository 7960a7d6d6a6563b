/**
 * `npm run bench:sdk`: the SDK's overhead on the application's read path, in one process, no
 * network. Prints JSON.
 *
 * Three ways to read the same row, interleaved in blocks of 1,000 so JIT and GC state are shared:
 * - `direct`: `await readOld()`;
 * - `sdkOff`: `await client.read(...)` with every flag off (the SDK only asks the flags);
 * - `sdkShadow`: `await client.read(...)` with `shadow-read` on for every key: readNew runs, the two
 *   rows are deep-compared, a shadow result is buffered and batches of 200 are POSTed to a `fetch`
 *   stub that answers 202 at once (so batching and JSON encoding are part of what is measured).
 * readOld and readNew resolve immediately, so the figures are the SDK's own cost per call.
 * Overhead = percentile of the SDK mode − the same percentile of `direct`, microseconds.
 * Goal: shadow-read overhead p50 ≤ 20 µs.
 *
 * Inputs: --calls N per mode (default 200000), --warmup N per mode (default 20000). Bounded: stops by itself.
 */
import { performance } from 'node:perf_hooks';
import type { FlagReader } from '@tideway/core';
import { createMigrationClient, type FetchLike } from '@tideway/sdk';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : fallback;
};
const calls = arg('calls', 200_000);
const warmup = arg('warmup', 20_000);
const BLOCK = 1000;

const row = { id: 42, tenant: 'tenant-7', totalCents: 125_000, status: 'paid', items: [{ sku: 'a-1', qty: 2 }, { sku: 'b-2', qty: 1 }], updatedAt: '2026-01-02T03:04:05.000Z' };
const newRow = structuredClone(row);
const readOld = () => Promise.resolve(row);
const readNew = () => Promise.resolve(newRow);

let posts = 0;
const fetchStub: FetchLike = async () => {
  posts++;
  return { ok: true, status: 202, text: async () => '' };
};
const clientFor = (shadow: boolean) =>
  createMigrationClient({
    baseUrl: 'http://control-plane.invalid',
    token: 'bench',
    migration: { id: 'bench-migration', name: 'orders-v2', installation: 'bench' },
    flags: { isEnabled: (flag) => shadow && flag.endsWith('.shadow-read') } satisfies FlagReader,
    fetch: fetchStub,
  });
const shadowClient = clientFor(true);
const offClient = clientFor(false);

type Mode = 'direct' | 'sdkOff' | 'sdkShadow';
const modes: Mode[] = ['direct', 'sdkOff', 'sdkShadow'];
const run: Record<Mode, (key: number) => Promise<unknown>> = {
  direct: () => readOld(),
  sdkOff: (key) => offClient.read({ key, readOld, readNew }),
  sdkShadow: (key) => shadowClient.read({ key, readOld, readNew }),
};

async function measure(total: number, record: boolean): Promise<Record<Mode, Float64Array>> {
  const samples = { direct: new Float64Array(total), sdkOff: new Float64Array(total), sdkShadow: new Float64Array(total) };
  for (let start = 0; start < total; start += BLOCK) {
    const end = Math.min(total, start + BLOCK);
    for (const mode of modes) {
      const fn = run[mode];
      const out = samples[mode];
      for (let i = start; i < end; i++) {
        const t0 = performance.now();
        await fn(i);
        const t1 = performance.now();
        if (record) out[i] = (t1 - t0) * 1000;
      }
    }
  }
  return samples;
}

function summary(us: Float64Array) {
  const sorted = Float64Array.from(us).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  const r = (v: number) => Math.round(v * 1000) / 1000;
  return { p50: r(at(0.5)), p90: r(at(0.9)), p99: r(at(0.99)), p999: r(at(0.999)), mean: r(mean) };
}

await measure(warmup, false);
const started = performance.now();
const samples = await measure(calls, true);
const elapsedMs = performance.now() - started;
await shadowClient.close();
await offClient.close();

const direct = summary(samples.direct);
const sdkOff = summary(samples.sdkOff);
const sdkShadow = summary(samples.sdkShadow);
const overhead = (m: ReturnType<typeof summary>) => ({
  p50: Math.round((m.p50 - direct.p50) * 1000) / 1000,
  p99: Math.round((m.p99 - direct.p99) * 1000) / 1000,
  mean: Math.round((m.mean - direct.mean) * 1000) / 1000,
});
const shadowOverhead = overhead(sdkShadow);

console.log(
  JSON.stringify(
    {
      bench: 'sdk-read-overhead',
      node: process.version,
      callsPerMode: calls,
      warmupPerMode: warmup,
      elapsedMs: Math.round(elapsedMs),
      unit: 'µs per awaited call',
      direct,
      sdkOff,
      sdkShadow,
      overheadUs: { shadowRead: shadowOverhead, flagsOff: overhead(sdkOff) },
      goal: { shadowReadOverheadP50Us: 20, met: shadowOverhead.p50 <= 20 },
      shadowClient: shadowClient.stats(),
      posts,
    },
    null,
    2,
  ),
);
