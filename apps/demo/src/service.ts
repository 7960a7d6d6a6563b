/**
 * The demo application: a small accounts service over pgbench's `pgbench_accounts` that reads and
 * writes through the Tideway SDK, so the migration to `accounts_v2` can shadow its reads and cut
 * it over. `GET /accounts/:aid`, `POST /accounts/:aid/deposit {"amount": n}`, `GET /stats`.
 *
 * Inputs (environment): DEMO_PORT, DEMO_DATABASE_URL, TIDEWAY_URL, TIDEWAY_TOKEN,
 * TIDEWAY_MIGRATION_ID, TIDEWAY_MIGRATION_NAME, TIDEWAY_MIGRATION_INSTALLATION (the resource's
 * `installation`), TIDEWAY_UNLEASH_URL, TIDEWAY_UNLEASH_CLIENT_TOKEN.
 */
import Fastify from 'fastify';
import pg from 'pg';
import closeWithGrace from 'close-with-grace';
import { UnleashFlagReader } from '@tideway/flags';
import { createMigrationClient } from '@tideway/sdk';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) {
    console.error(`demo service: ${name} is required`);
    process.exit(2);
  }
  return v;
};

const pool = new pg.Pool({ connectionString: env('DEMO_DATABASE_URL'), max: 8, application_name: 'demo-service' });
pool.on('error', () => undefined);
const flags = new UnleashFlagReader({ url: env('TIDEWAY_UNLEASH_URL'), clientToken: env('TIDEWAY_UNLEASH_CLIENT_TOKEN'), appName: 'demo-service', refreshIntervalMs: 1000 });
await flags.start();
let sdkErrors = 0;
const tideway = createMigrationClient({
  baseUrl: env('TIDEWAY_URL'),
  token: env('TIDEWAY_TOKEN'),
  migration: { id: env('TIDEWAY_MIGRATION_ID'), name: env('TIDEWAY_MIGRATION_NAME'), installation: env('TIDEWAY_MIGRATION_INSTALLATION') },
  flags,
  onError: () => void sdkErrors++,
});

interface Account {
  aid: number;
  branchId: number;
  balanceCents: number;
}

const readOld = async (aid: number): Promise<Account | null> => {
  const r = await pool.query<{ aid: number; bid: number; abalance: number }>('SELECT aid, bid, abalance FROM pgbench_accounts WHERE aid = $1', [aid]);
  const row = r.rows[0];
  return row ? { aid: row.aid, branchId: row.bid, balanceCents: row.abalance * 100 } : null;
};
const readNew = async (aid: number): Promise<Account | null> => {
  const r = await pool.query<{ aid: string; branch_id: number; balance_cents: string }>('SELECT aid, branch_id, balance_cents FROM accounts_v2 WHERE aid = $1', [aid]);
  const row = r.rows[0];
  return row ? { aid: Number(row.aid), branchId: row.branch_id, balanceCents: Number(row.balance_cents) } : null;
};

const app = Fastify({ logger: false });

app.get<{ Params: { aid: string } }>('/accounts/:aid', async (request, reply) => {
  const aid = Number(request.params.aid);
  if (!Number.isInteger(aid) || aid < 1) return reply.code(400).send({ error: { code: 'VALIDATION_FAILED', message: 'aid must be a positive integer', details: { field: 'aid' } } });
  const account = await tideway.read({ key: aid, readOld: () => readOld(aid), readNew: () => readNew(aid) });
  if (!account) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no account ${aid}`, details: {} } });
  return account;
});

app.post<{ Params: { aid: string }; Body: { amount?: unknown } }>('/accounts/:aid/deposit', async (request, reply) => {
  const aid = Number(request.params.aid);
  const amount = Number((request.body ?? {}).amount);
  if (!Number.isInteger(aid) || aid < 1 || !Number.isInteger(amount) || Math.abs(amount) > 1_000_000) {
    return reply.code(400).send({ error: { code: 'VALIDATION_FAILED', message: 'aid and amount must be integers', details: { field: 'amount' } } });
  }
  // The authoritative side increments; the other side is then set to the same absolute value, so a
  // best-effort second write and Tideway's trigger sync always agree (both are idempotent).
  let abalance: number | null = null;
  let balanceCents: number | null = null;
  await tideway.write({
    key: aid,
    writeOld: async () => {
      if (balanceCents !== null) return pool.query('UPDATE pgbench_accounts SET abalance = $2 WHERE aid = $1', [aid, Math.trunc(balanceCents / 100)]);
      const r = await pool.query<{ abalance: number }>('UPDATE pgbench_accounts SET abalance = abalance + $2 WHERE aid = $1 RETURNING abalance', [aid, amount]);
      abalance = r.rows[0]?.abalance ?? null;
      return r;
    },
    writeNew: async () => {
      if (abalance !== null) return pool.query('UPDATE accounts_v2 SET balance_cents = $2 WHERE aid = $1', [aid, abalance * 100]);
      const r = await pool.query<{ balance_cents: string }>('UPDATE accounts_v2 SET balance_cents = balance_cents + $2 WHERE aid = $1 RETURNING balance_cents', [aid, amount * 100]);
      balanceCents = r.rows[0] ? Number(r.rows[0].balance_cents) : null;
      return r;
    },
  });
  return { aid, deposited: amount };
});

app.get('/stats', async () => ({ ...tideway.stats(), sdkErrors }));

await app.listen({ port: Number(env('DEMO_PORT')), host: '127.0.0.1' });
if (process.send) process.send({ ready: true });
closeWithGrace({ delay: 10_000 }, async () => {
  await app.close();
  await tideway.close();
  flags.close();
  await pool.end();
});
