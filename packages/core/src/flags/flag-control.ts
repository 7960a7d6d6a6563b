/** What the control plane knows about one release flag in the flag server's environment. */
export interface FlagState {
  /** The flag name, e.g. `tideway.k3x9q2ma.orders-v2.read-new`. */
  readonly name: string;
  /** Whether the flag is switched on in the environment (off means off for every key). */
  readonly enabled: boolean;
  /**
   * Share of keys the gradual rollout turns on, percent (0–100, at most one decimal), or `null`
   * when the flag has no gradual-rollout strategy (it was not made by `ensureFlags`).
   */
  readonly rollout: number | null;
  /** The flag's description, `''` when it has none (Tideway's ownership marker lives there). */
  readonly description: string;
}

/** One flag as the project's flag list shows it (no rollout: the list does not carry strategies). */
export interface FlagSummary {
  readonly name: string;
  /** `''` when it has none. */
  readonly description: string;
  /** Switched on in the environment. */
  readonly enabled: boolean;
  readonly createdAt: Date;
}

/** Options of {@link FlagControl.ensureFlags}. */
export interface EnsureFlagsOptions {
  /**
   * Description of each flag, by name, once complete (e.g. with Tideway's ownership marker);
   * while it is being created the flag is described "provisioning" followed by this text.
   * @defaultValue a generic "Managed by Tideway" text
   */
  readonly descriptions?: Readonly<Record<string, string>>;
  /**
   * Whether a flag that holds the name although this call did not find it (an archived flag, or one
   * someone else created meanwhile) is the caller's to take over, given its description. An archived
   * flag it owns is deleted from the archive and created afresh; one it does not own is left alone
   * and `ensureFlags` throws `FlagConflictError` (`FLAG_CONFLICT`).
   * @defaultValue every such flag is taken over
   */
  readonly owns?: (description: string) => boolean | Promise<boolean>;
}

/**
 * The orchestrator's side of feature flags (the port; `FlagReader` is the application's): create a
 * migration's flags, move their rollouts, switch them, archive them. Implemented over Unleash's
 * admin API by `UnleashFlagControl` in `@tideway/flags`; the engine's flags reconciler drives it.
 *
 * Every method throws `DependencyUnavailableError('unleash', …)` when the flag server cannot be
 * reached, times out or answers 5xx (nothing was changed by that call; retry), and a `TidewayError`
 * with code `INTERNAL` when it rejects a request (4xx: unknown flag, bad token).
 *
 * @example
 * ```ts
 * import { flagNames } from '@tideway/core';
 * import type { FlagControl } from '@tideway/flags';
 *
 * async function startRamp(flags: FlagControl, installation: string, migration: string): Promise<void> {
 *   const names = flagNames(installation, migration);
 *   await flags.ensureFlags(Object.values(names));
 *   await flags.setRollout(names.readNew, 5);
 * }
 * ```
 */
export interface FlagControl {
  /**
   * Makes sure each flag exists as a release flag with one gradual rollout (sticky on the key,
   * `groupId` = flag name) that starts at 0 % with the environment switched on. Idempotent: an
   * existing flag keeps its rollout and on/off state.
   * @throws FlagConflictError when a name is held by a flag `owns` refuses.
   */
  ensureFlags(names: readonly string[], options?: EnsureFlagsOptions): Promise<void>;
  /** Sets the share of keys that get the flag, percent: 0–100, integer or one decimal. */
  setRollout(flag: string, percent: number): Promise<void>;
  /** The flag's current rollout, percent. */
  getRollout(flag: string): Promise<number>;
  /** Name, on/off, rollout and description of one flag. */
  getState(flag: string): Promise<FlagState>;
  /** Like {@link FlagControl.getState}, `null` when there is no such flag (an archived flag counts as none). */
  findState(flag: string): Promise<FlagState | null>;
  /** Every flag of the project (archived ones left out) whose name starts with `prefix`, in one request. */
  listFlags(prefix: string): Promise<FlagSummary[]>;
  /**
   * The description (`''` when none) of the archived flag that holds `name`, or `null` when no
   * archived flag holds it. One cheap request when none does; a search (rate-limited by Unleash)
   * only when one does.
   */
  archivedDescription(name: string): Promise<string | null>;
  /** Switches the flag on in the environment (the rollout decides for whom). */
  enable(flag: string): Promise<void>;
  /** Switches the flag off in the environment: off for every key, whatever the rollout. */
  disable(flag: string): Promise<void>;
  /** Archives the flag (cleanup). Archiving a flag that is gone or already archived does nothing. */
  archive(flag: string): Promise<void>;
}
