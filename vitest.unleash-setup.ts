import { ensureLocalUnleash, pruneStaleFlags } from './packages/flags/src/testing.js';

/**
 * Vitest `globalSetup` of the packages whose tests reach Unleash through configuration (control
 * plane, worker, CLI): makes sure this checkout's Unleash runs (`ensureLocalUnleash`) and puts its
 * URL and tokens in the environment that every test process inherits — `TIDEWAY_UNLEASH_URL`,
 * `TIDEWAY_UNLEASH_ADMIN_TOKEN`, `TIDEWAY_UNLEASH_CLIENT_TOKEN` — unless `TIDEWAY_UNLEASH_URL` is set
 * already. Without it those tests would use whatever answers on 4242, which may be a server another
 * checkout started and that can stop in the middle of the run. Fixtures pass the variables on with
 * `unleashTestEnv()` of @tideway/testing.
 *
 * It also deletes this checkout's test flags older than 30 minutes (`pruneStaleFlags`): runs never
 * stop the shared server, and thousands of leftover flags made every client poll a megabyte (one
 * `npm test` leaves about 500; two hours of runs left 2,600 and Unleash stopped answering within
 * 3 s). No test file runs for 30 minutes, and other checkouts have an Unleash database of their own.
 */
export default async function setup(): Promise<void> {
  if (process.env['TIDEWAY_UNLEASH_URL']) return;
  const unleash = await ensureLocalUnleash();
  await pruneStaleFlags(unleash, { olderThanMs: 30 * 60_000 });
  process.env['TIDEWAY_UNLEASH_URL'] = unleash.url;
  process.env['TIDEWAY_UNLEASH_ADMIN_TOKEN'] = unleash.adminToken;
  process.env['TIDEWAY_UNLEASH_CLIENT_TOKEN'] = unleash.clientToken;
}
