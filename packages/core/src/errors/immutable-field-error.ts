import { TidewayError } from './tideway-error.js';

/** A PATCH tried to change a part of the spec that is fixed at this point of the migration. */
export class ImmutableFieldError extends TidewayError {
  constructor(field: string, reason: string) {
    super('IMMUTABLE_FIELD', `field "${field}" cannot be changed: ${reason}`, { field, reason });
  }
}
