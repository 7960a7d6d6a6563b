import type { MigrationResource } from '../api-types.js';
import { count, duration, percent } from '../format.js';

/** `met`/`not met` lines for the gates of the current phase. */
export function renderGates(m: MigrationResource): string {
  if (m.gates.length === 0) return '';
  return `gates of ${m.phase}\n${m.gates.map((g) => `  ${g.passed ? 'met    ' : 'not met'}  ${g.name}: ${g.message}\n`).join('')}`;
}

/** `count(v)`, or `?` for a number the control plane does not have. */
function countOrUnknown(v: number | null | undefined): string {
  return v === null || v === undefined ? '?' : count(v);
}

/** `3.1 ms`, or `?` for a latency the control plane does not have. */
function ms(v: number | null | undefined): string {
  return v === null || v === undefined ? '?' : `${v.toFixed(1)} ms`;
}

/** `latency (p99 3.1 ms, baseline 2.0 ms, pace 4,200 rows/s)`, `latency (measuring the baseline)`, or the bare reason. */
export function throttledText(p: MigrationResource['progress']): string {
  const t = p.throttled;
  if (!t) return '';
  if (t.reason !== 'latency') return t.reason;
  if (t.measuringBaseline) return 'latency (measuring the baseline)';
  const pace = countOrUnknown(t.paceRowsPerSecond);
  if (t.signal === 'prometheus') return `latency (Prometheus ${t.prometheusValue ?? '?'} of ${t.prometheusMax ?? '?'} allowed, pace ${pace} rows/s)`;
  if (t.signal === 'throughput') return `latency (other clients ${countOrUnknown(t.statementsPerSecond)} statements/s, ${countOrUnknown(t.baselineStatementsPerSecond)} held back, pace ${pace} rows/s)`;
  if (t.signal === 'statements') return `latency (statements' mean ${ms(t.statementsObservedMeanMs)}, baseline ${ms(t.statementsBaselineMeanMs)}, pace ${pace} rows/s)`;
  return `latency (${t.signal === 'commit' ? 'commit ' : t.signal === 'application' ? 'application ' : ''}p99 ${ms(t.observedP99Ms)}, baseline ${ms(t.baselineP99Ms)}, pace ${pace} rows/s)`;
}

/** The backfill figures of `progress`, or '' before backfill. */
export function renderBackfill(m: MigrationResource): string {
  const p = m.progress;
  if (p.chunksTotal === undefined) return '';
  const done = p.chunksDone ?? 0;
  const total = p.chunksTotal;
  const lines = [
    `  chunks     ${count(done)}/${count(total)} (${percent(total > 0 ? done / total : p.completedAt ? 1 : 0, 0)}), ${count(p.chunksRunning ?? 0)} running, ${count(p.chunksFailed ?? 0)} failed${p.chunksSkipped ? `, ${count(p.chunksSkipped)} skipped` : ''}`,
    `  rows       ${count(p.rowsCopied ?? 0)} of ~${count(p.rowsEstimated ?? 0)}, ${count(p.rowsPerSecond ?? 0)} rows/s, ETA ${p.completedAt ? 'done' : duration(p.etaSeconds)}`,
  ];
  const s = p.skippedRows;
  if (s && s.unresolved + s.redriven + s.accepted > 0) {
    lines.push(`  skipped    ${count(s.unresolved)} row(s) on their data to resolve, ${count(s.redriven)} re-driven, ${count(s.accepted)} accepted (GET /v1/migrations/${m.id}/skipped-rows)`);
  }
  if (p.throttled) lines.push(`  throttled  ${throttledText(p)} since ${p.throttled.since}`);
  const g = p.latencyGuard;
  if (g && !p.completedAt) {
    const parts = [
      g.mode === 'baseline' ? 'measuring the baseline' : `pace ${countOrUnknown(g.paceRowsPerSecond)} rows/s`,
      `p99 ${ms(g.observedP99Ms)} of ${ms(g.targetP99Ms)} allowed (baseline ${ms(g.baselineP99Ms)})`,
      ...(g.prometheus ? [`Prometheus ${g.prometheus.value ?? '?'} of ${g.prometheus.max}`] : []),
      ...(g.throughput?.observedPerSecond != null ? [`other clients ${count(g.throughput.observedPerSecond)} statements/s (${countOrUnknown(g.throughput.baselinePerSecond)} held back)`] : []),
      ...(g.holding ? ['holding back'] : []),
    ];
    lines.push(`  guard      ${parts.join(', ')}`);
  }
  if (p.completedAt) lines.push(`  completed  ${p.completedAt}`);
  return `backfill\n${lines.map((l) => `${l}\n`).join('')}`;
}

/** The ramp step, when the resource has one. */
export function rampOf(m: MigrationResource): MigrationResource['ramp'] {
  return m.ramp ?? m.progress.ramp;
}

/** `step 2/4, 25%, holding, next at …` (steps counted from 1, as `spec.ramp.steps` lists them). */
export function rampText(m: MigrationResource): string | null {
  const ramp = rampOf(m);
  if (!ramp) return null;
  const steps = (m.spec['ramp'] as { steps?: unknown[] } | undefined)?.steps?.length;
  const step = ramp.step < 0 ? 'before the first step' : `step ${ramp.step + 1}${steps ? `/${steps}` : ''}`;
  return [step, `${ramp.percent}%`, ramp.status, ramp.nextAt ? `next at ${ramp.nextAt}` : undefined].filter(Boolean).join(', ');
}

/** A migration as `tideway migrations get` prints it. */
export function renderMigration(m: MigrationResource): string {
  const ramp = rampText(m);
  const head = [
    `migration ${m.name} (${m.id})`,
    `  phase      ${m.phase} (since ${m.phaseEnteredAt})`,
    `  status     ${m.status}`,
    `  version    ${m.version}`,
    `  allowed    ${m.allowedActions.length ? m.allowedActions.join(', ') : 'none'}`,
    `  updated    ${m.updatedAt}`,
  ];
  if (ramp) head.push(`  ramp       ${ramp}`);
  return `${head.join('\n')}\n${renderGates(m)}${renderBackfill(m)}`;
}

/** One line after an action or patch. */
export function renderOutcome(verb: string, m: MigrationResource): string {
  return `${verb}: ${m.name} is now ${m.phase}/${m.status} (version ${m.version})\nallowed next: ${m.allowedActions.length ? m.allowedActions.join(', ') : 'none'}\n`;
}
