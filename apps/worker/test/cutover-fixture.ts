import { randomBytes } from 'node:crypto';
import { buildApp, loadConfig } from '@tideway/control-plane';
import { flagNames, type FlagNames } from '@tideway/core';
import { UnleashFlagControl, UnleashFlagReader } from '@tideway/flags';
import { ensureLocalUnleash, type LocalUnleash } from '@tideway/flags/testing';
import { waitFor, unguarded } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { createBackfillFixture, waitForBackfill, type BackfillFixture } from './fixture.js';

export const ADMIN = 'cutover-admin-token-0123456789';

/** A backfill fixture plus a real Unleash, a control plane (in-process, `inject`) and a worker polling every 250 ms. */
export interface CutoverFixture extends BackfillFixture {
  readonly unleash: LocalUnleash;
  readonly flags: UnleashFlagControl;
  app: FastifyInstance;
  readonly suffix: string;
  api(method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  reader(): Promise<UnleashFlagReader>;
  restartApp(): Promise<void>;
}

export async function createCutoverFixture(
  label: string,
  workerEnv: Record<string, string> = {},
  appEnv: Record<string, string> = {},
  options: { redisUrl?: string; workerLog?: (msg: string, extra?: unknown) => void } = {},
): Promise<CutoverFixture> {
  const base = await createBackfillFixture(label, options);
  const unleash = await ensureLocalUnleash();
  const unleashEnv = { TIDEWAY_UNLEASH_URL: unleash.url, TIDEWAY_UNLEASH_ADMIN_TOKEN: unleash.adminToken };
  await base.startWorker({ ...unleashEnv, ...workerEnv }, options.workerLog);
  const config = () => loadConfig({ ...base.env, ...unleashEnv, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent', ...appEnv });
  const readers: UnleashFlagReader[] = [];
  const f: CutoverFixture = {
    ...base,
    unleash,
    flags: new UnleashFlagControl({ url: unleash.url, adminToken: unleash.adminToken }),
    app: await buildApp(config()),
    suffix: randomBytes(3).toString('hex'),
    async api(method, url, payload) {
      const res = await f.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
      return { status: res.statusCode, body: res.json() as Record<string, unknown> };
    },
    async reader() {
      const r = new UnleashFlagReader({ url: unleash.url, clientToken: unleash.clientToken, appName: `test-${label}`, refreshIntervalMs: 1000 });
      await r.start();
      readers.push(r);
      return r;
    },
    async restartApp() {
      await f.app.close();
      f.app = await buildApp(config());
    },
    async close() {
      for (const r of readers) r.close();
      await f.app.close();
      await base.close();
    },
  };
  return f;
}

/**
 * Creates a migration and drives it through the API to shadow_read with a passed verification:
 * start, dual_write, backfill to the end, shadow_read, verification. Short windows so gates hold at once.
 */
export async function driveToVerifiedShadowRead(f: CutoverFixture, spec: Record<string, unknown>): Promise<string> {
  const created = await f.api('POST', '/v1/migrations', unguarded({
    shadowRead: { minWindowSeconds: 0 },
    abortCriteria: { minSamples: 0 },
    ...spec,
  }));
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = created.body['id'] as string;
  for (const action of ['start', 'advance', 'advance']) expect((await f.api('POST', `/v1/migrations/${id}/${action}`, {})).status).toBe(200);
  await waitForBackfill(f.engine, id, 60_000);
  expect((await f.api('POST', `/v1/migrations/${id}/advance`, {})).body['phase']).toBe('shadow_read');
  const v = await f.api('POST', `/v1/migrations/${id}/verifications`);
  await waitFor('verification passed', async () => (await f.api('GET', `/v1/migrations/${id}/verifications/${v.body['id'] as string}`)).body['status'] === 'passed', 60_000, 50);
  return id;
}

/** {@link driveToVerifiedShadowRead}, then (after `beforeCutover`) advance to cutover. */
export async function driveToCutover(f: CutoverFixture, spec: Record<string, unknown>, beforeCutover?: (id: string) => Promise<void>): Promise<string> {
  const id = await driveToVerifiedShadowRead(f, spec);
  await beforeCutover?.(id);
  const advanced = await f.api('POST', `/v1/migrations/${id}/advance`, {});
  expect(advanced.status, JSON.stringify(advanced.body)).toBe(200);
  expect(advanced.body['phase']).toBe('cutover');
  return id;
}

/** The flag names of migration `name` in the fixture's installation (the orchestrator database's id). */
export async function flagsOf(f: CutoverFixture, name: string): Promise<FlagNames> {
  return flagNames(await f.engine.installation.id(), name);
}

/** The ramp on the resource (progress.ramp). */
export async function ramp(f: CutoverFixture, id: string): Promise<{ step: number; percent: number; status: string; nextAt: string | null }> {
  const m = await f.api('GET', `/v1/migrations/${id}`);
  return (m.body['progress'] as { ramp: { step: number; percent: number; status: string; nextAt: string | null } }).ramp;
}

/** Keys `0 … n-1` that a reader sees on for `flag`. */
export function keysOn(reader: UnleashFlagReader, flag: string, n = 10_000): Set<number> {
  const on = new Set<number>();
  for (let i = 0; i < n; i++) if (reader.isEnabled(flag, { key: `k${i}` })) on.add(i);
  return on;
}

/** Waits until a reader sees `percent` % (±3) of 10,000 keys on; returns those keys. */
export async function waitForShare(reader: UnleashFlagReader, flag: string, percent: number): Promise<Set<number>> {
  return waitFor(`${flag} at ${percent} %`, () => {
    const on = keysOn(reader, flag);
    return Math.abs(on.size / 100 - percent) <= 3 ? on : null;
  }, 20_000, 100);
}
