import { fileURLToPath } from 'node:url';
import { startTsProcess } from '@tideway/testing';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadWorkerConfig } from '../src/config.js';

const WORKER_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const HOOK = 'http://127.0.0.1:9/hook';

describe('webhook configuration', () => {
  it('refuses TIDEWAY_WEBHOOK_URLS without TIDEWAY_WEBHOOK_SECRET: there is no default key', () => {
    expect(() => loadWorkerConfig({ TIDEWAY_WEBHOOK_URLS: HOOK })).toThrow(ConfigError);
    expect(() => loadWorkerConfig({ TIDEWAY_WEBHOOK_URLS: HOOK })).toThrow(/^TIDEWAY_WEBHOOK_SECRET must be set/);
    expect(loadWorkerConfig({}).webhookSecret).toBeNull();
    expect(loadWorkerConfig({ TIDEWAY_WEBHOOK_URLS: HOOK, TIDEWAY_WEBHOOK_SECRET: 'k' }).webhookSecret).toBe('k');
  });

  it('the worker process exits 2 at boot with the message', async () => {
    const worker = await startTsProcess(WORKER_MAIN, { TIDEWAY_WEBHOOK_URLS: HOOK, TIDEWAY_WEBHOOK_SECRET: '' }, 30_000, false);
    try {
      // Bounded: a process that does start is killed, and the test fails on its exit code.
      const code = await Promise.race([worker.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000))]);
      expect(code).toBe(2);
    } finally {
      await worker.kill();
    }
    expect(worker.output()).toMatch(/configuration error: TIDEWAY_WEBHOOK_SECRET must be set when TIDEWAY_WEBHOOK_URLS is set/);
  });
});
