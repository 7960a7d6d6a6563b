/**
 * Runnable example: `npx tsx examples/basic.ts` (from packages/sdk).
 *
 * Inputs (environment): TIDEWAY_URL (default http://127.0.0.1:7070), TIDEWAY_TOKEN, TIDEWAY_MIGRATION_ID,
 * TIDEWAY_MIGRATION_INSTALLATION (the `installation` of the migration resource).
 * Two in-memory "stores" stand in for the application's old and new tables; a static flag reader
 * stands in for `UnleashFlagReader` from `@tideway/flags`. The example works without a control
 * plane: the SDK then counts its failed sends (see the printed stats) and the application is unaffected.
 */
import type { FlagReader } from '@tideway/core';
import { createMigrationClient } from '@tideway/sdk';

interface Order {
  id: number;
  totalCents: number;
  updatedAt: string;
}

// The application's stores. The new one has a bug for order 3, which the shadow reads will find.
const oldStore = new Map<number, Order>();
const newStore = new Map<number, Order>();

// Production: `const flags = new UnleashFlagReader({ url, clientToken, appName }); await flags.start();`
const flags: FlagReader = {
  isEnabled: (flag) => flag.endsWith('.dual-write') || flag.endsWith('.shadow-read'),
};

const client = createMigrationClient({
  baseUrl: process.env.TIDEWAY_URL ?? 'http://127.0.0.1:7070',
  token: process.env.TIDEWAY_TOKEN ?? 'example-token',
  // In production, pass the migration resource (GET /v1/migrations/:id): it carries id, name and installation.
  migration: { id: process.env.TIDEWAY_MIGRATION_ID ?? 'example-migration-id', name: 'orders-v2', installation: process.env.TIDEWAY_MIGRATION_INSTALLATION ?? 'example1' },
  flags,
  requestTimeoutMs: 2000,
  onError: (event) => console.error(`tideway ${event.kind}:`, event.error instanceof Error ? event.error.message : event.error),
});

async function saveOrder(order: Order): Promise<Order> {
  return client.write({
    key: order.id,
    writeOld: async () => (oldStore.set(order.id, order), order),
    writeNew: async () => {
      const copy = { ...order, totalCents: order.id === 3 ? order.totalCents + 1 : order.totalCents, updatedAt: new Date().toISOString() };
      newStore.set(order.id, copy);
      return copy;
    },
  });
}

async function getOrder(id: number): Promise<Order | undefined> {
  return client.read({
    key: id,
    readOld: async () => oldStore.get(id),
    readNew: async () => newStore.get(id),
    ignore: ['updatedAt'], // written independently on each side
  });
}

for (let id = 1; id <= 5; id++) await saveOrder({ id, totalCents: id * 1000, updatedAt: new Date().toISOString() });
for (let id = 1; id <= 5; id++) console.log('served', await getOrder(id));

await client.close(); // waits for the background comparisons, sends them, stops the timer
console.log(JSON.stringify(client.stats()));
