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
    app.decorate('metrics', registry);
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  },
  { name: 'metrics', dependencies: ['engine'] },
);
