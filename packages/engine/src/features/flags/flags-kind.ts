import {
  FLAG_KEYS,
  FlagConflictError,
  desiredFlags,
  flagDescription,
  flagNames,
  flagOwnerOf,
  flagPrefix,
  sameDesiredFlag,
  type DesiredFlag,
  type DesiredFlags,
  type FlagControl,
  type FlagKey,
  type FlagPurpose,
  type FlagState,
  type FlagSummary,
} from '@tideway/core';
import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';
import type { ConvergeChange, ConvergeTarget, DesiredStateKind } from '../desired-state/desired-state.js';
import type { Installation } from '../installation/installation.js';
import type { Migration } from '../migrations/migration.js';

/** A flag of this installation whose migration is not in the orchestrator database is archived once it is this old, seconds (a migration being created commits within it). @defaultValue 60 */
export const ORPHAN_FLAG_GRACE_SECONDS = 60;

const PURPOSE: Readonly<Record<FlagKey, FlagPurpose>> = { dualWrite: 'dual-write', shadowRead: 'shadow-read', readNew: 'read-new', writeNew: 'write-new' };
/** Order of the changes that take keys away from new (reads before writes), then of those that give keys to new (writes before reads). */
const LOWERING: readonly FlagKey[] = ['readNew', 'writeNew', 'shadowRead', 'dualWrite'];
const RAISING: readonly FlagKey[] = ['dualWrite', 'shadowRead', 'readNew', 'writeNew'];
const PROVISIONING = 'Tideway: provisioning';

/** Dependencies of {@link FlagsKind}. */
export interface FlagsKindDeps {
  /** The orchestrator database itself (not a transaction): intents are committed on their own. */
  readonly db: Kysely<Database>;
  readonly flags: FlagControl;
  readonly installation: Installation;
  /** See {@link ORPHAN_FLAG_GRACE_SECONDS}. @defaultValue 60 */
  readonly orphanGraceSeconds?: number;
}

/**
 * The `flags` kind of the desired-state reconciler (shared/DESIGN.md §2, ADR 008): a migration's
 * four flags on the flag server follow {@link desiredFlags} of its state (phase, status, sync mode,
 * sample percent, ramp row). Transitions, PATCH, ramp steps and approvals change Tideway's own rows
 * and call the converge in their transaction; nothing else writes flags.
 *
 * - **Names and ownership.** Flags are named `tideway.<installation>.<migration>.<purpose>` and
 *   described with the marker `[tideway-owner <installation>/<migration id>]`. A flag of the name that
 *   lacks the marker, or names another installation or another existing migration, is never changed:
 *   the converge throws `FlagConflictError` (409 at create, nothing created). A flag of this
 *   installation whose migration does not exist (left by a create that crashed) is archived and
 *   created afresh.
 * - **Last applied.** `flag_states` records the desired states last converged. Inside a transaction a
 *   flag whose desired state equals that record is not looked at (no request: a pause works while the
 *   flag server is down); the others are read, checked and changed. The periodic pass (`verify`)
 *   reads all four.
 * - **Intents.** The caller committed a converge intent before its transaction opened (transition,
 *   PATCH, ramp step: `DesiredStateReconciler.intend`); one left behind by a crash or a failure
 *   between changing a flag and committing makes the next periodic pass converge that migration.
 * - **Cheap observation.** {@link observe} lists every flag of the installation with one request per
 *   pass and reports migrations whose flags are missing, switched off or not archived when they
 *   should be; rollouts are not in that list, so rollout drift made by hand is
 *   found by the pass's periodic drift check (every `DRIFT_CHECK_SECONDS`).
 *
 * Changes are made in an order that never gives new more keys than the target state: first those
 * taking keys away (read-new, write-new, shadow-read, dual-write), then those giving keys (in the
 * reverse order); a flag is created at 0 % and switched on before its rollout is raised.
 *
 * @example
 * ```ts
 * // createEngine registers it when a flag server is configured:
 * desiredState.register(new FlagsKind({ db, flags: new UnleashFlagControl(settings), installation }));
 * ```
 */
export class FlagsKind implements DesiredStateKind {
  readonly name = 'flags';
  /** The list taken by the latest {@link observe}, reused by the orphan sweep of the same pass. */
  #listed: { readonly at: number; readonly flags: readonly FlagSummary[] } | null = null;

  constructor(private readonly deps: FlagsKindDeps) {}

  get #graceSeconds(): number {
    return this.deps.orphanGraceSeconds ?? ORPHAN_FLAG_GRACE_SECONDS;
  }

  /** The desired flag states of a migration as it is in `db` (its ramp row is read through it). */
  async desired(db: Kysely<Database>, migration: Migration): Promise<DesiredFlags> {
    const ramp = await db.selectFrom('ramps').select(['percent', 'status']).where('migration_id', '=', migration.id).executeTakeFirst();
    return desiredFlags({
      phase: migration.phase,
      status: migration.status,
      syncMode: migration.spec.syncMode,
      samplePercent: migration.spec.shadowRead.samplePercent,
      ramp: ramp ? { percent: ramp.percent, status: ramp.status } : null,
    });
  }

  /**
   * {@inheritDoc DesiredStateKind.converge}
   * @throws FlagConflictError when a flag to change was not created by Tideway for this migration.
   * @throws DependencyUnavailableError when the flag server cannot be reached (nothing after the
   *   first failed request was done; the intent left behind brings the periodic pass back to it).
   */
  async converge(target: ConvergeTarget): Promise<ConvergeChange[]> {
    const { migration, db } = target;
    const desired = await this.desired(db, migration);
    const row = await db.selectFrom('flag_states').select('applied').where('migration_id', '=', migration.id).executeTakeFirst();
    const applied = (row?.applied ?? null) as DesiredFlags | null;
    const keys = FLAG_KEYS.filter((k) => target.verify === true || !applied || !sameDesiredFlag(applied[k], desired[k]));
    if (keys.length === 0) return [];

    const installation = await this.deps.installation.id();
    const names = flagNames(installation, migration.name);
    const { flags } = this.deps;

    // Look first, change after: a clash anywhere means nothing is changed.
    const seen = new Map<FlagKey, FlagState | null>();
    for (const k of keys) seen.set(k, await flags.findState(names[k]));
    const adopt = new Set<FlagKey>();
    for (const k of keys) {
      const state = seen.get(k);
      if (!state) continue;
      const verdict = await this.#ownership(db, state.description, installation, migration.id);
      if (verdict === 'foreign') throw new FlagConflictError(names[k], flagOwnerOf(state.description));
      if (verdict === 'orphan') adopt.add(k);
    }
    // A flag to create whose name an archived flag holds: the archive is asked too (one request per flag to create).
    for (const k of keys) {
      if (seen.get(k) || desired[k].state !== 'active') continue;
      const held = await flags.archivedDescription(names[k]);
      if (held !== null && (await this.#ownership(db, held, installation, migration.id)) === 'foreign') throw new FlagConflictError(names[k], flagOwnerOf(held), true);
    }

    const lowering = (k: FlagKey) => isLowering(seen.get(k) ?? null, desired[k]);
    const order = [...LOWERING.filter((k) => keys.includes(k) && lowering(k)), ...RAISING.filter((k) => keys.includes(k) && !lowering(k))];
    if (adopt.size === 0 && order.every((k) => inStep(seen.get(k) ?? null, desired[k]))) {
      await this.#record(db, migration.id, desired);
      return [];
    }
    const changes: ConvergeChange[] = [];
    const change = (action: ConvergeChange['action'], k: FlagKey, detail: string) => changes.push({ kind: this.name, action, object: `flag ${names[k]}`, detail });
    const owns = (description: string) => this.#ownership(db, description, installation, migration.id).then((v) => v !== 'foreign');
    const ensure = async (k: FlagKey) => {
      await flags.ensureFlags([names[k]], { descriptions: { [names[k]]: flagDescription({ installation, migrationId: migration.id }, PURPOSE[k]) }, owns });
    };

    for (const k of adopt) {
      // An orphan of a create that crashed: archived, then made afresh below (never revived with its old rollout).
      await flags.archive(names[k]);
      seen.set(k, null);
      change('removed', k, 'archived: left by a migration that does not exist');
    }
    for (const k of order) {
      const want = desired[k];
      const state = seen.get(k) ?? null;
      if (want.state === 'archived') {
        if (state) {
          await flags.archive(names[k]);
          change('removed', k, 'archived');
        }
        continue;
      }
      if (!state || state.rollout === null || state.description.startsWith(PROVISIONING)) {
        await ensure(k);
        const made = !state;
        if (want.rollout !== 0) await flags.setRollout(names[k], want.rollout);
        // ensureFlags switches on the flags it creates or finishes, not one that only lacked its rollout.
        if (state && !state.enabled && !state.description.startsWith(PROVISIONING)) await flags.enable(names[k]);
        change(made ? 'created' : 'updated', k, made ? `rollout ${want.rollout} %` : `completed, rollout ${want.rollout} %`);
        continue;
      }
      if (state.rollout !== want.rollout) {
        await flags.setRollout(names[k], want.rollout);
        change('updated', k, `rollout ${state.rollout} → ${want.rollout} %`);
      }
      if (!state.enabled) {
        await flags.enable(names[k]);
        change('updated', k, 'switched on (it was off)');
      }
    }

    await this.#record(db, migration.id, desired);
    return changes;
  }

  /** Records `desired` as applied (inside the converging transaction). */
  async #record(db: Kysely<Database>, migrationId: string, desired: DesiredFlags): Promise<void> {
    await db
      .insertInto('flag_states')
      .values({ migration_id: migrationId, applied: JSON.stringify(desired) })
      .onConflict((oc) => oc.column('migration_id').doUpdateSet({ applied: JSON.stringify(desired), updated_at: sql`now()` }))
      .execute();
  }

  /**
   * {@inheritDoc DesiredStateKind.observe}
   * One list request (`listFlags('tideway.<installation>.')`) and one orchestrator query.
   */
  async observe(): Promise<ReadonlySet<string>> {
    const installation = await this.deps.installation.id();
    const { db } = this.deps;
    const out = new Set<string>();
    const listed = await this.deps.flags.listFlags(flagPrefix(installation));
    this.#listed = { at: Date.now(), flags: listed };
    const owned = new Map<string, Map<string, FlagSummary>>();
    for (const flag of listed) {
      const owner = flagOwnerOf(flag.description);
      if (owner?.installation !== installation) continue;
      const of = owned.get(owner.migrationId) ?? new Map<string, FlagSummary>();
      of.set(flag.name, flag);
      owned.set(owner.migrationId, of);
    }
    const rows = await db
      .selectFrom('migrations as m')
      .leftJoin('ramps as r', 'r.migration_id', 'm.id')
      .select(['m.id', 'm.name', 'm.phase', 'm.status', 'm.spec', 'r.percent', 'r.status as ramp_status'])
      .where((eb) => eb.or([eb('m.status', 'not in', ['aborted', 'completed']), ...(owned.size > 0 ? [eb('m.id', 'in', [...owned.keys()])] : [])]))
      .execute();
    for (const r of rows) {
      const spec = r.spec as Migration['spec'];
      const desired = desiredFlags({
        phase: r.phase as Migration['phase'],
        status: r.status as Migration['status'],
        syncMode: spec.syncMode,
        samplePercent: spec.shadowRead.samplePercent,
        ramp: r.ramp_status ? { percent: r.percent ?? 0, status: r.ramp_status } : null,
      });
      const names = flagNames(installation, r.name);
      const mine = owned.get(r.id);
      const inStep = FLAG_KEYS.every((k) => {
        const flag = mine?.get(names[k]);
        return desired[k].state === 'archived' ? !flag : flag?.enabled === true;
      });
      if (!inStep) out.add(r.id);
    }
    return out;
  }

  /**
   * {@inheritDoc DesiredStateKind.sweepOrphans}
   * Archives flags of this installation (by name prefix and marker) whose migration is not in
   * `known` and that are older than {@link ORPHAN_FLAG_GRACE_SECONDS}. Uses the list of this pass's
   * {@link observe} when it is at most 10 s old.
   */
  async sweepOrphans(known: ReadonlySet<string>): Promise<ConvergeChange[]> {
    const installation = await this.deps.installation.id();
    const listed = this.#listed && Date.now() - this.#listed.at < 10_000 ? this.#listed.flags : await this.deps.flags.listFlags(flagPrefix(installation));
    const changes: ConvergeChange[] = [];
    const before = Date.now() - this.#graceSeconds * 1000;
    for (const flag of listed) {
      const owner = flagOwnerOf(flag.description);
      if (owner?.installation !== installation || known.has(owner.migrationId) || flag.createdAt.getTime() > before) continue;
      await this.deps.flags.archive(flag.name);
      changes.push({ kind: this.name, action: 'removed', object: `flag ${flag.name}`, detail: `archived: its migration ${owner.migrationId} is not in the orchestrator database` });
    }
    return changes;
  }

  /** `mine`: this migration's; `orphan`: this installation's, for a migration that does not exist; `foreign`: anything else. */
  async #ownership(db: Kysely<Database>, description: string, installation: string, migrationId: string): Promise<'mine' | 'orphan' | 'foreign'> {
    const owner = flagOwnerOf(description);
    if (owner?.installation !== installation) return 'foreign';
    if (owner.migrationId === migrationId) return 'mine';
    const exists = await db.selectFrom('migrations').select('id').where('id', '=', owner.migrationId).executeTakeFirst();
    return exists ? 'foreign' : 'orphan';
  }
}

/** Whether a flag as read already is what is wanted (a finished flag, switched on, at the rollout; or gone when archived). */
function inStep(state: FlagState | null, want: DesiredFlag): boolean {
  if (want.state === 'archived') return state === null;
  return state !== null && state.enabled && state.rollout === want.rollout && !state.description.startsWith(PROVISIONING);
}

/** Whether going from `state` to `want` takes keys away from new (archiving, or a lower rollout). */
function isLowering(state: FlagState | null, want: DesiredFlag): boolean {
  if (want.state === 'archived') return true;
  return state !== null && state.rollout !== null && want.rollout < state.rollout;
}
