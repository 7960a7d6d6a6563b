import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ControlPlaneConfig } from './config.js';
import { authPlugin } from './plugins/auth.js';
import { drainPlugin } from './plugins/drain.js';
import { enginePlugin, type EnginePluginOptions } from './plugins/engine.js';
import { installErrorHandling } from './plugins/errors.js';
import { idempotencyPlugin } from './plugins/idempotency.js';
import { metricsPlugin } from './plugins/metrics.js';
import { redisPlugin } from './plugins/redis.js';
import { installValidators } from './plugins/validation.js';
import { healthRoutes } from './routes/health/index.js';
import { migrationRoutes } from './routes/migrations/index.js';
import { divergenceRoutes } from './routes/divergence/index.js';
import { verificationRoutes } from './routes/verification/index.js';
import { cutoverRoutes } from './routes/cutover/index.js';
import { tokenRoutes } from './routes/tokens/index.js';
import './types.js';

/** Extra wiring for tests and embedders. */
export interface BuildAppOptions {
  readonly clock?: EnginePluginOptions['clock'];
  readonly configureHooks?: EnginePluginOptions['configureHooks'];
}

/**
 * Builds the control plane: plugins, routes, OpenAPI (`/openapi.json`, UI at `/docs`). Never listens;
 * `server.ts` does. Close it with `app.close()` (ends database, datasource and Redis connections).
 *
 * @example
 * ```ts
 * const app = await buildApp(loadConfig());
 * const res = await app.inject({ method: 'GET', url: '/healthz' });
 * await app.close();
 * ```
 */
export async function buildApp(config: ControlPlaneConfig, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    bodyLimit: config.bodyLimitBytes,
    // Never let a client pick its own request id; ours is what 5xx answers point at.
    genReqId: () => crypto.randomUUID(),
    // The drain plugin serves requests that arrive on open connections while closing (with
    // `Connection: close`) instead of Fastify's 503.
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  installValidators(app);
  installErrorHandling(app);
  await app.register(drainPlugin);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Tideway control plane', version: '0.1.0', description: 'Phased, reversible PostgreSQL data migrations' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  await app.register(enginePlugin, {
    config,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.configureHooks ? { configureHooks: options.configureHooks } : {}),
  });
  await app.register(redisPlugin, { config });
  await app.register(metricsPlugin);
  await app.register(authPlugin);
  await app.register(idempotencyPlugin);
  // The docs UI comes after auth and idempotency, whose request decorators its routes need, and
  // after the hook that makes it public (an onRoute hook only sees routes added after it).
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs')) route.config = { ...(route.config as object), access: 'public' };
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });

  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes);
  await app.register(migrationRoutes);
  await app.register(tokenRoutes);
  await app.register(divergenceRoutes);
  await app.register(verificationRoutes);
  await app.register(cutoverRoutes);
  return app;
}
