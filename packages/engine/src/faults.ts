/**
 * Crash points for fault tests: named places in the engine where a test can make the process die at
 * once (SIGKILL to itself), to prove that a crash between any two steps leaves nothing out of step
 * once the reconciler has run (shared/DESIGN.md §2).
 *
 * Point names are `<area>:<step>`, e.g. `transition:advance:after-converge`,
 * `transition:abort:before-commit`, `converge:datasource:after-create`. Production never sets them;
 * the apps read `TIDEWAY_FAULT_CRASH_AT` (a comma-separated list of point names, test-only).
 */
export interface Faults {
  /** Dies here when `name` is one of the configured points; otherwise does nothing. */
  crashPoint(name: string): void;
}

/** No crash points (the default). */
export const noFaults: Faults = { crashPoint: () => undefined };

/**
 * Crash points from a comma-separated list of names (`TIDEWAY_FAULT_CRASH_AT`); `null` or empty for none.
 * A matching point writes `tideway: crash point <name>` to stderr and sends SIGKILL to this process.
 *
 * @example
 * ```ts
 * const faults = crashFaults('transition:advance:before-commit');
 * faults.crashPoint('transition:pause:before-commit'); // nothing
 * ```
 */
export function crashFaults(points: string | null | undefined): Faults {
  const wanted = new Set((points ?? '').split(',').map((p) => p.trim()).filter(Boolean));
  if (wanted.size === 0) return noFaults;
  return {
    crashPoint(name) {
      if (!wanted.has(name)) return;
      process.stderr.write(`tideway: crash point ${name}\n`);
      process.kill(process.pid, 'SIGKILL');
    },
  };
}
