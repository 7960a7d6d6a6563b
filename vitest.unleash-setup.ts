import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface UnleashInfra {
  ensureUnleash(options?: { timeoutMs?: number }): Promise<{ url: string; adminToken: string; clientToken: string }>;
}

/**
 * Vitest `globalSetup` of the packages whose tests reach Unleash through configuration (control
 * plane, worker, CLI): makes sure this checkout's Unleash runs (infra/unleash.mjs) and puts its URL
 * and tokens in the environment that every test process inherits — `TIDEWAY_UNLEASH_URL`,
 * `TIDEWAY_UNLEASH_ADMIN_TOKEN`, `TIDEWAY_UNLEASH_CLIENT_TOKEN` — unless `TIDEWAY_UNLEASH_URL` is set
 * already. Without it those tests would use whatever answers on 4242, which may be a server another
 * checkout started and that can stop in the middle of the run. Fixtures pass the variables on with
 * `unleashTestEnv()` of @tideway/testing.
 */
export default async function setup(): Promise<void> {
  if (process.env['TIDEWAY_UNLEASH_URL']) return;
  const module = path.join(path.dirname(fileURLToPath(import.meta.url)), 'infra', 'unleash.mjs');
  // A computed specifier: infra/unleash.mjs is plain JavaScript outside the TypeScript projects.
  const infra = (await import(pathToFileURL(module).href)) as UnleashInfra;
  const unleash = await infra.ensureUnleash({ timeoutMs: 120_000 });
  process.env['TIDEWAY_UNLEASH_URL'] = unleash.url;
  process.env['TIDEWAY_UNLEASH_ADMIN_TOKEN'] = unleash.adminToken;
  process.env['TIDEWAY_UNLEASH_CLIENT_TOKEN'] = unleash.clientToken;
}
