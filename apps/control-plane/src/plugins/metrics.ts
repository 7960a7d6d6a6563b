import { PHASES, STATUSES } from '@tideway/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics on a registry of this app (not the global one, so several apps can live in one
 * process): `tideway_http_request_duration_seconds` (method, route, status_code) and
 * `tideway_migrations` (phase, status), read from PostgreSQL at scrape time.
 */
export const metricsPlugin = fp(
  async (app: FastifyInstance) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'tideway_process_' });
    const duration = new Histogram({
      name: 'tideway_http_request_duration_seconds',
      help: 'HTTP request latency of the control plane, seconds',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    new Gauge({
      name: 'tideway_migrations',
      help: 'Migrations by phase and status',
      labelNames: ['phase', 'status'],
      registers: [registry],
      async collect() {
        const counts = await app.engine.migrationReadModel.countByState();
        for (const phase of PHASES) for (const status of STATUSES) this.set({ phase, status }, 0);
        for (const c of counts) this.set({ phase: c.phase, status: c.status }, c.count);
      },
    });
    // Backfill: the same figures as `progress` on GET /v1/migrations/:id, per migration name.
    const backfill = app.engine.backfillReadModel.activeProgress.bind(app.engine.backfillReadModel);
    const gauge = (name: string, help: string, pick: (p: Awaited<ReturnType<typeof backfill>>[number]['progress']) => number | null, extraLabels: string[] = []) =>
      new Gauge({
        name,
        help,
        labelNames: ['migration', ...extraLabels],
        registers: [registry],
        async collect() {
          this.reset();
          for (const { migration, progress } of await backfill()) {
            const value = pick(progress);
            if (value !== null) this.set({ migration }, value);
          }
        },
      });
    gauge('tideway_backfill_rows_copied', 'Rows copied by the backfill', (p) => p.rowsCopied);
    gauge('tideway_backfill_rows_estimated', 'Rows the backfill expects to copy', (p) => p.rowsEstimated);
    gauge('tideway_backfill_chunks_done', 'Backfill chunks done', (p) => p.chunksDone);
    gauge('tideway_backfill_chunks_total', 'Backfill chunks planned plus still to plan', (p) => p.chunksTotal);
    gauge('tideway_backfill_chunks_failed', 'Backfill chunks that finally failed', (p) => p.chunksFailed);
    gauge('tideway_backfill_skipped_rows_unresolved', 'Rows the backfill left out because of their data, not re-driven or accepted yet (the backfill gate waits for them)', (p) => p.skippedRows.unresolved);
    gauge('tideway_backfill_skipped_rows_accepted', 'Rows the backfill left out because of their data that an admin accepted out of the target', (p) => p.skippedRows.accepted);
    gauge('tideway_backfill_rows_per_second', 'Rows copied per second over the last 60 s', (p) => p.rowsPerSecond);
    gauge('tideway_backfill_eta_seconds', 'Estimated seconds to the end of the backfill', (p) => p.etaSeconds);
    gauge('tideway_backfill_throttled', '1 while the backfill is throttled by datasource health, rate cap or the latency guard', (p) => (p.throttled ? 1 : 0));
    // The latency guard (ADR 014): one series per datasource, from its row in datasource_paces.
    const paces = () => app.engine.paces.list(app.engine.db);
    const paceGauge = (name: string, help: string, pick: (row: Awaited<ReturnType<typeof paces>>[number]) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['datasource'],
        registers: [registry],
        async collect() {
          this.reset();
          for (const row of await paces()) {
            const value = pick(row);
            if (value !== null) this.set({ datasource: row.datasource }, value);
          }
        },
      });
    paceGauge('tideway_latency_guard_pace_rows_per_second', 'The pace the latency guard allows every chunk on the datasource, rows/s', (r) => r.pace_rows_per_second);
    paceGauge('tideway_latency_guard_observed_p99_seconds', "The latency guard's signal: the canary probe's p99 over the last 2 s, seconds", (r) => (r.observed_p99_ms === null ? null : r.observed_p99_ms / 1000));
    paceGauge('tideway_latency_guard_baseline_p99_seconds', "The probe's p99 measured with the backfill held back, seconds", (r) => (r.baseline_p99_ms === null ? null : r.baseline_p99_ms / 1000));
    paceGauge('tideway_latency_guard_holding', '1 while the latency guard holds the copy back (a breach of its budget), 0 otherwise', (r) => (r.holding && r.holder !== null ? 1 : 0));
    paceGauge('tideway_latency_guard_measuring_baseline', '1 while the latency guard holds the backfill back to measure its baseline', (r) => (r.mode === 'baseline' && r.holder !== null ? 1 : 0));
    paceGauge('tideway_latency_guard_statements_per_second', "Other clients' statements per second (pg_stat_statements) over the last 5 s; the latency guard judges it against its baseline (signal throughput)", (r) => r.throughput_observed_per_second);
    paceGauge('tideway_latency_guard_baseline_statements_per_second', "Other clients' statements per second measured with the backfill held back", (r) => r.throughput_baseline_per_second);
    paceGauge('tideway_latency_guard_prometheus_value', "The latency guard's Prometheus signal: the newest value of throttle.latencyGuard.prometheus.query (the query's unit)", (r) => r.prometheus_value);
    app.decorate('metrics', registry);
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  },
  { name: 'metrics', dependencies: ['engine'] },
);
