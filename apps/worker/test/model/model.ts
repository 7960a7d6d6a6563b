/**
 * Model-based test of the way back (issue 12, acceptance 2): random sequences of operator actions and
 * faults against the real control plane, worker process, PostgreSQL, Redis and Unleash, with two
 * applications writing all along — one through trigger sync, one through the SDK. fast-check's
 * `asyncModelRun` runs each sequence; on failure it shrinks to a minimal one and reports its seed.
 *
 * Invariants after every command: each migration's audit log replays through the transition table to
 * its stored state (only allowed transitions happened, none unrecorded); no application write failed;
 * no API answer was a 5xx; an automatic action acted once per breach. At the end of a sequence, with
 * the writers stopped: old holds every acknowledged write exactly (before write cutover old is
 * authoritative; after it, reverse sync or re-drive must have brought every write back), and once the
 * migration has a complete backfill (shadow_read, cutover, cleanup, done) new = mapping(old) exactly.
 */
import assert from 'node:assert/strict';
import { replayEvents, transition } from '@tideway/core';
import { waitFor, unguarded } from '@tideway/testing';
import fc from 'fast-check';
import { ADMIN, type ApiAnswer, type World } from './world.js';
import { SdkAppWriter, TriggerAppWriter, tablePairSql, type OldRow, type TablePair, type Writer } from './writers.js';

export type Which = 'trigger' | 'sdk';
const BOTH: readonly Which[] = ['trigger', 'sdk'];

/** One migration of a sequence and its application. */
interface Subject {
  readonly which: Which;
  readonly id: string;
  readonly name: string;
  readonly tables: TablePair;
  readonly writer: Writer;
  /** Automatic actions (actor `tideway:abort-criteria`) seen so far. */
  automatic: number;
}

/** The real side of a sequence. */
export interface Real {
  readonly world: World;
  readonly subjects: Record<Which, Subject>;
  readonly log: string[];
}

/** The model: what the commands last observed (phase and status per migration). */
export interface Model {
  readonly state: Record<Which, { phase: string; status: string }>;
}

let sequenceNo = 0;

function spec(which: Which, name: string, t: TablePair): Record<string, unknown> {
  return {
    name,
    syncMode: which === 'trigger' ? 'trigger' : 'application',
    source: { datasource: 'main', table: t.source, key: 'id' },
    target: { datasource: 'main', table: t.target, key: 'id' },
    mapping: { id: 'id', v2: 'v::bigint * 2', note: 'note' },
    reverseMapping: { v: '(v2 / 2)::int' },
    // The applications' flag reader refreshes every 250 ms; a change reaches it in 0.8–1.6 s
    // (measured: the Unleash server caches its client features for about a second).
    backfill: { initialChunkRows: 100, flagPropagationSeconds: 3 },
    shadowRead: { minWindowSeconds: 0, samplePercent: 100 },
    // One planted divergence breaches at once; the trigger migration rolls back, the SDK one pauses.
    abortCriteria: { minSamples: 0, maxDivergenceRate: 0.05, action: which === 'trigger' ? 'rollback' : 'pause' },
    ramp: { steps: [50, 100], holdSeconds: 1 },
  };
}

/** A dependency that did not answer in time (on a loaded machine, Unleash): 503, and nothing changed. */
function unavailable(answer: ApiAnswer): boolean {
  return answer.status === 503 && (answer.body['error'] as { code?: string } | undefined)?.code === 'DEPENDENCY_UNAVAILABLE';
}

/** No 5xx but a dependency's 503 (`DEPENDENCY_UNAVAILABLE`, which changes nothing). */
function ok(answer: ApiAnswer, what: string): void {
  assert.ok(answer.status < 500 || unavailable(answer), `${what} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
}

/** Sends until the answer is not a dependency's 503 (at most 30 s), as an operator retries. */
async function retrying(send: () => Promise<ApiAnswer>): Promise<ApiAnswer> {
  let last: ApiAnswer | undefined;
  await waitFor('an answer other than 503', async () => {
    last = await send();
    return unavailable(last) ? null : true;
  }, 30_000, 500).catch(() => undefined);
  return last as ApiAnswer;
}

/** Creates this sequence's tables and migrations (started), and starts both applications. */
export async function openSequence(world: World, writerSeed: number): Promise<{ model: Model; real: Real }> {
  const n = ++sequenceNo;
  const tag = `${Date.now().toString(36)}${n}`;
  const subjects = {} as Record<Which, Subject>;
  for (const which of BOTH) {
    const tables = { source: `m${which[0]}_src_${tag}`, target: `m${which[0]}_dst_${tag}` };
    await world.f.user.query(tablePairSql(tables));
    const name = `model-${which}-${tag}`;
    const created = await retrying(() => world.api('POST', '/v1/migrations', unguarded(spec(which, name, tables))));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body['id'] as string;
    const installation = created.body['installation'] as string;
    const started = await retrying(() => world.api('POST', `/v1/migrations/${id}/start`, {}));
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const flags = created.body['flags'] as { writeNew: string; dualWrite: string };
    const writer =
      which === 'trigger'
        ? new TriggerAppWriter(world.f.user.url, tables, world.flags, flags.writeNew, writerSeed)
        : new SdkAppWriter(world.f.user.url, tables, world.flags, { baseUrl: world.baseUrl, token: ADMIN, migration: { id, name, installation }, flagNames: flags }, writerSeed + 1);
    writer.start();
    subjects[which] = { which, id, name, tables, writer, automatic: 0 };
  }
  const model: Model = { state: { trigger: { phase: 'prepare', status: 'active' }, sdk: { phase: 'prepare', status: 'active' } } };
  return { model, real: { world, subjects, log: [] } };
}

/** Reads the stored state and the audit log consistently (same state before and after the log). */
async function stateAndEvents(real: Real, s: Subject) {
  const rm = real.world.f.engine.migrationReadModel;
  for (let i = 0; ; i++) {
    const before = await rm.get(s.id);
    const events = await rm.allEvents(s.id);
    const after = await rm.get(s.id);
    if (before && after && before.version === after.version) return { state: after, events };
    if (i >= 5) throw new Error(`migration ${s.id} kept changing while its log was read`);
  }
}

/** The invariants that hold after every command. */
export async function checkStep(model: Model, real: Real): Promise<void> {
  for (const which of BOTH) {
    const s = real.subjects[which];
    const { state, events } = await stateAndEvents(real, s);
    const replayed = replayEvents(events.map((e) => ({ seq: e.seq, action: e.action, fromPhase: e.fromPhase, fromStatus: e.fromStatus, toPhase: e.toPhase, toStatus: e.toStatus })));
    assert.deepEqual(replayed, { phase: state.phase, status: state.status }, `${which}: the audit log replays to ${JSON.stringify(replayed)}, the row says ${state.phase}/${state.status}`);
    assert.deepEqual(s.writer.errors, [], `${which}: application writes failed`);
    s.automatic = events.filter((e) => e.actor === 'tideway:abort-criteria').length;
    model.state[which] = { phase: state.phase, status: state.status };
  }
}

abstract class Step implements fc.AsyncCommand<Model, Real> {
  constructor(readonly which: Which) {}
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    real.log.push(this.toString());
    await this.act(model, real, real.subjects[this.which]);
    await checkStep(model, real);
  }
  protected abstract act(model: Model, real: Real, s: Subject): Promise<void>;
  abstract toString(): string;
}

/**
 * POSTs a state action with the version just read, and holds the answer to the transition table:
 * an action the table refuses answers 409 INVALID_TRANSITION and changes nothing; one it allows
 * answers 200 with the table's state, or — advance (gates), or a product rule such as a pending
 * old-side write failure — a 409 that changes nothing. A concurrent change (the abort criteria, the
 * DDL guard) shows as 409 VERSION_CONFLICT.
 */
async function act(real: Real, s: Subject, action: Action['action']): Promise<ApiAnswer> {
  const rm = real.world.f.engine.migrationReadModel;
  const before = await rm.get(s.id);
  assert.ok(before, `${s.which}: migration gone`);
  if (action === 'advance') await beforeAdvance(real, s, before.phase);
  const answer = await real.world.api('POST', `/v1/migrations/${s.id}/${action}`, { expectedVersion: before.version });
  ok(answer, `${action} of ${s.which}`);
  const after = await rm.get(s.id);
  const code = (answer.body['error'] as { code?: string } | undefined)?.code;
  const outcome = transition({ phase: before.phase, status: before.status }, action);
  if (answer.status === 200) {
    assert.ok(outcome.allowed, `${s.which}: ${action} from ${before.phase}/${before.status} answered 200, the transition table refuses it`);
    assert.deepEqual({ phase: answer.body['phase'], status: answer.body['status'] }, outcome.to, `${s.which}: ${action} from ${before.phase}/${before.status}`);
  } else {
    real.log.push(`  ${action}: ${answer.status} ${code}: ${String((answer.body['error'] as { message?: string } | undefined)?.message ?? '').slice(0, 300)}`);
    if (!unavailable(answer)) assert.equal(answer.status, 409, `${s.which}: ${action} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    if (!outcome.allowed && !unavailable(answer)) assert.equal(code, 'INVALID_TRANSITION', `${s.which}: ${action} from ${before.phase}/${before.status} is not in the table, answered ${code}`);
    if (code !== 'VERSION_CONFLICT') assert.equal(after?.version, before.version, `${s.which}: a refused ${action} (${code}) changed the migration`);
  }
  return answer;
}

/**
 * Before leaving cleanup, the application is redeployed onto new only (leaving cleanup executes it:
 * old is renamed): its writer stops — once the cleanup gates hold, so a refused advance keeps it writing.
 */
async function beforeAdvance(real: Real, s: Subject, phase: string): Promise<void> {
  if (phase !== 'cleanup') return;
  const gates = ((await real.world.api('GET', `/v1/migrations/${s.id}`)).body['gates'] ?? []) as { passed: boolean }[];
  if (gates.every((g) => g.passed)) await s.writer.stop();
}

class Action extends Step {
  constructor(
    which: Which,
    readonly action: 'advance' | 'pause' | 'resume' | 'rollback' | 'abort',
  ) {
    super(which);
  }
  protected async act(_m: Model, real: Real, s: Subject): Promise<void> {
    await act(real, s, this.action);
  }
  toString(): string {
    return `${this.action}(${this.which})`;
  }
}

/** Lets the current phase's work finish: the backfill, a verification, the ramp up to write cutover (≤ 8 s). */
class Settle extends Step {
  protected async act(model: Model, real: Real, s: Subject): Promise<void> {
    await this.actOn(model, real, s);
  }
  async actOn(_m: Model, real: Real, s: Subject): Promise<void> {
    const resource = async () =>
      (await real.world.api('GET', `/v1/migrations/${s.id}`)).body as { phase: string; status: string; gates?: { passed: boolean }[]; progress?: { backfill?: { completedAt?: string | null }; ramp?: { status?: string } } };
    const m = await resource();
    if (m.status !== 'active') return;
    const settled = async (): Promise<boolean> => {
      const now = await resource();
      if (now.phase !== m.phase || now.status !== 'active') return true;
      if (m.phase === 'dual_write') return (now.gates ?? []).every((g) => g.passed);
      if (m.phase === 'backfill') return Boolean(now.progress?.backfill?.completedAt);
      if (m.phase === 'cutover') return now.progress?.ramp?.status === 'write_cutover' || now.progress?.ramp?.status === 'complete';
      return true;
    };
    if (m.phase === 'shadow_read') {
      const v = await real.world.api('POST', `/v1/migrations/${s.id}/verifications`);
      ok(v, 'verification');
      if (v.status !== 201 && v.status !== 202 && v.status !== 200) return;
      const vid = v.body['id'] as string;
      await waitFor('verification finished', async () => {
        const got = await real.world.api('GET', `/v1/migrations/${s.id}/verifications/${vid}`);
        return got.body['status'] === 'running' || got.body['status'] === 'pending' ? null : true;
      }, 15_000, 50).catch(() => undefined);
      return;
    }
    await waitFor(`${this.which} ${m.phase} settled`, async () => ((await settled()) ? true : null), 8_000, 50).catch(() => undefined);
  }
  toString(): string {
    return `settle(${this.which})`;
  }
}

/** What an operator driving the rollout does: let the phase's work finish, then advance. */
class Progress extends Step {
  protected async act(model: Model, real: Real, s: Subject): Promise<void> {
    await new Settle(this.which).actOn(model, real, s);
    await act(real, s, 'advance');
  }
  toString(): string {
    return `progress(${this.which})`;
  }
}

/** The phases a sequence may start from: both migrations are driven there (in parallel) before its commands. */
export const START_PHASES = ['prepare', 'dual_write', 'backfill', 'shadow_read', 'cutover'] as const;
export type StartPhase = (typeof START_PHASES)[number];

/** Drives one migration forward with {@link Progress} until it is in `phase` (at most 12 tries). */
async function driveTo(model: Model, real: Real, s: Subject, phase: StartPhase): Promise<void> {
  const order: readonly string[] = START_PHASES;
  for (let i = 0; i < 12; i++) {
    const m = await real.world.f.engine.migrationReadModel.get(s.id);
    if (!m || order.indexOf(m.phase) >= order.indexOf(phase)) break;
    await new Progress(s.which).run(model, real);
  }
  const m = await real.world.f.engine.migrationReadModel.get(s.id);
  assert.equal(m?.phase, phase, `${s.which} did not get to ${phase}: ${m?.phase}/${m?.status}`);
}

/** PATCH of an operator tunable. */
class Patch extends Step {
  constructor(
    which: Which,
    readonly patch: Record<string, unknown>,
  ) {
    super(which);
  }
  protected async act(_m: Model, real: Real, s: Subject): Promise<void> {
    const answer = await real.world.api('PATCH', `/v1/migrations/${s.id}`, { spec: this.patch });
    if (answer.status === 409 || unavailable(answer)) return; // a version conflict with a concurrent automatic action; Unleash slow
    assert.equal(answer.status, 200, `PATCH of ${this.which}: ${JSON.stringify(answer.body)}`);
    // PATCH means what it says: the resource carries the new value.
    const [section, values] = Object.entries(this.patch)[0] as [string, Record<string, unknown>];
    const spec = (await real.world.api('GET', `/v1/migrations/${s.id}`)).body['spec'] as Record<string, Record<string, unknown>>;
    for (const [field, value] of Object.entries(values)) assert.deepEqual(spec[section]?.[field], value, `PATCH of ${this.which}: ${section}.${field}`);
  }
  toString(): string {
    return `patch(${this.which}, ${JSON.stringify(this.patch)})`;
  }
}

/** Shadow results that all disagree, in shadow_read or cutover: the abort criteria act, once. */
class PlantDivergence extends Step {
  override check(m: Readonly<Model>): boolean {
    const st = m.state[this.which];
    return st.status === 'active' && (st.phase === 'shadow_read' || st.phase === 'cutover');
  }
  protected async act(_m: Model, real: Real, s: Subject): Promise<void> {
    const before = await real.world.f.engine.migrationReadModel.get(s.id);
    if (!before || before.status !== 'active' || (before.phase !== 'shadow_read' && before.phase !== 'cutover')) return;
    const at = new Date().toISOString();
    const results = Array.from({ length: 100 }, (_, i) => ({ key: String(i + 1), outcome: 'mismatch', diffPaths: ['note'], oldLatencyMs: 1, newLatencyMs: 1, at }));
    const posted = await real.world.api('POST', `/v1/migrations/${s.id}/shadow-results`, { results });
    ok(posted, 'shadow results');
    const rm = real.world.f.engine.migrationReadModel;
    const automatic = async () => (await rm.allEvents(s.id)).filter((e) => e.actor === 'tideway:abort-criteria');
    const seen = (await automatic()).length;
    const events = await waitFor(`${this.which}: the automatic action`, async () => ((await automatic()).length > seen ? automatic() : null), 30_000, 25);
    const acted = events.slice(seen);
    assert.equal(acted.length, 1, `${this.which}: one breach, ${acted.length} automatic actions: ${JSON.stringify(acted.map((e) => e.action))}`);
    const expected = this.which === 'trigger' ? 'rollback' : 'pause';
    assert.equal(acted[0]?.action, expected);
    assert.equal(acted[0]?.fromPhase, before.phase);
    // The next evaluation round judges a new evidence window: it does not act again on the same
    // breach (a paused migration is not judged: resumed, it is, on the window its resume opened).
    if (expected === 'pause') await act(real, s, 'resume');
    await real.world.f.engine.abortEvaluator.evaluateAll();
    assert.equal((await automatic()).length, seen + 1, `${this.which}: the same breach acted on twice`);
  }
  toString(): string {
    return `plantDivergence(${this.which})`;
  }
}

/** A fault of the whole system (not of one migration): SIGKILL of a process, FLUSHALL of Redis. */
class Fault extends Step {
  constructor(
    readonly name: string,
    readonly inject: (world: World) => Promise<void>,
  ) {
    super('trigger');
  }
  protected async act(_m: Model, real: Real): Promise<void> {
    await this.inject(real.world);
  }
  toString(): string {
    return `${this.name}()`;
  }
}

const which = fc.constantFrom<Which>('trigger', 'sdk');

/** The command arbitraries, weighted towards advancing so sequences get past write cutover. */
export function commandArbitraries(): fc.Arbitrary<fc.AsyncCommand<Model, Real>>[] {
  const progress = which.map((w) => new Progress(w));
  return [
    progress,
    progress,
    progress,
    progress,
    which.map((w) => new Action(w, 'advance')),
    which.map((w) => new Settle(w)),
    fc.tuple(which, fc.constantFrom('pause', 'resume', 'rollback', 'abort') as fc.Arbitrary<'pause' | 'resume' | 'rollback' | 'abort'>).map(([w, a]) => new Action(w, a)),
    fc.tuple(which, fc.constantFrom('pause', 'resume', 'rollback', 'abort') as fc.Arbitrary<'pause' | 'resume' | 'rollback' | 'abort'>).map(([w, a]) => new Action(w, a)),
    fc.tuple(which, fc.constantFrom<Record<string, unknown>>({ backfill: { concurrency: 1 } }, { backfill: { maxRowsPerSecond: 2000 } }, { backfill: { maxRowsPerSecond: null } }, { shadowRead: { samplePercent: 50 } }, { ramp: { holdSeconds: 2 } })).map(([w, p]) => new Patch(w, p)),
    which.map((w) => new PlantDivergence(w)),
    which.map((w) => new PlantDivergence(w)),
    fc.constant(new Fault('sigkillWorker', (w) => w.killWorker())),
    fc.constant(new Fault('flushallRedis', (w) => w.flushRedis())),
    fc.constant(new Fault('restartControlPlane', (w) => w.restartControlPlane())),
  ];
}

async function rows(real: Real, table: string, columns: string): Promise<Map<number, string>> {
  const r = await real.world.f.user.query<{ id: string; row: string }>(`select id::text, (${columns})::text as row from ${table} order by id`);
  return new Map(r.rows.map((x) => [Number(x.id), x.row]));
}

function expectedOld(acked: Map<number, OldRow | null>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [id, row] of [...acked.entries()].sort(([a], [b]) => a - b)) if (row) out.set(id, `(${row.v},${row.note})`);
  return out;
}

function diff(label: string, got: Map<number, string>, want: Map<number, string>): string[] {
  const out: string[] = [];
  for (const [id, w] of want) if (got.get(id) !== w) out.push(`${label} ${id}: want ${w}, got ${got.get(id) ?? 'nothing'}`);
  for (const [id, g] of got) if (!want.has(id)) out.push(`${label} ${id}: want nothing, got ${g}`);
  return out.slice(0, 10);
}

/**
 * The end of a sequence: stops both applications (the SDK drains its best-effort writes), then checks
 * the data of each migration until it holds or 20 s pass (re-drive and the reconciler run on their
 * rounds): old = every acknowledged write; new = mapping(old) once the backfill is complete.
 */
export async function checkEnd(model: Model, real: Real): Promise<void> {
  for (const w of BOTH) await real.subjects[w].writer.stop();
  await checkStep(model, real);
  for (const w of BOTH) {
    const s = real.subjects[w];
    // Once re-drive is empty: no failed write of either direction waits for its re-drive.
    await waitFor(`${w}: re-drive empty`, async () => {
      const r = await real.world.f.orch.query<{ n: number }>(
        `select count(*)::int as n from divergences where migration_id = $1 and kind in ('dual_write_failure', 'old_write_failure') and redriven_at is null`,
        [s.id],
      );
      return r.rows[0]?.n === 0 ? true : null;
    }, 20_000, 100);
    const problems = async (): Promise<string[]> => {
      const m = await real.world.f.engine.migrationReadModel.get(s.id);
      if (m?.phase === 'done') {
        // Old is archived; new holds every acknowledged write.
        const want = new Map([...expectedOld(s.writer.acked)].map(([id, row]) => [id, row.replace(/^\((-?\d+),/, (_, v: string) => `(${BigInt(v) * 2n},`)]));
        return diff('new', await rows(real, s.tables.target, 'v2, note'), want);
      }
      const old = await rows(real, s.tables.source, 'v, note');
      const out = diff('old', old, expectedOld(s.writer.acked));
      const synced = m && m.status !== 'aborted' && ['shadow_read', 'cutover', 'cleanup', 'done'].includes(m.phase);
      if (synced) {
        const mapped = new Map([...old].map(([id, row]) => [id, row.replace(/^\((-?\d+),/, (_, v: string) => `(${BigInt(v) * 2n},`)]));
        out.push(...diff('new', await rows(real, s.tables.target, 'v2, note'), mapped));
      }
      return out;
    };
    let last: string[] = [];
    await waitFor(`${w}: the data is exact`, async () => ((last = await problems()).length === 0 ? true : null), 5_000, 100).catch(async () => {
      const events = (await real.world.f.engine.migrationReadModel.allEvents(s.id)).map((e) => `${e.at.toISOString()} ${e.action} by ${e.actor}: ${e.fromPhase}/${e.fromStatus} → ${e.toPhase}/${e.toStatus}`);
      const ramp = (await real.world.f.orch.query(`select history, reverse_sync, write_cutover_at from ramps where migration_id = $1`, [s.id])).rows[0];
      const keys = last.map((l) => Number(/^\w+ (\d+):/.exec(l)?.[1])).filter((k) => Number.isFinite(k)).slice(0, 4);
      const histories = keys.map((k) => `key ${k}:\n  ${(s.writer.history.get(k) ?? []).slice(-6).join('\n  ')}`);
      const chunks = (await real.world.f.orch.query(`select lower_key, upper_key, status, rows_copied, started_at, finished_at from backfill_chunks where migration_id = $1 order by id`, [s.id])).rows.map((c) => JSON.stringify(c));
      throw new Error(
        `${w} (${s.id}, ${JSON.stringify(model.state[w])}) after ${real.log.join(', ')}:\n${last.join('\n')}\nevents:\n${events.join('\n')}\nramp: ${JSON.stringify(ramp)}\n${histories.join('\n')}\nchunks:\n${chunks.join('\n')}`,
      );
    });
  }
}

/** How far the sequences of a run got: what the end checks covered. */
export interface ModelStats {
  sequences: number;
  /** Migrations whose writes were cut over to new at some point. */
  writeCutover: number;
  /** Migrations rolled back or aborted after a write cutover. */
  backAfterWriteCutover: number;
  /** Migrations that reached done. */
  done: number;
  /** Automatic actions of the abort criteria. */
  automaticActions: number;
}

export function emptyStats(): ModelStats {
  return { sequences: 0, writeCutover: 0, backAfterWriteCutover: 0, done: 0, automaticActions: 0 };
}

/** Ends a sequence's migrations so the worker stops working on them, counting what it covered. */
export async function closeSequence(real: Real, stats?: ModelStats): Promise<void> {
  if (stats) stats.sequences++;
  for (const w of BOTH) {
    const s = real.subjects[w];
    const m = await real.world.f.engine.migrationReadModel.get(s.id).catch(() => undefined);
    real.log.push(`end ${w}: ${m?.phase}/${m?.status}, ${s.writer.writes} writes`);
    if (!stats) continue;
    const events = await real.world.f.engine.migrationReadModel.allEvents(s.id).catch(() => []);
    const cutAt = events.findIndex((e) => e.action === 'ramp.write_cutover');
    if (cutAt >= 0) stats.writeCutover++;
    if (cutAt >= 0 && events.slice(cutAt).some((e) => e.action === 'rollback' || e.action === 'abort')) stats.backAfterWriteCutover++;
    if (m?.phase === 'done') stats.done++;
    stats.automaticActions += events.filter((e) => e.actor === 'tideway:abort-criteria').length;
  }
  for (const w of BOTH) {
    const s = real.subjects[w];
    if (!s.writer.stopped) await s.writer.stop().catch(() => undefined);
    await real.world.api('POST', `/v1/migrations/${s.id}/abort`, {}).catch(() => undefined);
  }
}

/** Options of {@link runModel}. */
export interface ModelRunOptions {
  readonly runs: number;
  readonly seed?: number;
  /** Commands per sequence at most. @defaultValue 10 */
  readonly maxCommands?: number;
  /** Shrink a failing sequence to a minimal one (each try re-runs it on the real system). @defaultValue true */
  readonly shrink?: boolean;
  /** fast-check's replay path of a failure (with its seed): runs that sequence first. */
  readonly path?: string;
  readonly onSequence?: (n: number, log: readonly string[], ms: number, error?: unknown) => void;
  /** Filled with what the run covered. */
  readonly stats?: ModelStats;
}

/**
 * Runs `runs` random sequences against `world`. Resolves with fast-check's run details (failed,
 * seed, counterexample path, the shrunk sequence as text).
 */
export async function runModel(world: World, options: ModelRunOptions): Promise<fc.RunDetails<[Iterable<fc.AsyncCommand<Model, Real>>, StartPhase, StartPhase, number]>> {
  let n = 0;
  const phase = fc.constantFrom(...START_PHASES);
  const property = fc.asyncProperty(fc.commands(commandArbitraries(), { maxCommands: options.maxCommands ?? 10, size: 'max' }), phase, phase, fc.integer({ min: 1, max: 2 ** 30 }), async (cmds, triggerStart, sdkStart, writerSeed) => {
    const started = Date.now();
    const { model, real } = await openSequence(world, writerSeed);
    real.log.push(`from trigger: ${triggerStart}, sdk: ${sdkStart}`);
    let failure: unknown;
    try {
      await Promise.all([driveTo(model, real, real.subjects.trigger, triggerStart), driveTo(model, real, real.subjects.sdk, sdkStart)]);
      await fc.asyncModelRun(() => ({ model, real }), cmds);
      await checkEnd(model, real);
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      await closeSequence(real, options.stats);
      options.onSequence?.(++n, real.log, Date.now() - started, failure);
    }
  });
  return fc.check(property, { numRuns: options.runs, ...(options.seed === undefined ? {} : { seed: options.seed }), ...(options.path === undefined ? {} : { path: options.path }), endOnFailure: options.shrink === false });
}
