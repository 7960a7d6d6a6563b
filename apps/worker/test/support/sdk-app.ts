/**
 * An application process for the SDK integration test: 10,000 reads of keys 1…10,000 through
 * `createMigrationClient` against a running control plane, with shadow reads on for every key. The
 * new store differs for the keys listed in APP_DIVERGENT_KEYS (their `balance` is off by one and
 * they carry a `card.number` to redact). Prints the SDK's stats as JSON when done.
 *
 * Inputs: APP_BASE_URL, APP_TOKEN, APP_MIGRATION_ID, APP_MIGRATION_NAME, APP_MIGRATION_INSTALLATION, APP_DIVERGENT_KEYS (comma list).
 */
import { createMigrationClient } from '@tideway/sdk';

const divergent = new Set((process.env['APP_DIVERGENT_KEYS'] ?? '').split(',').filter(Boolean).map(Number));
const shadowOnly = { isEnabled: (flag: string) => flag.endsWith('.shadow-read') };
const client = createMigrationClient({
  baseUrl: process.env['APP_BASE_URL'] as string,
  token: process.env['APP_TOKEN'] as string,
  migration: { id: process.env['APP_MIGRATION_ID'] as string, name: process.env['APP_MIGRATION_NAME'] as string, installation: process.env['APP_MIGRATION_INSTALLATION'] as string },
  flags: shadowOnly,
  batchSize: 500,
});
const account = (key: number, balance: number) => ({ id: key, balance, email: `user${key}@example.com`, card: { number: `4111-${key}`, brand: 'visa' } });
let served = 0;
for (let key = 1; key <= 10_000; key++) {
  const value = await client.read({
    key,
    readOld: async () => account(key, key * 10),
    readNew: async () => account(key, divergent.has(key) ? key * 10 + 1 : key * 10),
  });
  if (value.balance === key * 10) served++;
}
await client.close();
console.log(JSON.stringify({ served, ...client.stats() }));
