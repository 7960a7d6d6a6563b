import { TidewayError } from './tideway-error.js';

/** Optimistic concurrency: the caller's `expectedVersion` is not the stored version. */
export class VersionConflictError extends TidewayError {
  constructor(migrationId: string, expectedVersion: number, actualVersion: number) {
    super(
      'VERSION_CONFLICT',
      `migration ${migrationId} is at version ${actualVersion}, not the expected ${expectedVersion}`,
      { migrationId, expectedVersion, actualVersion },
    );
  }
}
