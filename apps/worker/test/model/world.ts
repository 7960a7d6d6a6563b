/**
 * The real system the model-based test drives (issue 12, acceptance 2): one orchestrator and one user
 * database, a private Redis (so FLUSHALL touches no other test), the checkout's Unleash, the control
 * plane listening on a loopback port (restartable) and a worker process (SIGKILLable). Shared by
 * every sequence of a run; each sequence gets its own tables and migrations ({@link openSequence}).
 */
import { fileURLToPath } from 'node:url';
import { UnleashFlagReader } from '@tideway/flags';
import { ensureLocalUnleash } from '@tideway/flags/testing';
import { freePort, startPrivateRedis, startTsProcess, type PrivateRedis, type TsProcess } from '@tideway/testing';
import { createBackfillFixture, type BackfillFixture } from '../fixture.js';

const WORKER_MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const CONTROL_PLANE_MAIN = fileURLToPath(new URL('../../../control-plane/src/server.ts', import.meta.url));
export const ADMIN = 'model-admin-token-0123456789abcdef';
/** The worker's evaluation and reconcile rounds, milliseconds: short, so a sequence moves. */
export const EVALUATION_MS = 500;
export const RECONCILE_MS = 250;

export interface ApiAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** The shared real system. */
export interface World {
  readonly f: BackfillFixture;
  readonly redis: PrivateRedis;
  readonly baseUrl: string;
  readonly flags: UnleashFlagReader;
  api(method: 'GET' | 'POST' | 'PATCH', path: string, payload?: unknown): Promise<ApiAnswer>;
  /** SIGKILL of the worker process, and a new one. */
  killWorker(): Promise<void>;
  /** SIGKILL of the control-plane process, and a new one on the same port. */
  restartControlPlane(): Promise<void>;
  flushRedis(): Promise<void>;
  /** Output of the current worker process, for failure messages. */
  workerOutput(): string;
  close(): Promise<void>;
}

export async function openWorld(label = 'model'): Promise<World> {
  const redis = await startPrivateRedis();
  const f = await createBackfillFixture(label, { redisUrl: redis.url });
  const unleash = await ensureLocalUnleash();
  const unleashEnv = { TIDEWAY_UNLEASH_URL: unleash.url, TIDEWAY_UNLEASH_ADMIN_TOKEN: unleash.adminToken };
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  // The control plane is a process of its own, so a restart is a SIGKILL (a crash), not a graceful close.
  const controlPlane = () =>
    startTsProcess(CONTROL_PLANE_MAIN, { ...f.env, ...unleashEnv, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent', TIDEWAY_HOST: '127.0.0.1', TIDEWAY_PORT: String(port) });
  let app: TsProcess = await controlPlane();
  let workers = 0;
  const worker = () =>
    startTsProcess(WORKER_MAIN, {
      ...f.env,
      ...unleashEnv,
      TIDEWAY_EVALUATION_INTERVAL_MS: String(EVALUATION_MS),
      TIDEWAY_RECONCILE_INTERVAL_MS: String(RECONCILE_MS),
      TIDEWAY_WORKER_NAME: `model-${workers++}`,
    });
  let w: TsProcess = await worker();
  const flags = new UnleashFlagReader({ url: unleash.url, clientToken: unleash.clientToken, appName: `test-${label}`, refreshIntervalMs: 250 });
  await flags.start();
  return {
    f,
    redis,
    baseUrl,
    flags,
    async api(method, path, payload) {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
    async killWorker() {
      await w.kill('SIGKILL');
      w = await worker();
    },
    async restartControlPlane() {
      await app.kill('SIGKILL');
      app = await controlPlane();
    },
    async flushRedis() {
      await f.redis.flushall();
    },
    workerOutput: () => w.output(),
    async close() {
      flags.close();
      await w.kill('SIGKILL');
      await app.kill('SIGKILL');
      await f.close();
      await redis.stop();
    },
  };
}
