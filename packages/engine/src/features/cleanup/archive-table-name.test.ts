import { describe, expect, it } from 'vitest';
import { archiveTableName } from './cleanup-service.js';

describe('archiveTableName', () => {
  it('keeps a short name whole', () => {
    expect(archiveTableName('orders', '20261229')).toBe('orders_tideway_archived_20261229');
  });

  it('cuts a long name so the whole fits 63 bytes, keeping the date', () => {
    const name = archiveTableName('a'.repeat(60), '20261229');
    expect(Buffer.byteLength(name)).toBe(63);
    expect(name).toBe(`${'a'.repeat(37)}_tideway_archived_20261229`);
  });

  it('counts bytes, not characters, and never splits a character', () => {
    const name = archiveTableName('é'.repeat(30), '20261229');
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    expect(name).toBe(`${'é'.repeat(18)}_tideway_archived_20261229`);
  });
});
