import { TidewayError } from './tideway-error.js';

/**
 * A service Tideway needs for this request (a datasource, Redis, the flag server) does not answer.
 * Nothing was changed; the caller may retry.
 */
export class DependencyUnavailableError extends TidewayError {
  constructor(dependency: string, message: string, options?: { cause?: unknown }) {
    super('DEPENDENCY_UNAVAILABLE', `${dependency} is unavailable: ${message}`, { dependency }, options);
  }
}
