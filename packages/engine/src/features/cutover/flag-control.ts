/**
 * Admin control of feature flags, as the engine needs it. Implemented by `UnleashFlagControl` in
 * `@tideway/flags`. Every method is idempotent and throws `DependencyUnavailableError` when the
 * flag server cannot be reached, so the transition or timer behind it changes nothing and retries.
 */
export interface FlagControl {
  /** Creates the flags that are missing (release flags, one gradual rollout at 0 %, enabled). */
  ensureFlags(names: readonly string[]): Promise<void>;
  /** Sets the gradual-rollout percentage (0–100, sticky on the key). */
  setRollout(flag: string, percent: number): Promise<void>;
  enable(flag: string): Promise<void>;
  disable(flag: string): Promise<void>;
  archive(flag: string): Promise<void>;
}
