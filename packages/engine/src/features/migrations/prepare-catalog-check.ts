import { InvalidSpecError, type PhaseAction } from '@tideway/core';
import type { CatalogInspector } from '../datasources/catalog-inspector.js';
import type { DdlGuard } from '../ddl-guard/ddl-guard.js';
import type { MigrationContext } from './migration-context.js';

/**
 * Entry action of `prepare`: checks the spec against the live catalogs of the source and target
 * datasources (tables exist, keys are primary or unique NOT NULL, mapped target columns exist, and
 * every mapping and reverse-mapping expression binds to built-ins and safe types only — see
 * `ExpressionBinder`), every problem in one list.
 * Throwing cancels `start`, so a migration with a broken spec never leaves `draft`. The tables'
 * signature as bound is recorded for the DDL guard.
 *
 * @throws InvalidSpecError listing every problem at once.
 * @throws DependencyUnavailableError when a datasource cannot be reached.
 */
export function prepareCatalogCheck(catalog: CatalogInspector, guard?: DdlGuard): PhaseAction<MigrationContext> {
  return {
    name: 'catalog-check',
    async run(ctx) {
      const { problems, binding } = await catalog.inspectSpec(ctx.migration.spec);
      if (problems.length > 0) throw new InvalidSpecError(problems);
      if (guard && binding) await guard.record(ctx.db, ctx.migration.id, binding.signature);
    },
  };
}
