import { TidewayError } from './tideway-error.js';

/** No migration has this id. */
export class MigrationNotFoundError extends TidewayError {
  constructor(migrationId: string) {
    super('MIGRATION_NOT_FOUND', `migration ${migrationId} does not exist`, { migrationId });
  }
}
