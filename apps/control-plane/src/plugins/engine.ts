import { createDb } from '@tideway/db';
import { createEngine, type EngineOptions } from '@tideway/engine';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ControlPlaneConfig } from '../config.js';

/** Options of the engine plugin; tests and later features pass hooks and a clock. */
export interface EnginePluginOptions {
  readonly config: ControlPlaneConfig;
  readonly clock?: EngineOptions['clock'];
  readonly configureHooks?: EngineOptions['configureHooks'];
}

/** Opens the orchestrator database and wires the engine; closes both with the app. */
export const enginePlugin = fp<EnginePluginOptions>(
  async (app: FastifyInstance, options) => {
    const db = createDb({ connectionString: options.config.databaseUrl, max: 10, applicationName: 'tideway-control-plane' });
    const engine = createEngine({
      db,
      datasources: options.config.datasources,
      bootstrapAdminToken: options.config.adminToken,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.configureHooks ? { configureHooks: options.configureHooks } : {}),
    });
    app.decorate('engine', engine);
    app.addHook('onClose', async () => {
      await engine.close();
      await db.destroy();
    });
  },
  { name: 'engine' },
);
