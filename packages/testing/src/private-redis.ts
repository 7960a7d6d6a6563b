import { spawn } from 'node:child_process';
import { freePort } from './free-port.js';

/** A redis-server owned by one test file, so a FLUSHALL or a restart there touches no other test. */
export interface PrivateRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly pid: number;
  /** SIGTERM (SIGKILL after 5 s) and wait for exit; safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startPrivateRedis}. */
export interface PrivateRedisOptions {
  /** Port to listen on (to bring a stopped server back where its clients reconnect). @defaultValue a free port */
  readonly port?: number;
  /** @defaultValue 15000 */
  readonly readyTimeoutMs?: number;
}

/**
 * Starts `redis-server` on a free loopback port (or `options.port`) with persistence off and resolves when it logs
 * "Ready to accept connections". Tests that FLUSHALL use it: the shared Redis also carries the queues
 * of test files running in other packages at the same time.
 *
 * `options` may also be the ready timeout alone, milliseconds (as before).
 *
 * @throws Error when redis-server is not on PATH (infra/bootstrap.mjs installs it with the Redis it
 *   starts) or exits or is not ready within `readyTimeoutMs` (default 15 000 ms), with its output.
 */
export async function startPrivateRedis(options: PrivateRedisOptions | number = {}): Promise<PrivateRedis> {
  const { port: wanted, readyTimeoutMs = 15_000 } = typeof options === 'number' ? { readyTimeoutMs: options } : options;
  const port = wanted ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'notice'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server on port ${port} not ready after ${readyTimeoutMs} ms:\n${out}`));
    }, readyTimeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start redis-server (is it installed? infra/bootstrap.mjs installs it): ${error.message}`));
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server on port ${port} exited before it was ready:\n${out}`));
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid as number,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
