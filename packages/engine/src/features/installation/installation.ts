import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';

/** What an installation id may look like: 1–16 lower-case letters and digits. */
export const INSTALLATION_PATTERN = /^[a-z0-9]{1,16}$/;

/**
 * The id of this Tideway installation: it marks every object Tideway creates outside its own
 * database (datasource triggers, functions and tables; flag names), so two installations that share
 * a datasource or a flag server never change each other's objects.
 *
 * The default is the random id stored in the orchestrator database (table `installation`, created
 * by its schema migration), so every orchestrator database is its own installation; the apps let
 * `TIDEWAY_INSTALLATION` override it. Read once, then cached.
 *
 * @example
 * ```ts
 * const installation = new Installation(db);
 * await installation.id(); // 'k3x9q2ma'
 * ```
 */
export class Installation {
  #id: Promise<string> | null;

  /**
   * @param override - a fixed id (`TIDEWAY_INSTALLATION`); `null` reads the orchestrator database.
   * @throws Error when `override` does not match {@link INSTALLATION_PATTERN}.
   */
  constructor(
    private readonly db: Kysely<Database>,
    override: string | null = null,
  ) {
    if (override !== null && !INSTALLATION_PATTERN.test(override)) {
      throw new Error(`installation id must be 1-16 lower-case letters and digits, got "${override}"`);
    }
    this.#id = override === null ? null : Promise.resolve(override);
  }

  /**
   * The installation id.
   * @throws the database error when the orchestrator database cannot be read (a later call retries).
   */
  id(): Promise<string> {
    this.#id ??= this.db
      .selectFrom('installation')
      .select('id')
      .executeTakeFirstOrThrow()
      .then((r) => r.id)
      .catch((error: unknown) => {
        this.#id = null;
        throw error;
      });
    return this.#id;
  }
}
