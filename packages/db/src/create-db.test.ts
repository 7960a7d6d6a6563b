import { describe, expect, it } from 'vitest';
import { createPool } from './create-db.js';

// createPool connects lazily: these read the options it would connect with, no server needed.
function optionsOf(pool: ReturnType<typeof createPool>): unknown {
  return (pool as unknown as { options: { options?: string } }).options.options;
}

describe('createPool session settings', () => {
  it('sets search_path, read-only and named settings at connection time', async () => {
    const pool = createPool({ connectionString: 'postgres://x@127.0.0.1:1/x', searchPath: 'pg_catalog,pg_temp', readOnly: true, settings: { 'tideway.syncing': 'on' } });
    expect(optionsOf(pool)).toBe('-c search_path=pg_catalog,pg_temp -c default_transaction_read_only=on -c tideway.syncing=on');
    await pool.end();
    const plain = createPool({ connectionString: 'postgres://x@127.0.0.1:1/x' });
    expect(optionsOf(plain)).toBeUndefined();
    await plain.end();
  });

  it('refuses a setting name or value that could carry another option', () => {
    expect(() => createPool({ connectionString: 'postgres://x@127.0.0.1:1/x', settings: { 'a -c b': 'on' } })).toThrow(/setting name must be/);
    expect(() => createPool({ connectionString: 'postgres://x@127.0.0.1:1/x', settings: { 'tideway.syncing': 'on -c search_path=public' } })).toThrow(/setting tideway.syncing must be/);
  });
});
