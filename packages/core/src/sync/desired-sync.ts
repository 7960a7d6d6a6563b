import type { Phase, Status } from '../machine/phases.js';
import type { SyncMode } from '../spec/spec-schema.js';

/** What the desired trigger sync of a migration depends on. */
export interface SyncState {
  readonly phase: Phase;
  readonly status: Status;
  readonly syncMode: SyncMode;
  /** Whether a write cutover reversed the sync (the ramp's `reverse_sync`). */
  readonly reverseSync: boolean;
  /** Whether the spec has a way back (a reverse mapping; `rollbackAfterWriteCutover` not false). @defaultValue true */
  readonly wayBack?: boolean;
  /** The ramp's `reverse_until`: a rollback or abort turned `write-new` off, and the reverse sync stays until then. */
  readonly reverseUntil?: Date | null;
  /** Now, to compare with `reverseUntil`. @defaultValue the current time */
  readonly now?: Date;
}

/** Which directions of trigger sync a migration's state wants installed. */
export interface DesiredSync {
  /** Source → target: from dual_write until cleanup is executed. */
  readonly forward: boolean;
  /** Target → source: throughout cutover, and after a write cutover while old may become authoritative again (shadow_read, cleanup). */
  readonly reverse: boolean;
}

const FORWARD_PHASES: readonly Phase[] = ['dual_write', 'backfill', 'shadow_read', 'cutover', 'cleanup'];
const REVERSE_PHASES: readonly Phase[] = ['shadow_read', 'cutover', 'cleanup'];

/**
 * The trigger sync a migration's state implies (the desired state that the datasource reconciler
 * converges, shared/DESIGN.md §2). Nothing for application sync, for draft, prepare and done, and
 * for aborted or completed migrations (abort unwinds everything; cleanup removed the sync).
 * Paused and failed migrations keep their sync: the application keeps writing.
 *
 * The reverse direction is installed with cutover (when the spec has a way back), before any
 * instance may write new: it does nothing until the write cutover, and a write cutover that did
 * not commit (a crash between its flag change and its commit) is undone by turning `write-new` back
 * off while the reverse sync still carries every write an instance made on new meanwhile — were it
 * installed by the write cutover, undoing it would remove the reverse sync first. It stays when a
 * rollback leaves cutover for shadow_read after a write cutover (instances that still write new must
 * reach old while they switch back, ADR 004) and goes when the migration is rolled back further or
 * aborted — but never before `reverseUntil`: a rollback or abort that turned `write-new` off keeps
 * it (even aborted) until the flag change has reached every instance.
 *
 * @example
 * ```ts
 * desiredSync({ phase: 'backfill', status: 'paused', syncMode: 'trigger', reverseSync: false }); // { forward: true, reverse: false }
 * ```
 */
export function desiredSync(state: SyncState): DesiredSync {
  if (state.syncMode !== 'trigger') return { forward: false, reverse: false };
  const wayBack = state.wayBack ?? true;
  const grace = wayBack && state.reverseUntil != null && state.reverseUntil.getTime() > (state.now ?? new Date()).getTime();
  if (state.status === 'aborted' || state.status === 'completed') return { forward: false, reverse: grace };
  return {
    forward: FORWARD_PHASES.includes(state.phase),
    reverse: grace || (wayBack && (state.phase === 'cutover' || (state.reverseSync && REVERSE_PHASES.includes(state.phase)))),
  };
}
