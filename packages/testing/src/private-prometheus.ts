import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

/** A Prometheus server owned by one test file, scraping the targets it was given. */
export interface PrivatePrometheus {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly pid: number;
  /** SIGTERM (SIGKILL after 5 s), wait for exit, remove its data directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startPrivatePrometheus}. */
export interface PrivatePrometheusOptions {
  /** `host:port` of each target to scrape (`/metrics`). */
  readonly targets: readonly string[];
  /** Scrape (and rule evaluation) interval, seconds. @defaultValue 1 */
  readonly scrapeIntervalSeconds?: number;
  /** @defaultValue 30000 */
  readonly readyTimeoutMs?: number;
}

const DEBIAN_TOOL = fileURLToPath(new URL('../../../infra/debian-tool.mjs', import.meta.url));

/**
 * Starts Debian's `prometheus` (installed by `infra/debian-tool.mjs prometheus` when missing) on a
 * free loopback port with a fresh data directory, scraping `options.targets` every
 * `scrapeIntervalSeconds`, and resolves when `/-/ready` answers 200.
 *
 * @throws Error when prometheus cannot be installed or started, or is not ready in time (with its output).
 */
export async function startPrivatePrometheus(options: PrivatePrometheusOptions): Promise<PrivatePrometheus> {
  const which = spawnSync(process.execPath, [DEBIAN_TOOL, 'prometheus'], { encoding: 'utf8' });
  if (which.status !== 0) throw new Error(`prometheus is not available: ${which.stderr}`);
  const binary = which.stdout.trim();
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'tideway-prometheus-'));
  const interval = options.scrapeIntervalSeconds ?? 1;
  const config = [
    'global:',
    `  scrape_interval: ${interval}s`,
    `  evaluation_interval: ${interval}s`,
    'scrape_configs:',
    '  - job_name: test',
    '    static_configs:',
    `      - targets: [${options.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
  await writeFile(path.join(dir, 'prometheus.yml'), config);
  const child = spawn(binary, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (gone) {
      await stop();
      throw new Error(`prometheus exited before it was ready:\n${out}`);
    }
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus on port ${port} not ready in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, pid: child.pid as number, stop };
}
