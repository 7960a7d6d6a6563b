export type {
  Database,
  MigrationsTable,
  MigrationEventsTable,
  ApiTokensTable,
  IdempotencyKeysTable,
  MigrationRow,
  NewMigrationRow,
  MigrationRowUpdate,
  MigrationEventRow,
  NewMigrationEventRow,
  ApiTokenRow,
  NewApiTokenRow,
  IdempotencyKeyRow,
  AuditEventsTable,
  AuditEventRow,
  BackfillRunsTable,
  BackfillChunksTable,
  BackfillRunRow,
  BackfillChunkRow,
  ChunkStatus,
} from './database.js';
export { createDb, createPool, typeParsers, type DbOptions } from './create-db.js';
export { migrateToLatest, FolderMigrationProvider, MIGRATIONS_FOLDER } from './migrate.js';
