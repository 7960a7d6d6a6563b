import { TidewayError } from './tideway-error.js';

/** Names of migrations and of tokens are unique slugs; this one is in use. */
export class NameTakenError extends TidewayError {
  constructor(name: string, kind: 'migration' | 'token' = 'migration') {
    super('NAME_TAKEN', `a ${kind} named "${name}" already exists`, { field: 'name', name, kind });
  }
}
