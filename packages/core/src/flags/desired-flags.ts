import { assertNever } from '../assert-never.js';
import type { Phase, Status } from '../machine/phases.js';
import type { SyncMode } from '../spec/spec-schema.js';

/**
 * The four flags of a migration, by purpose. The SDK reads them; the control plane and the workers
 * converge them with the migration's state (docs/adr/008-flags-as-desired-state.md).
 */
export const FLAG_PURPOSES = ['dual-write', 'shadow-read', 'read-new', 'write-new'] as const;
/** One of {@link FLAG_PURPOSES}: the last part of a flag's name. */
export type FlagPurpose = (typeof FLAG_PURPOSES)[number];

/** The flag names of one migration, by purpose. */
export interface FlagNames {
  /** `tideway.<installation>.<migration>.dual-write`: the SDK writes new best-effort after old. */
  readonly dualWrite: string;
  /** `….shadow-read`: the SDK reads new in the background and compares. */
  readonly shadowRead: string;
  /** `….read-new`: the SDK serves reads from new. */
  readonly readNew: string;
  /** `….write-new`: new is the authoritative write side, old the best-effort one. */
  readonly writeNew: string;
}

/** The keys of {@link FlagNames} in the order the flags are created and listed. */
export const FLAG_KEYS = ['dualWrite', 'shadowRead', 'readNew', 'writeNew'] as const satisfies readonly (keyof FlagNames)[];
/** One of {@link FLAG_KEYS}: a key of {@link FlagNames} and {@link DesiredFlags}. */
export type FlagKey = (typeof FLAG_KEYS)[number];

/** Longest flag name Unleash accepts (its `nameType`: URL-friendly, 1–100 characters). */
export const MAX_FLAG_NAME_LENGTH = 100;

/**
 * Feature-flag names of a migration: `tideway.<installation>.<migration name>.<purpose>`. The
 * installation id (1–16 lower-case letters and digits, `TIDEWAY_INSTALLATION` or the orchestrator
 * database's own) keeps two orchestrators that share a flag server apart; a migration name (a slug of
 * at most 63 characters) is unique within an installation, so the longest name is exactly
 * {@link MAX_FLAG_NAME_LENGTH} characters.
 *
 * @example
 * ```ts
 * flagNames('k3x9q2ma', 'orders-v2').readNew; // 'tideway.k3x9q2ma.orders-v2.read-new'
 * ```
 */
export function flagNames(installation: string, migrationName: string): FlagNames {
  const base = `${flagPrefix(installation)}${migrationName}`;
  return { dualWrite: `${base}.dual-write`, shadowRead: `${base}.shadow-read`, readNew: `${base}.read-new`, writeNew: `${base}.write-new` };
}

/** The prefix every flag of an installation starts with: `tideway.<installation>.`. */
export function flagPrefix(installation: string): string {
  return `tideway.${installation}.`;
}

/** Who created a flag: the installation and the migration it belongs to. */
export interface FlagOwner {
  readonly installation: string;
  /** The migration's id (a UUID). */
  readonly migrationId: string;
}

const OWNER_PATTERN = /\[tideway-owner ([a-z0-9]{1,16})\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]/;

/**
 * The ownership marker Tideway writes into the description of every flag it creates:
 * `[tideway-owner <installation>/<migration id>]`. Tideway changes only flags whose description
 * carries its installation's marker.
 *
 * @example
 * ```ts
 * flagOwnerMarker({ installation: 'k3x9q2ma', migrationId: '0b6f…' }); // '[tideway-owner k3x9q2ma/0b6f…]'
 * ```
 */
export function flagOwnerMarker(owner: FlagOwner): string {
  return `[tideway-owner ${owner.installation}/${owner.migrationId}]`;
}

/** The owner named by a flag's description, or `null` when it carries no Tideway marker (a flag Tideway did not create). */
export function flagOwnerOf(description: string | null | undefined): FlagOwner | null {
  const m = OWNER_PATTERN.exec(description ?? '');
  return m ? { installation: m[1] as string, migrationId: m[2] as string } : null;
}

/**
 * The description of a flag Tideway created and completed: what it is for, how to change it, and
 * the ownership marker. @example `flagDescription(owner, 'read-new')`
 */
export function flagDescription(owner: FlagOwner, purpose: FlagPurpose): string {
  return `Managed by Tideway (${purpose} of a migration): its rollout follows the migration's state; change it through Tideway, which reverts changes made here. ${flagOwnerMarker(owner)}`;
}

/** What one flag should be: on with a gradual rollout (percent, 0–100), or archived. */
export type DesiredFlag = { readonly state: 'active'; readonly rollout: number } | { readonly state: 'archived' };

/** The desired state of a migration's four flags. */
export type DesiredFlags = { readonly [K in FlagKey]: DesiredFlag };

/** Ramp statuses inside the cutover phase (the `ramps` row). */
export type RampStatus = 'holding' | 'awaiting_approval' | 'write_cutover' | 'rolled_back';

/** What the desired flags are derived from: the migration's state and its ramp row. */
export interface FlagStateInput {
  readonly phase: Phase;
  readonly status: Status;
  readonly syncMode: SyncMode;
  /** `spec.shadowRead.samplePercent`. */
  readonly samplePercent: number;
  /** The ramp row (cutover and after), or `null` before the migration ever entered cutover. */
  readonly ramp: { readonly percent: number; readonly status: RampStatus } | null;
}

const on = (rollout: number): DesiredFlag => ({ state: 'active', rollout });
const ARCHIVED: DesiredFlag = { state: 'archived' };

/**
 * The flags a migration's state implies (pure; the flags reconciler makes Unleash match it):
 *
 * | phase | dual-write | shadow-read | read-new | write-new |
 * | --- | --- | --- | --- | --- |
 * | draft, prepare | 0 | 0 | 0 | 0 |
 * | dual_write, backfill | 100 in application mode, else 0 | 0 | 0 | 0 |
 * | shadow_read | as above | `samplePercent` | 0 | 0 |
 * | cutover | as above | `samplePercent` | the ramp's percent (0 once rolled back) | 100 after write cutover, else 0 |
 * | cleanup | as above | 0 | as in cutover (100) | as in cutover (100) |
 *
 * Status `paused` and `failed` change nothing (a pause freezes, it does not undo); `aborted` and
 * `completed` archive all four (the SDK then takes the old path for every key: archived flags are
 * off). In trigger mode the trigger syncs, so `dual-write` stays 0 (a second write from the
 * application would only repeat it). Every flag that is not archived exists, switched on, with its
 * gradual rollout at the given percent.
 *
 * @example
 * ```ts
 * desiredFlags({ phase: 'shadow_read', status: 'active', syncMode: 'application', samplePercent: 10, ramp: null });
 * // { dualWrite: { state: 'active', rollout: 100 }, shadowRead: { state: 'active', rollout: 10 }, readNew: …0, writeNew: …0 }
 * ```
 */
export function desiredFlags(input: FlagStateInput): DesiredFlags {
  if (input.status === 'aborted' || input.status === 'completed') {
    return { dualWrite: ARCHIVED, shadowRead: ARCHIVED, readNew: ARCHIVED, writeNew: ARCHIVED };
  }
  const dualWrite = on(input.syncMode === 'application' ? 100 : 0);
  const ramp = input.ramp;
  const readNew = on(ramp && ramp.status !== 'rolled_back' ? ramp.percent : 0);
  const writeNew = on(ramp?.status === 'write_cutover' ? 100 : 0);
  switch (input.phase) {
    case 'draft':
    case 'prepare':
      return { dualWrite: on(0), shadowRead: on(0), readNew: on(0), writeNew: on(0) };
    case 'dual_write':
    case 'backfill':
      return { dualWrite, shadowRead: on(0), readNew: on(0), writeNew: on(0) };
    case 'shadow_read':
      return { dualWrite, shadowRead: on(input.samplePercent), readNew: on(0), writeNew: on(0) };
    case 'cutover':
      return { dualWrite, shadowRead: on(input.samplePercent), readNew, writeNew };
    case 'cleanup':
      return { dualWrite, shadowRead: on(0), readNew, writeNew };
    case 'done':
      // `done` is always `completed` (handled above); archived all the same.
      return { dualWrite: ARCHIVED, shadowRead: ARCHIVED, readNew: ARCHIVED, writeNew: ARCHIVED };
    default:
      return assertNever(input.phase);
  }
}

/** Whether two desired flag states are the same. */
export function sameDesiredFlag(a: DesiredFlag | null | undefined, b: DesiredFlag | null | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.state === 'archived' || b.state === 'archived') return a.state === b.state;
  return a.rollout === b.rollout;
}
