import { describe, expect, it } from 'vitest';
import { isRowDataError } from './skipped-rows.js';

describe('isRowDataError', () => {
  it('is true for data exceptions and integrity constraint violations', () => {
    for (const code of ['22P02', '22003', '22001', '22012', '23514', '23502', '23503', '23505', '23P01']) expect(isRowDataError(code), code).toBe(true);
  });

  it('is false for errors that fail every row alike, and for errors without a SQLSTATE', () => {
    for (const code of ['57014', '40001', '40P01', '42703', '42501', '08006', '55P03', '53300', 'XX000', '2200', '220000', '22p02'])
      expect(isRowDataError(code), code).toBe(false);
    expect(isRowDataError(undefined)).toBe(false);
  });
});
