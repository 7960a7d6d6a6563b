import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where this checkout's local Unleash server answers, and the tokens it was booted with. */
export interface LocalUnleash {
  /** Base URL, e.g. `http://127.0.0.1:4242`. */
  readonly url: string;
  /** Admin API token (for `UnleashFlagControl`). */
  readonly adminToken: string;
  /** Backend token of the `development` environment (for `UnleashFlagReader`). */
  readonly clientToken: string;
}

interface UnleashInfra {
  ensureUnleash(options?: { timeoutMs?: number }): Promise<LocalUnleash>;
}

const infraModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../infra/unleash.mjs');

/**
 * Makes sure this checkout's local Unleash server runs (installing and starting it on first use
 * through `infra/unleash.mjs`, which `npm test` and `npm run demo` already ran in bootstrap) and says
 * where it is: usually http://127.0.0.1:4242, another port when 4242 belongs to a server this checkout
 * did not start. Quick when it is up. The server is shared by every test run and the demo: give flags
 * unique names, never stop it.
 * Settings come from `TIDEWAY_UNLEASH_PORT`, `TIDEWAY_UNLEASH_ADMIN_TOKEN`, `TIDEWAY_UNLEASH_CLIENT_TOKEN`.
 *
 * @throws Error with the server's log tail when it cannot be started.
 * @example
 * ```ts
 * import { ensureLocalUnleash } from '@tideway/flags/testing';
 * import { UnleashFlagControl } from '@tideway/flags';
 *
 * const unleash = await ensureLocalUnleash();
 * const flags = new UnleashFlagControl({ url: unleash.url, adminToken: unleash.adminToken });
 * ```
 */
export async function ensureLocalUnleash(): Promise<LocalUnleash> {
  // A computed specifier: infra/unleash.mjs is plain JavaScript outside this package's types.
  const infra = (await import(pathToFileURL(infraModule).href)) as UnleashInfra;
  const { url, adminToken, clientToken } = await infra.ensureUnleash({ timeoutMs: 120_000 });
  return { url, adminToken, clientToken };
}
