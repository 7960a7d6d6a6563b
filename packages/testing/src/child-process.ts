import { spawn, type ChildProcess } from 'node:child_process';

/** A Node process running a TypeScript entry point through tsx, for tests that kill or restart it. */
export interface TsProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Output so far (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGKILL and wait for exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves when the process exits. */
  exited: Promise<number | null>;
}

/**
 * Starts `node --import tsx <entry>` with extra environment; resolves once the child sends
 * `{ ready: true }` over IPC (or rejects if it exits first or `readyTimeoutMs` passes, killing it).
 * With `waitForReady` false it resolves at once (for scripts that run to completion; await `exited`).
 */
export async function startTsProcess(entry: string, env: Record<string, string>, readyTimeoutMs = 30_000, waitForReady = true): Promise<TsProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (waitForReady) await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${entry} not ready after ${readyTimeoutMs} ms:\n${out}`));
    }, readyTimeoutMs);
    child.on('message', (m: unknown) => {
      if ((m as { ready?: boolean })?.ready) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited with ${code} before ready:\n${out}`));
    });
  });
  return {
    child,
    pid: child.pid as number,
    output: () => out,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    exited,
  };
}
