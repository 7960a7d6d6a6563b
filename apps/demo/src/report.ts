import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A point of a latency series: a second and its latency. */
export interface SeriesPoint {
  /** Seconds since the demo started. */
  readonly t: number;
  readonly ms: number;
}

/** Everything the report shows. */
export interface DemoReport {
  readonly ok: boolean;
  readonly failures: string[];
  readonly wallSeconds: number;
  readonly scale: number;
  readonly faults: boolean;
  readonly phases: { phase: string; startedAt: number; seconds: number }[];
  readonly backfill: Record<string, unknown>;
  readonly verification: Record<string, unknown>;
  readonly divergence: Record<string, unknown>;
  readonly ramp: Record<string, unknown>;
  readonly cleanup: Record<string, unknown>;
  readonly pgbench: Record<'before' | 'during' | 'after', { tps: number; p50Ms: number; p99Ms: number; transactions: number; failed: number }> & {
    /** pgbench's transactions completed in each phase: TPS over the phase's seconds, and their p99 (ms). */
    readonly byPhase: Record<string, { tps: number; p99Ms: number; transactions: number }>;
  };
  /** The latency guard during the backfill (ADR 014): goal `byPhase.backfill.p99Ms / before.p99Ms ≤ 1.5`. */
  readonly latencyGuard: { readonly backfillP99Ratio: number | null; readonly goal: string; readonly met: boolean | null };
  readonly demoService: { requests: number; errors: number; non2xx: number; p99Ms: number; sdk: Record<string, unknown> };
  readonly faultsInjected: string[];
  readonly series: { pgbenchP99: SeriesPoint[]; demoP99: SeriesPoint[]; guard: GuardPoint[] };
}

/** A reading of the latency guard during the backfill (`progress.latencyGuard`). */
export interface GuardPoint {
  /** Seconds since the demo started. */
  readonly t: number;
  readonly paceRowsPerSecond: number | null;
  readonly observedP99Ms: number | null;
  readonly targetP99Ms: number | null;
  readonly mode: string;
}

/** An SVG chart of the guard's pace (rows/s, left axis) and its signal against the budget (ms, right axis). */
export function guardChart(report: DemoReport): string {
  const pts = report.series.guard;
  const W = 960;
  const H = 300;
  const pad = { l: 64, r: 56, t: 24, b: 48 };
  if (pts.length === 0) return '<p>The latency guard did not run (no backfill was guarded).</p>';
  const t0 = Math.min(...pts.map((p) => p.t));
  const t1 = Math.max(t0 + 1, ...pts.map((p) => p.t));
  const maxPace = Math.max(1, ...pts.map((p) => p.paceRowsPerSecond ?? 0)) * 1.1;
  const maxMs = Math.max(0.1, ...pts.flatMap((p) => [p.observedP99Ms ?? 0, p.targetP99Ms ?? 0])) * 1.1;
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const yPace = (v: number) => H - pad.b - (v / maxPace) * (H - pad.t - pad.b);
  const yMs = (v: number) => H - pad.b - (v / maxMs) * (H - pad.t - pad.b);
  const poly = (id: string, color: string, dash: string, values: [number, number | null][], y: (v: number) => number) =>
    `<polyline id="${id}" fill="none" stroke="${color}" stroke-width="1.8"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${values
      .filter((v): v is [number, number] => v[1] !== null)
      .map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`)
      .join(' ')}"/>`;
  const baselineBands = pts
    .filter((p) => p.mode === 'baseline')
    .map((p) => `<rect x="${x(p.t).toFixed(1)}" y="${pad.t}" width="3" height="${H - pad.t - pad.b}" fill="#ddd"/>`)
    .join('');
  return `<svg id="guard-chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="latency guard pace and signal">
<rect width="${W}" height="${H}" fill="#fff"/>${baselineBands}
${poly('guard-pace', '#2ca02c', '', pts.map((p) => [p.t, p.paceRowsPerSecond]), yPace)}
${poly('guard-p99', '#9467bd', '', pts.map((p) => [p.t, p.observedP99Ms]), yMs)}
${poly('guard-target', '#9467bd', '5 4', pts.map((p) => [p.t, p.targetP99Ms]), yMs)}
<text x="${pad.l - 6}" y="${pad.t}" font-size="10" text-anchor="end">${Math.round(maxPace)}</text><text x="8" y="${pad.t - 8}" font-size="11">rows/s</text>
<text x="${W - pad.r + 6}" y="${pad.t}" font-size="10">${maxMs.toFixed(1)} ms</text>
<text x="${pad.l}" y="${H - 24}" font-size="11">seconds since start (${t0.toFixed(0)}–${t1.toFixed(0)}); grey: baseline windows (backfill held back)</text>
<rect x="${W - 520}" y="${H - 14}" width="10" height="10" fill="#2ca02c"/><text x="${W - 505}" y="${H - 5}" font-size="11">pace (rows/s)</text>
<rect x="${W - 400}" y="${H - 14}" width="10" height="10" fill="#9467bd"/><text x="${W - 385}" y="${H - 5}" font-size="11">probe p99 (ms); dashed: its budget</text>
</svg>`;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

/** An SVG line chart of both latency series with the phase boundaries marked (no external assets). */
export function latencyChart(report: DemoReport): string {
  const W = 960;
  const H = 340;
  const pad = { l: 56, r: 40, t: 24, b: 56 };
  const all = [...report.series.pgbenchP99, ...report.series.demoP99];
  const maxT = Math.max(1, report.wallSeconds, ...all.map((p) => p.t));
  const maxMs = Math.max(1, ...all.map((p) => p.ms)) * 1.1;
  const x = (t: number) => pad.l + (t / maxT) * (W - pad.l - pad.r);
  const y = (ms: number) => H - pad.b - (ms / maxMs) * (H - pad.t - pad.b);
  const line = (pts: SeriesPoint[], color: string, id: string) =>
    `<polyline id="${id}" fill="none" stroke="${color}" stroke-width="1.8" points="${pts.map((p) => `${x(p.t).toFixed(1)},${y(p.ms).toFixed(1)}`).join(' ')}"/>`;
  // Labels step down in three rows so that short phases next to each other stay readable.
  const phases = report.phases
    .map((p, i) => `<line x1="${x(p.startedAt)}" x2="${x(p.startedAt)}" y1="${pad.t}" y2="${H - pad.b}" stroke="#999" stroke-dasharray="4 3"/><text x="${x(p.startedAt) + 3}" y="${pad.t + 10 + (i % 3) * 12}" font-size="10" fill="#555">${esc(p.phase)}</text>`)
    .join('');
  const ticks = Array.from({ length: 5 }, (_, i) => (maxMs / 4) * i)
    .map((v) => `<text x="${pad.l - 6}" y="${y(v) + 3}" font-size="10" text-anchor="end">${v.toFixed(0)}</text><line x1="${pad.l}" x2="${W - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`)
    .join('');
  return `<svg id="latency-chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="p99 latency per second">
<rect width="${W}" height="${H}" fill="#fff"/>${ticks}${phases}
${line(report.series.pgbenchP99, '#1f77b4', 'pgbench-line')}
${line(report.series.demoP99, '#d62728', 'demo-line')}
<text x="${pad.l}" y="${H - 30}" font-size="11">seconds since start (0–${maxT.toFixed(0)})</text>
<text x="12" y="${pad.t - 8}" font-size="11">p99 ms</text>
<rect x="${W - 420}" y="${H - 18}" width="10" height="10" fill="#1f77b4"/><text x="${W - 405}" y="${H - 9}" font-size="11">pgbench (production writes)</text>
<rect x="${W - 220}" y="${H - 18}" width="10" height="10" fill="#d62728"/><text x="${W - 205}" y="${H - 9}" font-size="11">demo service via SDK</text>
</svg>`;
}

function table(rows: [string, string | number][]): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`).join('')}</table>`;
}

/** Writes `report.json` and `report.html` into `dir`. @returns their paths. */
export async function writeReport(dir: string, report: DemoReport): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'report.json');
  const html = path.join(dir, 'report.html');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  const pg = report.pgbench;
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tideway demo report</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{margin:0 0 4px}table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:4px 10px;text-align:left}th{background:#f6f6f6}.ok{color:#1a7f37}.bad{color:#cf222e}</style></head>
<body><h1>Tideway demo: pgbench_accounts → accounts_v2</h1>
<p class="${report.ok ? 'ok' : 'bad'}"><b>${report.ok ? 'PASSED' : 'FAILED'}</b> in ${report.wallSeconds.toFixed(0)} s (scale ${report.scale}, faults ${report.faults ? 'on' : 'off'})${report.failures.length ? ` — ${esc(report.failures.join('; '))}` : ''}</p>
<h2>Latency while the migration ran</h2>${latencyChart(report)}
<h2>Latency guard during the backfill</h2>${guardChart(report)}
<p>pgbench p99 during the backfill / before: ${report.latencyGuard.backfillP99Ratio === null ? 'n/a' : report.latencyGuard.backfillP99Ratio.toFixed(2)} (goal ${esc(report.latencyGuard.goal)})</p>
<h2>Phases</h2>${table(report.phases.map((p) => [p.phase, `${p.seconds.toFixed(1)} s`]))}
<h2>pgbench (TPC-B at a fixed rate)</h2><table><tr><th></th><th>TPS</th><th>p50 ms</th><th>p99 ms</th><th>transactions</th><th>failed</th></tr>
${(['before', 'during', 'after'] as const).map((k) => `<tr><th>${k}</th><td>${pg[k].tps.toFixed(1)}</td><td>${pg[k].p50Ms.toFixed(2)}</td><td>${pg[k].p99Ms.toFixed(2)}</td><td>${pg[k].transactions}</td><td>${pg[k].failed}</td></tr>`).join('')}</table>
<h3>By phase</h3><table><tr><th>phase</th><th>TPS</th><th>p99 ms</th><th>transactions</th></tr>
${Object.entries(pg.byPhase).map(([phase, v]) => `<tr><th>${esc(phase)}</th><td>${v.tps.toFixed(1)}</td><td>${v.p99Ms.toFixed(2)}</td><td>${v.transactions}</td></tr>`).join('')}</table>
<h2>Backfill</h2>${table(Object.entries(report.backfill).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]))}
<h2>Verification</h2>${table(Object.entries(report.verification).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]))}
<h2>Divergence (shadow reads)</h2>${table(Object.entries(report.divergence).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]))}
<h2>Ramp</h2>${table(Object.entries(report.ramp).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]))}
<h2>Cleanup</h2>${table(Object.entries(report.cleanup).map(([k, v]) => [k, String(v)]))}
<h2>Demo service</h2>${table([['requests', report.demoService.requests], ['errors', report.demoService.errors], ['non-2xx', report.demoService.non2xx], ['p99 ms', report.demoService.p99Ms]])}
<h2>Faults injected</h2><ul>${report.faultsInjected.map((f) => `<li>${esc(f)}</li>`).join('') || '<li>none</li>'}</ul>
</body></html>`;
  await writeFile(html, page);
  return { json, html };
}
