import { PhaseHooks, type FlagControl } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import { systemClock, type Clock } from './clock.js';
import { AuditLog } from './features/audit/audit-log.js';
import { CatalogInspector } from './features/datasources/catalog-inspector.js';
import { ExpressionBinder } from './features/expressions/expression-binder.js';
import { DatasourceRegistry } from './features/datasources/datasource-registry.js';
import { IdempotencyStore } from './features/idempotency/idempotency-store.js';
import type { MigrationContext } from './features/migrations/migration-context.js';
import { MigrationReadModel } from './features/migrations/migration-read-model.js';
import { KyselyMigrationRepository } from './features/migrations/migration-repository.js';
import { MigrationService } from './features/migrations/migration-service.js';
import { prepareCatalogCheck } from './features/migrations/prepare-catalog-check.js';
import { TokenService } from './features/tokens/token-service.js';
import { hostname } from 'node:os';
import { BackfillReadModel } from './features/backfill/backfill-read-model.js';
import { BackfillRepository } from './features/backfill/backfill-repository.js';
import { BackfillService } from './features/backfill/backfill-service.js';
import { ChunkCopier } from './features/backfill/chunk-copier.js';
import { HealthProbe } from './features/backfill/health-probe.js';
import { LatencyGuard } from './features/pace/latency-guard.js';
import { PaceRepository } from './features/pace/pace-repository.js';
import { registerLatencyGuard } from './features/pace/register-latency-guard.js';
import { TombstoneSweeper } from './features/backfill/tombstone-sweeper.js';
import { TargetPurger } from './features/backfill/target-purger.js';
import { registerBackfill } from './features/backfill/register-backfill.js';
import { SyncObjects } from './features/sync/sync-objects.js';
import { DdlGuard } from './features/ddl-guard/ddl-guard.js';
import { RoundTripCheck } from './features/way-back/round-trip-check.js';
import { registerWayBack } from './features/way-back/register-way-back.js';
import { SyncFailureCollector } from './features/sync/sync-failure-collector.js';
import type { WorkQueue } from './features/leases/work-queue.js';
import { CHUNK_WORK, LeasedWork, RANGE_WORK } from './features/leases/leased-work.js';
import { WorkBlocks } from './features/leases/work-blocks.js';
import { DivergenceReadModel } from './features/divergence/divergence-read-model.js';
import { DivergenceRecorder } from './features/divergence/divergence-recorder.js';
import { EvidenceWindows } from './features/divergence/evidence-windows.js';
import { registerDivergenceGate } from './features/divergence/register-divergence.js';
import { AbortEvaluator } from './features/abort/abort-evaluator.js';
import { VerificationService } from './features/verification/verification-service.js';
import { registerVerificationGate } from './features/verification/register-verification.js';
import { CleanupService } from './features/cleanup/cleanup-service.js';
import { RampService } from './features/cutover/ramp-service.js';
import { registerCutover } from './features/cutover/register-cutover.js';
import { TimerService } from './features/timers/timer-service.js';
import { WebhookNotifier, type ControlQueue } from './features/webhooks/webhook-notifier.js';
import { DesiredStateReconciler } from './features/desired-state/desired-state.js';
import { Installation } from './features/installation/installation.js';
import { FlagsKind } from './features/flags/flags-kind.js';
import { noFaults, type Faults } from './faults.js';

/** What {@link createEngine} needs. */
export interface EngineOptions {
  /** The orchestrator database; owned by the caller (the engine does not destroy it). */
  readonly db: Kysely<Database>;
  /** Datasource name → connection string of a user database. */
  readonly datasources: Readonly<Record<string, string>>;
  /** @defaultValue the system clock */
  readonly clock?: Clock;
  /** Secret of the bootstrap admin token (`TIDEWAY_ADMIN_TOKEN`); `null` for none. */
  readonly bootstrapAdminToken?: string | null;
  /** Where chunk jobs go; `null` (the default) for a process that only reads and reconciles nothing. */
  readonly queue?: WorkQueue | null;
  /** Where webhook deliveries and the evaluation schedule go; `null` (default) for none. */
  readonly controlQueue?: ControlQueue | null;
  /** Admin control of the flag server (Unleash); `null` (default): no flags are kept, and cutover answers 503. */
  readonly flags?: FlagControl | null;
  /** URLs that receive webhook events. @defaultValue [] */
  readonly webhookUrls?: readonly string[];
  /** Chunks in flight at once per datasource, shared by all its migrations. @defaultValue 4 */
  readonly datasourceConcurrency?: number;
  /** Name recorded on chunks this process claims. @defaultValue `<hostname>:<pid>` */
  readonly workerName?: string;
  /** Lets a caller (tests, later features) register more gates and phase actions. */
  readonly configureHooks?: (hooks: PhaseHooks<MigrationContext>, engine: Engine) => void;
  /** This installation's id (`TIDEWAY_INSTALLATION`); `null` (default) reads it from the orchestrator database. */
  readonly installation?: string | null;
  /** Crash points for fault tests (`TIDEWAY_FAULT_CRASH_AT`). @defaultValue none */
  readonly faults?: Faults;
  /** Where decisions worth a log line go (the latency guard's). @defaultValue nowhere */
  readonly log?: (msg: string, extra?: Record<string, unknown>) => void;
}

/** The use-cases both apps call, wired together. */
export interface Engine {
  readonly db: Kysely<Database>;
  readonly clock: Clock;
  readonly hooks: PhaseHooks<MigrationContext>;
  readonly datasources: DatasourceRegistry;
  readonly catalog: CatalogInspector;
  /** Binds user-written SQL expressions against the datasources' live catalogs (ADR 006). */
  readonly expressions: ExpressionBinder;
  readonly migrations: MigrationService;
  readonly migrationReadModel: MigrationReadModel;
  readonly tokens: TokenService;
  readonly idempotency: IdempotencyStore;
  readonly backfill: BackfillService;
  readonly backfillReadModel: BackfillReadModel;
  /** reverse(mapping(old row)) = old row, checked on a sample before cutover and write cutover. */
  readonly roundTrip: RoundTripCheck;
  /** Pauses a migration whose tables changed under it, with the DDL named. */
  readonly ddlGuard: DdlGuard;
  /** The datasource kind of the desired state: each migration's trigger sync. */
  readonly syncObjects: SyncObjects;
  /** Moves writes the sync triggers could not apply into the divergence ledger. */
  readonly syncFailures: SyncFailureCollector;
  readonly divergence: DivergenceRecorder;
  readonly divergenceReadModel: DivergenceReadModel;
  /** The windows evidence is judged in (a transition or a ramp step opens one). */
  readonly evidenceWindows: EvidenceWindows;
  readonly abortEvaluator: AbortEvaluator;
  readonly verification: VerificationService;
  readonly timers: TimerService;
  readonly ramp: RampService;
  readonly cleanup: CleanupService;
  readonly webhooks: WebhookNotifier;
  /** The id that marks what this installation creates outside its database. */
  readonly installation: Installation;
  /** Converges datasource objects and flags with each migration's state (transitions and the periodic pass). */
  readonly desiredState: DesiredStateReconciler;
  /** Which migrations' leased work cannot make progress (`progress.blocked`). */
  readonly workBlocks: WorkBlocks;
  /** The latency guard of each datasource (ADR 014): a worker ticks it every `PACE_TICK_MS`. */
  readonly latencyGuard: LatencyGuard;
  /** The guards' rows (pace, baseline, signal) per datasource. */
  readonly paces: PaceRepository;
  /** Ends the datasource pools (not the orchestrator database, which the caller owns). */
  close(): Promise<void>;
}

/**
 * Wires the engine: repositories, read models, services, and the built-in phase hooks (the prepare
 * catalog check). Features of later phases register their gates and actions on `hooks`.
 *
 * @example
 * ```ts
 * const engine = createEngine({ db, datasources: { main: 'postgres://postgres@127.0.0.1/app' } });
 * const m = await engine.migrations.create(spec, { actor: 'alice' });
 * await engine.migrations.act(m.id, 'start', { actor: 'alice', expectedVersion: m.version });
 * ```
 */
export function createEngine(options: EngineOptions): Engine {
  const clock = options.clock ?? systemClock;
  const hooks = new PhaseHooks<MigrationContext>();
  const datasources = new DatasourceRegistry(options.datasources);
  const expressions = new ExpressionBinder(datasources);
  const catalog = new CatalogInspector(datasources, expressions);
  const migrationReadModel = new MigrationReadModel(options.db);
  const faults = options.faults ?? noFaults;
  const repository = new KyselyMigrationRepository();
  const installation = new Installation(options.db, options.installation ?? null);
  const migrations = new MigrationService({
    db: options.db,
    repository,
    readModel: migrationReadModel,
    hooks,
    datasources,
    clock,
    faults,
    installation,
  });
  const desiredState = new DesiredStateReconciler(options.db, repository, faults);
  migrations.useConverger(desiredState);
  const backfillReadModel = new BackfillReadModel(options.db);
  const ddlGuard: DdlGuard = new DdlGuard({ db: options.db, binder: expressions, catalog, migrations });
  // A resume after a schema change re-binds the spec, or is refused (422) with every problem.
  migrations.duringTransition(async (trx, m, action) => {
    if (action === 'resume') await ddlGuard.rebindIfChanged(trx, m);
  });
  migrations.addProgressProvider(async (m) => {
    const ddl = await ddlGuard.detection(m.id);
    return ddl ? { ddl } : {};
  });
  const syncObjects = new SyncObjects({ db: options.db, datasources, catalog, installation, faults });
  desiredState.register(syncObjects);
  const health = new HealthProbe(datasources);
  const queue = options.queue ?? null;
  const workBlocks = new WorkBlocks(options.db, migrations);
  migrations.addProgressProvider(async (migration) => ({ blocked: await workBlocks.current(migration.id) }));
  const paces = new PaceRepository();
  const workerName = options.workerName ?? `${hostname()}:${process.pid}`;
  const backfill: BackfillService = new BackfillService({
    db: options.db,
    repository: new BackfillRepository(),
    datasources,
    catalog,
    copier: new ChunkCopier(datasources),
    health,
    pace: paces,
    sweeper: new TombstoneSweeper(datasources, catalog),
    purger: new TargetPurger(datasources, catalog),
    redriveSyncFailuresSince: (m, since): Promise<void> => divergence.redriveSince(m, since),
    ddlCheck: (m): Promise<string[]> => ddlGuard.check(m),
    migrations,
    chunks: new LeasedWork(CHUNK_WORK, options.db, queue, workBlocks),
    datasourceConcurrency: options.datasourceConcurrency ?? 4,
    workerName,
  });
  registerLatencyGuard({ migrations, datasources });
  const latencyGuard = new LatencyGuard({ db: options.db, datasources, repository: paces, migrations, workerName, ...(options.log ? { log: options.log } : {}) });
  const divergenceReadModel = new DivergenceReadModel(options.db);
  const evidenceWindows = new EvidenceWindows();
  migrations.duringTransition(async (trx, m, action, to) => {
    await evidenceWindows.open(trx, m.id, action, to.phase);
  });
  const divergence: DivergenceRecorder = new DivergenceRecorder(options.db, backfill, evidenceWindows);
  const webhooks = new WebhookNotifier(options.webhookUrls ?? [], options.controlQueue ?? null, clock);
  const timers = new TimerService(options.db, clock);
  const abortEvaluator = new AbortEvaluator(options.db, migrations, divergenceReadModel, webhooks, evidenceWindows);
  const flags = options.flags ?? null;
  // Flags are a kind of the desired state (ADR 008): without a flag server there are none to keep.
  // Registered after the datasource kind: the reverse sync exists before write-new goes on.
  if (flags) desiredState.register(new FlagsKind({ db: options.db, flags, installation }));
  const roundTrip = new RoundTripCheck({ db: options.db, datasources, catalog });
  const ramp = new RampService({
    db: options.db,
    roundTrip,
    flags,
    converge: desiredState,
    faults,
    timers,
    migrations,
    abort: abortEvaluator,
    evidence: divergenceReadModel,
    windows: evidenceWindows,
    webhooks,
    clock,
  });
  const cleanup = new CleanupService({ db: options.db, timers, migrations, datasources, webhooks, clock });
  const syncFailures = new SyncFailureCollector({ db: options.db, datasources, recorder: divergence, migrations });
  const engine: Engine = {
    db: options.db,
    clock,
    hooks,
    datasources,
    catalog,
    expressions,
    migrations,
    migrationReadModel,
    tokens: new TokenService(options.db, new AuditLog(), clock, options.bootstrapAdminToken ?? null),
    idempotency: new IdempotencyStore(options.db),
    backfill,
    backfillReadModel,
    syncObjects,
    syncFailures,
    ddlGuard,
    roundTrip,
    divergence,
    divergenceReadModel,
    evidenceWindows,
    abortEvaluator,
    timers,
    ramp,
    cleanup,
    webhooks,
    installation,
    desiredState,
    workBlocks,
    verification: new VerificationService({
      db: options.db,
      datasources,
      catalog,
      health,
      backfill,
      migrations,
      ranges: new LeasedWork(RANGE_WORK, options.db, queue, workBlocks),
      queue,
      workerName,
    }),
    latencyGuard,
    paces,
    close: async () => {
      latencyGuard.close();
      await datasources.close();
    },
  };
  hooks.addEntryAction('prepare', prepareCatalogCheck(catalog, ddlGuard));
  registerBackfill(hooks, { backfill, readModel: backfillReadModel, migrations, evidence: divergenceReadModel });
  registerDivergenceGate(hooks, divergenceReadModel, evidenceWindows);
  registerVerificationGate(hooks, options.db);
  registerCutover(hooks, { ramp, cleanup, timers, migrations });
  // Old gets the writes it missed while it was the best-effort side before it takes over again:
  // copied before the transition locks the migration (a copy under the lock could wait on reports
  // that wait on the lock), checked under it. Registered after the cutover's own rollback action,
  // so the check runs before it (rollback actions run newest first).
  migrations.beforeAct(['rollback', 'abort'], async (m) => {
    // What the reverse sync could not apply joins the SDK's old-side failures first.
    if (m.spec.syncMode === 'trigger') await syncFailures.collect(m, ['reverse']).catch(() => undefined);
    await divergence.copyOldSideBack(m);
  });
  hooks.addRollbackAction('cutover', { name: 'check-old-side-copied-back', run: (ctx) => divergence.assertOldSideCopiedBack(ctx.db, ctx.migration) });
  // Last, so its rollback action on cutover runs first (rollback actions run newest first).
  registerWayBack(hooks, { db: options.db, catalog, roundTrip, migrations, ddlGuard });
  options.configureHooks?.(hooks, engine);
  return engine;
}
