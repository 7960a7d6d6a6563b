/**
 * A production-like writer for the concurrent-write tests: inserts, updates (some changing the
 * key) and deletes random rows of a source table, on 2 connections, from a seeded PRNG, until
 * SIGTERM. Prints `{ inserts, updates, keyChanges, deletes }` as JSON on exit.
 *
 * Inputs (environment): WRITER_URL (database), WRITER_TABLE, WRITER_SEED, WRITER_MAX_ID.
 */
import pg from 'pg';

const url = process.env['WRITER_URL'] as string;
const table = `"${(process.env['WRITER_TABLE'] as string).replace(/"/g, '""')}"`;
const maxId = Number(process.env['WRITER_MAX_ID'] ?? 200_000);
let seed = Number(process.env['WRITER_SEED'] ?? 1) >>> 0;

/** mulberry32: small, fast, seedable. */
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randomId = () => 1 + Math.floor(random() * maxId * 1.2);

const counts = { inserts: 0, updates: 0, keyChanges: 0, deletes: 0 };
let stopping = false;
process.on('SIGTERM', () => (stopping = true));

async function loop(client: pg.Client): Promise<void> {
  while (!stopping) {
    const r = random();
    if (r < 0.3) {
      const res = await client.query(
        `INSERT INTO ${table} (id, customer_id, total_cents, status_code, payload) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
        [randomId(), Math.floor(random() * 1000), Math.floor(random() * 100_000), Math.floor(random() * 3), `w${random().toString(36).slice(2)}`],
      );
      counts.inserts += res.rowCount ?? 0;
    } else if (r < 0.75) {
      const res = await client.query(`UPDATE ${table} SET total_cents = total_cents + 1, status_code = (status_code + 1) % 3, payload = $2 WHERE id = $1`, [randomId(), `u${random().toString(36).slice(2)}`]);
      counts.updates += res.rowCount ?? 0;
    } else if (r < 0.8) {
      const res = await client
        .query(`UPDATE ${table} SET id = $2 WHERE id = $1`, [randomId(), maxId * 2 + Math.floor(random() * maxId)])
        .catch((e: { code?: string }) => {
          if (e.code === '23505') return { rowCount: 0 };
          throw e;
        });
      counts.keyChanges += res.rowCount ?? 0;
    } else {
      const res = await client.query(`DELETE FROM ${table} WHERE id = $1`, [randomId()]);
      counts.deletes += res.rowCount ?? 0;
    }
  }
}

const clients = [new pg.Client({ connectionString: url, application_name: 'writer' }), new pg.Client({ connectionString: url, application_name: 'writer' })];
await Promise.all(clients.map((c) => c.connect()));
if (process.send) process.send({ ready: true });
await Promise.all(clients.map(loop));
await Promise.all(clients.map((c) => c.end()));
console.log(JSON.stringify(counts));
