import { describe, expect, it } from 'vitest';
import { count, duration, key, orDash, percent, table } from './format.js';

describe('format', () => {
  it('aligns table columns on the widest cell and leaves no trailing spaces', () => {
    expect(table(['ID', 'NAME', 'NOTE'], [['1', 'orders', ''], ['12345', 'x', 'long note']])).toBe(
      'ID     NAME    NOTE\n1      orders\n12345  x       long note\n',
    );
    expect(table(['A'], [])).toBe('A\n');
  });

  it('formats ratios, counts, durations, keys and missing values', () => {
    expect(percent(0.012345)).toBe('1.23%');
    expect(percent(1, 0)).toBe('100%');
    expect(count(1234567.4)).toBe('1,234,567');
    expect([duration(0), duration(59.6), duration(61), duration(3725), duration(null), duration(Number.POSITIVE_INFINITY)]).toEqual(['0s', '1m00s', '1m01s', '1h02m', '-', '-']);
    expect([key(['7'], '(start)'), key(['a', 'b'], '(start)'), key(null, '(end)')]).toEqual(['7', '(a, b)', '(end)']);
    expect([orDash(null), orDash(undefined), orDash(''), orDash(0), orDash('x')]).toEqual(['-', '-', '-', '0', 'x']);
  });
});
