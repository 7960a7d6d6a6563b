import { fileURLToPath } from 'node:url';
import { startTsProcess } from '@tideway/testing';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url));
const HOOK = 'http://127.0.0.1:9/hook';

describe('webhook configuration', () => {
  it('refuses TIDEWAY_WEBHOOK_URLS without TIDEWAY_WEBHOOK_SECRET, naming the variable', () => {
    expect(() => loadConfig({ TIDEWAY_WEBHOOK_URLS: HOOK })).toThrow(ConfigError);
    expect(() => loadConfig({ TIDEWAY_WEBHOOK_URLS: HOOK, TIDEWAY_WEBHOOK_SECRET: '' })).toThrow(/^TIDEWAY_WEBHOOK_SECRET must be set when TIDEWAY_WEBHOOK_URLS is set/);
  });

  it('accepts URLs with a secret, and no URLs without one', () => {
    expect(loadConfig({ TIDEWAY_WEBHOOK_URLS: HOOK, TIDEWAY_WEBHOOK_SECRET: 'a-real-secret' }).webhookUrls).toEqual([HOOK]);
    expect(loadConfig({}).webhookUrls).toEqual([]);
  });

  it('the server process exits 2 at boot with the message, before listening', async () => {
    const env = { TIDEWAY_WEBHOOK_URLS: HOOK, TIDEWAY_WEBHOOK_SECRET: '', TIDEWAY_PORT: '0' };
    const server = await startTsProcess(SERVER, env, 30_000, false);
    try {
      // Bounded: a process that does start is killed, and the test fails on its exit code.
      const code = await Promise.race([server.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000))]);
      expect(code).toBe(2);
    } finally {
      await server.kill();
    }
    expect(server.output()).toMatch(/configuration error: TIDEWAY_WEBHOOK_SECRET must be set when TIDEWAY_WEBHOOK_URLS is set/);
  });
});
