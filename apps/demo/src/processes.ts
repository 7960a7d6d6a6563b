import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Every process the demo starts, so all of them stop with it — also on Ctrl-C. */
export class Processes {
  readonly #children = new Set<ChildProcess>();
  #stopping = false;

  constructor() {
    const stopAndExit = (signal: NodeJS.Signals) => {
      console.error(`\ndemo: ${signal}, stopping every process it started`);
      void this.stopAll().finally(() => process.exit(130));
    };
    process.once('SIGINT', stopAndExit);
    process.once('SIGTERM', stopAndExit);
  }

  /** Spawns and tracks a process. */
  spawn(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Spawns a TypeScript entry point through tsx and resolves once it reports `{ ready: true }`. */
  async startTs(entry: string, env: Record<string, string>, label: string, timeoutMs = 60_000): Promise<ChildProcess> {
    const child = this.spawn(process.execPath, ['--import', 'tsx', entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      child.on('message', (m: { ready?: boolean }) => {
        if (m?.ready) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${label} exited with ${code} while starting:\n${output}`));
      });
    });
    child.removeAllListeners('exit');
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** SIGTERM, then SIGKILL after `graceMs`, for every process still running. */
  async stopAll(graceMs = 10_000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await Promise.all([...this.#children].map((c) => stop(c, graceMs)));
  }
}

/** Stops one process: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
