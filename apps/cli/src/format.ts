/** Plain-text helpers for the readable (non `--json`) output. */

/** Left-aligned columns separated by two spaces; the header row first. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** `0.0123` → `1.23%`. */
export function percent(ratio: number, digits = 2): string {
  return `${(ratio * 100).toFixed(digits)}%`;
}

/** `12345` → `12,345`. */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Seconds as `1h02m`, `3m05s` or `42s`; `null` → `-`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** A value or `-` for null/undefined/empty. */
export function orDash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}

/** Pretty JSON with a trailing newline. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** A key (list of column values) as `a` or `(a, b)`; `open` for `null` (an open range end). */
export function key(values: readonly string[] | null, open: string): string {
  if (values === null) return open;
  return values.length === 1 ? (values[0] ?? '') : `(${values.join(', ')})`;
}
