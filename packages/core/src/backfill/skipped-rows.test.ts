import { describe, expect, it } from 'vitest';
import { dataErrorSplitBudget, isRowDataError, mayClearByItself } from './skipped-rows.js';

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

describe('dataErrorSplitBudget', () => {
  it('allows the splits maxSkippedRows + 1 bad rows need, twice over, and grows with the chunk size', () => {
    expect(dataErrorSplitBudget(100, 50_000)).toBe(101 * 2 * 16);
    expect(dataErrorSplitBudget(5, 1000)).toBe(6 * 2 * 10);
    expect(dataErrorSplitBudget(0, 1)).toBe(2);
    // One bad row in a chunk of maxChunkRows is isolated within the budget of maxSkippedRows 0.
    expect(dataErrorSplitBudget(0, 8000)).toBeGreaterThanOrEqual(Math.ceil(Math.log2(8000)));
  });
});

describe('mayClearByItself', () => {
  it('is true for foreign key, unique and exclusion violations only', () => {
    for (const code of ['23503', '23505', '23P01']) expect(mayClearByItself(code), code).toBe(true);
    for (const code of ['23514', '23502', '22P02', '22012', '57014', undefined]) expect(mayClearByItself(code), String(code)).toBe(false);
  });
});
