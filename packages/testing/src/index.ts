export {
  createTestDatabase,
  createOrchestratorTestDatabase,
  PG_ADMIN_URL,
  type TestDatabase,
  type OrchestratorTestDatabase,
} from './test-database.js';
export { uniqueRedisPrefix, TEST_REDIS_URL, unleashTestEnv } from './test-env.js';
export { waitFor } from './wait-for.js';
export { mappingDiff, type MappingDiffInput } from './mapping-diff.js';
export { startTsProcess, type TsProcess } from './child-process.js';
export { startPrivateRedis, type PrivateRedis, type PrivateRedisOptions } from './private-redis.js';
export { startPrivatePostgres, type PrivatePostgres, type PrivatePostgresOptions, type PostgresStopMode } from './private-postgres.js';
export { freePort } from './free-port.js';
export { ordersSpec, unguarded, ORDERS_TABLES_SQL } from './orders-spec.js';
export { initPgbench, runPgbench, type PgTarget, type PgbenchRun, type PgbenchSample } from './pgbench.js';
export { startPrivatePrometheus, type PrivatePrometheus, type PrivatePrometheusOptions } from './private-prometheus.js';
