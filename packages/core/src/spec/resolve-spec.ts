import { InvalidSpecError, type SpecProblem } from '../errors/invalid-spec-error.js';
import { SPEC_DEFAULTS, type MigrationSpec, type TableRef } from './migration-spec.js';
import { isUuid, type MigrationSpecInput, type TableRefInput } from './spec-schema.js';

function resolveTable(ref: TableRefInput): TableRef {
  return {
    datasource: ref.datasource,
    schema: ref.schema ?? 'public',
    table: ref.table,
    key: typeof ref.key === 'string' ? [ref.key] : [...ref.key],
  };
}

/**
 * The checks a schema cannot express: relations between fields. Returns every problem found, empty
 * when the spec is coherent. Live checks against the datasource catalog happen later, at `start`.
 */
export function checkSpec(spec: MigrationSpec): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const { source, target, backfill, ramp, cleanup } = spec;
  if (isUuid(spec.name)) {
    // Where a migration is named (the CLI's <migration>), a UUID means an id.
    problems.push({ field: 'name', problem: 'must not have the shape of a UUID, which names a migration by its id' });
  }
  if (new Set(source.key).size !== source.key.length) problems.push({ field: 'source.key', problem: 'lists a column twice' });
  if (new Set(target.key).size !== target.key.length) problems.push({ field: 'target.key', problem: 'lists a column twice' });
  if (source.key.length !== target.key.length) {
    problems.push({ field: 'target.key', problem: `has ${target.key.length} columns but source.key has ${source.key.length}` });
  }
  for (const column of target.key) {
    if (!(column in spec.mapping)) problems.push({ field: `mapping.${column}`, problem: 'target key column must be mapped' });
  }
  if (source.datasource === target.datasource && source.schema === target.schema && source.table === target.table) {
    problems.push({ field: 'target.table', problem: 'target must differ from source' });
  }
  if (!(backfill.minChunkRows <= backfill.initialChunkRows && backfill.initialChunkRows <= backfill.maxChunkRows)) {
    problems.push({ field: 'backfill.initialChunkRows', problem: 'must satisfy minChunkRows <= initialChunkRows <= maxChunkRows' });
  }
  ramp.steps.forEach((step, i) => {
    const before = ramp.steps[i - 1];
    if (before !== undefined && step <= before) problems.push({ field: `ramp.steps[${i}]`, problem: 'steps must be strictly increasing' });
  });
  if (ramp.steps[ramp.steps.length - 1] !== 100) problems.push({ field: 'ramp.steps', problem: 'the last step must be 100' });
  if (cleanup.dropOld && cleanup.dropConfirmation !== source.table) {
    problems.push({ field: 'cleanup.dropConfirmation', problem: 'dropOld needs dropConfirmation equal to the source table name' });
  }
  const prometheus = spec.throttle.latencyGuard.prometheus;
  if (prometheus !== null) {
    let url: URL | null = null;
    try {
      url = new URL(prometheus.url);
    } catch {
      problems.push({ field: 'throttle.latencyGuard.prometheus.url', problem: 'is not an absolute URL' });
    }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') problems.push({ field: 'throttle.latencyGuard.prometheus.url', problem: `must be http:// or https://, not ${url.protocol}//` });
    if (url && (url.username !== '' || url.password !== '')) problems.push({ field: 'throttle.latencyGuard.prometheus.url', problem: 'carries credentials: a spec is readable by every viewer; put an authenticating proxy in front instead' });
    if (url && (url.search !== '' || url.hash !== '')) problems.push({ field: 'throttle.latencyGuard.prometheus.url', problem: 'is the server\'s base URL: no query string or fragment' });
    if (!Number.isFinite(prometheus.max)) problems.push({ field: 'throttle.latencyGuard.prometheus.max', problem: 'must be a finite number' });
  }
  return problems;
}

/**
 * Fills in every default of a client spec (see `SPEC_DEFAULTS`), normalises `key` to a list and
 * `schema` to `public`, and checks the relations between fields.
 *
 * @param input - a spec that already passed `MigrationSpecInputSchema`.
 * @returns the resolved spec Tideway stores.
 * @throws InvalidSpecError listing every problem found by {@link checkSpec}.
 * @example
 * ```ts
 * const spec = resolveSpec({ name: 'orders-v2', syncMode: 'trigger', mapping: { id: 'id' },
 *   source: { datasource: 'main', table: 'orders', key: 'id' },
 *   target: { datasource: 'main', table: 'orders_v2', key: 'id' } });
 * spec.backfill.targetChunkMs; // 500
 * ```
 */
export function resolveSpec(input: MigrationSpecInput): MigrationSpec {
  const spec: MigrationSpec = {
    name: input.name,
    description: input.description ?? null,
    source: resolveTable(input.source),
    target: resolveTable(input.target),
    mapping: { ...input.mapping },
    syncMode: input.syncMode,
    reverseMapping: input.reverseMapping ? { ...input.reverseMapping } : null,
    rollbackAfterWriteCutover: input.rollbackAfterWriteCutover ?? true,
    backfill: { ...SPEC_DEFAULTS.backfill, ...input.backfill },
    throttle: { ...SPEC_DEFAULTS.throttle, ...input.throttle, latencyGuard: { ...SPEC_DEFAULTS.throttle.latencyGuard, ...input.throttle?.latencyGuard } },
    shadowRead: { ...SPEC_DEFAULTS.shadowRead, ...input.shadowRead },
    abortCriteria: { ...SPEC_DEFAULTS.abortCriteria, ...input.abortCriteria },
    ramp: { ...SPEC_DEFAULTS.ramp, ...input.ramp },
    cleanup: { ...SPEC_DEFAULTS.cleanup, ...input.cleanup },
  };
  const problems = checkSpec(spec);
  if (problems.length > 0) throw new InvalidSpecError(problems);
  return spec;
}
