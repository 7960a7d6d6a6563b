/** What the control plane knows about one release flag in the flag server's environment. */
export interface FlagState {
  /** The flag name, e.g. `tideway.orders-v2.read-new`. */
  readonly name: string;
  /** Whether the flag is switched on in the environment (off means off for every key). */
  readonly enabled: boolean;
  /**
   * Share of keys the gradual rollout turns on, percent (0–100, at most one decimal), or `null`
   * when the flag has no gradual-rollout strategy (it was not made by `ensureFlags`).
   */
  readonly rollout: number | null;
}

/**
 * The orchestrator's side of feature flags: create a migration's flags, move their ramp steps,
 * switch them off and archive them at cleanup. Implemented over Unleash's admin API by
 * `UnleashFlagControl`.
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
 * async function startRamp(flags: FlagControl, migration: string): Promise<void> {
 *   const names = flagNames(migration);
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
   */
  ensureFlags(names: readonly string[]): Promise<void>;
  /** Sets the share of keys that get the flag, percent: 0–100, integer or one decimal. */
  setRollout(flag: string, percent: number): Promise<void>;
  /** The flag's current rollout, percent. */
  getRollout(flag: string): Promise<number>;
  /** Name, on/off and rollout of one flag. */
  getState(flag: string): Promise<FlagState>;
  /** Switches the flag on in the environment (the rollout decides for whom). */
  enable(flag: string): Promise<void>;
  /** Switches the flag off in the environment: off for every key, whatever the rollout. */
  disable(flag: string): Promise<void>;
  /** Archives the flag (cleanup). Archiving a flag that is gone or already archived does nothing. */
  archive(flag: string): Promise<void>;
}
