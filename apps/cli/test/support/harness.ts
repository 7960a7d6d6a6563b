import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp, loadConfig } from '@tideway/control-plane';
import { createOrchestratorTestDatabase, createTestDatabase, TEST_REDIS_URL, uniqueRedisPrefix, unleashTestEnv, type TestDatabase, ordersSpec } from '@tideway/testing';
import { expect } from 'vitest';

/** Secret of the bootstrap admin token of every harness control plane. */
export const ADMIN_TOKEN = 'cli-test-admin-token-0123456789';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** A control plane listening on a real port, on fresh databases. */
export interface ControlPlane {
  readonly url: string;
  readonly app: Awaited<ReturnType<typeof buildApp>>;
  readonly user: TestDatabase;
  /** The environment a worker needs to work for this control plane (same databases and Redis prefix). */
  readonly env: Record<string, string>;
  /** A scratch folder for spec files. */
  readonly dir: string;
  /** Writes `value` as JSON (or text as is) into the scratch folder and returns the path. */
  file(name: string, value: unknown): Promise<string>;
  /** A request straight to the API as the admin, for arranging and checking. */
  api<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/**
 * Builds the control plane with `buildApp(loadConfig(…))` on a fresh orchestrator database and a
 * user database holding `orders` and `orders_v2`, and listens on a free port of 127.0.0.1.
 */
export async function startControlPlane(label: string): Promise<ControlPlane> {
  const [orch, user] = await Promise.all([createOrchestratorTestDatabase(`${label}_orch`), createTestDatabase(`${label}_user`)]);
  await user.query('create table orders (id bigint primary key, total int); create table orders_v2 (id bigint primary key, total_cents bigint);');
  const env = {
    TIDEWAY_DATABASE_URL: orch.url,
    TIDEWAY_REDIS_URL: TEST_REDIS_URL,
    TIDEWAY_REDIS_PREFIX: uniqueRedisPrefix(),
    TIDEWAY_DATASOURCES: JSON.stringify({ main: user.url }),
    TIDEWAY_LOG_LEVEL: 'silent',
    ...unleashTestEnv(),
  };
  const app = await buildApp(loadConfig({ ...env, TIDEWAY_ADMIN_TOKEN: ADMIN_TOKEN }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error(`unexpected listen address ${String(address)}`);
  const url = `http://127.0.0.1:${address.port}`;
  const dir = await mkdtemp(join(tmpdir(), 'tideway-cli-'));
  return {
    url,
    app,
    user,
    env,
    dir,
    file: async (name, value) => {
      const path = join(dir, name);
      await writeFile(path, typeof value === 'string' ? value : JSON.stringify(value));
      return path;
    },
    api: async <T>(method: 'GET' | 'POST', path: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as T };
    },
    close: async () => {
      await app.close();
      await Promise.all([orch.drop(), user.drop(), rm(dir, { recursive: true, force: true })]);
    },
  };
}


/** How one `tideway` run ended. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** `TIDEWAY_TOKEN`; `null` sets none. @defaultValue ADMIN_TOKEN */
  readonly token?: string | null;
  /** Written to stdin, which is then closed. */
  readonly stdin?: string;
  readonly env?: Record<string, string>;
}

/** A `tideway` child process still running. */
export interface RunningCli {
  /** Resolves when stdout has printed a line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly result: Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `node --import tsx apps/cli/src/main.ts …args` against the control plane at `url`. */
export function spawnCli(url: string, args: readonly string[], options: CliOptions = {}): RunningCli {
  const env: NodeJS.ProcessEnv = { ...process.env, TIDEWAY_URL: url, ...options.env };
  delete env['TIDEWAY_TOKEN'];
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) env['TIDEWAY_TOKEN'] = token;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const w of [...watchers]) {
      const line = stdout.split('\n').find((l) => w.pattern.test(l));
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(options.stdin ?? '');
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return {
    result,
    kill: (signal) => child.kill(signal),
    waitForLine: (pattern, timeoutMs = 45_000) =>
      new Promise<string>((resolve, reject) => {
        const seen = stdout.split('\n').find((l) => pattern.test(l));
        if (seen !== undefined) return resolve(seen);
        const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} after ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`)), timeoutMs);
        watchers.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) });
        void result.then(() => {
          clearTimeout(timer);
          reject(new Error(`tideway exited before a line matching ${pattern}; stdout:\n${stdout}\nstderr:\n${stderr}`));
        });
      }),
  };
}

/**
 * Runs `tideway …args` to the end. Whatever the command, the token it was given never shows in its
 * output.
 */
export async function cli(url: string, args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await spawnCli(url, args, options).result;
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token) {
    expect(result.stdout).not.toContain(token);
    expect(result.stderr).not.toContain(token);
  }
  return result;
}

/** Parses the JSON of a `--json` run, failing with the output when it is not JSON. */
// Tests read arbitrary fields of answers.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function parseJson(result: CliResult): any {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`stdout is not JSON (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

export { ordersSpec };
