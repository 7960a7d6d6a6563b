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

/** What {@link pruneStaleFlags} removed. */
export interface PrunedFlags {
  /** Names of the flags archived and then deleted. */
  readonly deleted: readonly string[];
  /** Flags in scope (project and name prefix) left in place: newer than the cutoff. */
  readonly kept: number;
}

/**
 * Deletes the flags of a local Unleash project that are older than `olderThanMs` (by `createdAt`):
 * archives them (`POST /api/admin/projects/<project>/archive`) and deletes them from the archive
 * (`POST /api/admin/projects/<project>/delete`), in batches of 100. Test runs create a handful of
 * flags per migration and never stop the shared server, so without pruning a developer's Unleash
 * grows by hundreds of flags a run; at a few thousand every client poll carries a megabyte and
 * the event-loop stalls it causes made timing-bound tests fail. Age keeps it safe beside a run
 * that is still going (another package's tests, a demo): only flags no live run can still use go.
 * For this checkout's own test Unleash only — never point it at a server users' flags live on.
 *
 * @param unleash where the server answers and its admin token.
 * @param options.olderThanMs minimum age in milliseconds of a flag to delete (default 2 h).
 * @param options.project Unleash project (default `default`).
 * @param options.namePrefix only flags whose name starts with it (default: every flag of the project).
 * @param options.now the clock, in epoch milliseconds (default `Date.now()`).
 * @throws Error naming the request when the admin API answers with an error status.
 */
export async function pruneStaleFlags(
  unleash: Pick<LocalUnleash, 'url' | 'adminToken'>,
  options: { olderThanMs?: number; project?: string; namePrefix?: string; now?: number } = {},
): Promise<PrunedFlags> {
  const project = encodeURIComponent(options.project ?? 'default');
  const cutoff = (options.now ?? Date.now()) - (options.olderThanMs ?? 2 * 3_600_000);
  const call = async (method: string, route: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${unleash.url}${route}`, {
      method,
      headers: { authorization: unleash.adminToken, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`Unleash ${method} ${route} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const text = await res.text();
    return text ? (JSON.parse(text) as unknown) : null;
  };
  const listed = (await call('GET', `/api/admin/projects/${project}/features`)) as { features: { name: string; createdAt: string }[] };
  const inScope = listed.features.filter((f) => f.name.startsWith(options.namePrefix ?? ''));
  const stale = inScope.filter((f) => Date.parse(f.createdAt) < cutoff).map((f) => f.name);
  for (let i = 0; i < stale.length; i += 100) {
    const features = stale.slice(i, i + 100);
    await call('POST', `/api/admin/projects/${project}/archive`, { features });
    await call('POST', `/api/admin/projects/${project}/delete`, { features });
  }
  return { deleted: stale, kept: inScope.length - stale.length };
}
