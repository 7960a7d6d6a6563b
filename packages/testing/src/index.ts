export {
  createTestDatabase,
  createOrchestratorTestDatabase,
  PG_ADMIN_URL,
  type TestDatabase,
  type OrchestratorTestDatabase,
} from './test-database.js';
export { uniqueRedisPrefix, TEST_REDIS_URL } from './redis-prefix.js';
