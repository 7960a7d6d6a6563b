import { fileURLToPath } from 'node:url';
import { createOrchestratorTestDatabase, createTestDatabase, freePort, ORDERS_TABLES_SQL, ordersSpec, startTsProcess, TEST_REDIS_URL, uniqueRedisPrefix, waitFor } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url));
const ADMIN = 'shutdown-admin-token-0123456789';
const CLIENTS = 20;

describe('graceful shutdown under keep-alive load', () => {
  let orch: Awaited<ReturnType<typeof createOrchestratorTestDatabase>>;
  let user: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    [orch, user] = await Promise.all([createOrchestratorTestDatabase('shutdown_orch'), createTestDatabase('shutdown_user')]);
    await user.query(ORDERS_TABLES_SQL);
  });
  afterAll(async () => {
    await orch?.drop();
    await user?.drop();
  });

  it('SIGTERM: requests in flight and on open connections are answered, none fails on its socket, the process exits 0', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const server = await startTsProcess(SERVER, {
      TIDEWAY_PORT: String(port),
      TIDEWAY_DATABASE_URL: orch.url,
      TIDEWAY_REDIS_URL: TEST_REDIS_URL,
      TIDEWAY_REDIS_PREFIX: uniqueRedisPrefix(),
      TIDEWAY_ADMIN_TOKEN: ADMIN,
      TIDEWAY_DATASOURCES: JSON.stringify({ main: user.url }),
      TIDEWAY_UNLEASH_URL: 'off',
      TIDEWAY_LOG_LEVEL: 'warn',
    });
    try {
      const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
      const created = await fetch(`${base}/v1/migrations`, { method: 'POST', headers, body: JSON.stringify(ordersSpec('shutdown')) });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      expect((await fetch(`${base}/v1/migrations/${id}/start`, { method: 'POST', headers, body: '{}' })).status).toBe(200);

      // Keep-alive clients: reads, and pause/resume actions (POSTs, which fetch never retries).
      const outcomes: string[] = [];
      const closesAfterTerm: string[] = [];
      let answered = 0;
      let terminated = false;
      const client = async (i: number) => {
        for (let n = 0; ; n++) {
          const post = i % 2 === 1;
          const action = n % 2 === 0 ? 'pause' : 'resume';
          try {
            const res = post
              ? await fetch(`${base}/v1/migrations/${id}/${action}`, { method: 'POST', headers, body: '{}' })
              : await fetch(`${base}/v1/migrations/${id}`, { headers });
            await res.text();
            outcomes.push(String(res.status));
            answered++;
            if (terminated) closesAfterTerm.push(res.headers.get('connection') ?? '');
          } catch (error) {
            const code = (error as { cause?: { code?: string } }).cause?.code ?? String(error);
            outcomes.push(code);
            // A refused connection is the end: the server no longer accepts.
            if (code === 'ECONNREFUSED') return;
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
      await waitFor('every client busy', () => answered >= CLIENTS * 10, 30_000, 5);
      terminated = true;
      server.child.kill('SIGTERM');
      const code = await server.exited;
      await Promise.all(clients);

      expect(code, server.output()).toBe(0);
      const counts = outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o]: (acc[o] ?? 0) + 1 }), {});
      // 200, 409 (pause/resume raced by two clients on one migration), and one refusal per client at the end.
      expect(Object.keys(counts).sort(), JSON.stringify(counts)).toEqual(['200', '409', 'ECONNREFUSED']);
      expect(counts['ECONNREFUSED']).toBe(CLIENTS);
      // The drain served requests after the signal, telling each client to reconnect (answers sent
      // before the server took the signal in still say keep-alive).
      expect(closesAfterTerm).toContain('close');
    } finally {
      await server.kill();
    }
  });
});
