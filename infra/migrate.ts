/**
 * Creates the orchestrator database when missing and applies every schema migration.
 * Inputs: TIDEWAY_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tideway).
 */
import pg from 'pg';
import { createDb, migrateToLatest } from '@tideway/db';

const url = new URL(process.env['TIDEWAY_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/tideway');
const name = decodeURIComponent(url.pathname.slice(1));
if (!/^[A-Za-z0-9_-]{1,63}$/.test(name)) throw new Error(`unsupported database name "${name}"`);

const maintenance = new URL(url);
maintenance.pathname = '/postgres';
const client = new pg.Client({ connectionString: maintenance.toString() });
await client.connect();
try {
  const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  if (exists.rowCount === 0) {
    await client.query(`CREATE DATABASE "${name}"`).catch((error: { code?: string }) => {
      if (error.code !== '42P04') throw error; // created meanwhile by another process
    });
    console.log(`created database ${name}`);
  }
} finally {
  await client.end();
}

const db = createDb({ connectionString: url.toString(), max: 1 });
try {
  const result = await migrateToLatest(db);
  const applied = result.results?.filter((r) => r.status === 'Success').map((r) => r.migrationName) ?? [];
  console.log(applied.length ? `applied ${applied.join(', ')}` : 'schema up to date');
} finally {
  await db.destroy();
}
