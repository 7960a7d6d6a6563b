import { TidewayError } from './tideway-error.js';

/** Migration names are unique slugs; this one is in use. */
export class NameTakenError extends TidewayError {
  constructor(name: string) {
    super('NAME_TAKEN', `a migration named "${name}" already exists`, { field: 'name', name });
  }
}
