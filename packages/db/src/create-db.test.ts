import { describe, expect, it } from 'vitest';
import { createPool } from './create-db.js';

// What the settings do on a live session is tested with the engine's datasource pools
// (packages/engine/test/datasource-sessions.int.test.ts); this is the validation, before any connection.
describe('createPool session settings', () => {
  it('refuses a setting name or value that could carry another option', () => {
    expect(() => createPool({ connectionString: 'postgres://x@127.0.0.1:1/x', settings: { 'a -c b': 'on' } })).toThrow(/setting name must be/);
    expect(() => createPool({ connectionString: 'postgres://x@127.0.0.1:1/x', settings: { 'tideway.syncing': 'on -c search_path=public' } })).toThrow(/setting tideway.syncing must be/);
  });
});
