import type { FlagOwner } from '../flags/desired-flags.js';
import { TidewayError } from './tideway-error.js';

/**
 * A flag a migration needs already exists on the flag server and Tideway did not create it for
 * this migration (no ownership marker, or another installation's): Tideway never changes it.
 * Nothing was created or changed. Rename the migration, or remove the other flag.
 */
export class FlagConflictError extends TidewayError {
  /**
   * @param flag - the clashing flag's name.
   * @param owner - the owner its description names, `null` when it carries no Tideway marker.
   * @param archived - whether the clashing flag is in the flag server's archive.
   */
  constructor(flag: string, owner: FlagOwner | null, archived = false) {
    super(
      'FLAG_CONFLICT',
      `flag "${flag}" already exists${archived ? ' (archived)' : ''} and was not created by Tideway for this migration` +
        (owner ? ` (it belongs to installation ${owner.installation}, migration ${owner.migrationId})` : ' (it carries no Tideway ownership marker)') +
        '; Tideway never changes a flag it did not create: rename the migration or remove that flag',
      { field: 'name', flag, owner: owner ? { ...owner } : null, archived },
    );
  }
}
