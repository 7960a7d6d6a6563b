/**
 * What went wrong, off the application's path, inside the SDK:
 * - `flags`: the `FlagReader` threw (the flag was treated as off: old path);
 * - `key`: `keyToString` threw or returned an empty string (old path, nothing recorded);
 * - `dual_write`: the best-effort side of a dual write failed or was skipped (too many pending);
 *   for the new side its key is queued for the next dual-write report;
 * - `shadow_read`: the background side of a read failed where no shadow result can say so (the old
 *   side, while `read-new` serves new);
 * - `compare`: `normalize` or `compare` threw (nothing recorded for that read);
 * - `send`: a POST to the control plane failed, timed out or was refused;
 * - `overflow`: the buffer is full: shadow results are being dropped (once per episode) or a
 *   dual-write failure was dropped (each time: that key will not be re-driven).
 *
 * @example
 * ```ts
 * const alerting = new Set<SdkErrorKind>(SDK_ERROR_KINDS.filter((k) => k !== 'send'));
 * ```
 */
export const SDK_ERROR_KINDS = ['flags', 'key', 'dual_write', 'shadow_read', 'compare', 'send', 'overflow'] as const;

/**
 * One of {@link SDK_ERROR_KINDS}.
 *
 * @example
 * ```ts
 * const kind: SdkErrorKind = 'overflow';
 * ```
 */
export type SdkErrorKind = (typeof SDK_ERROR_KINDS)[number];

/**
 * Passed to the `onError` option. The SDK never throws these into the application; `onError` is
 * where an application can log or count them. `onError` itself must not throw (if it does, the
 * SDK ignores it).
 *
 * @example
 * ```ts
 * const onError = (event: SdkErrorEvent) => console.warn(`tideway ${event.kind}`, event.key ?? '', event.error);
 * ```
 */
export interface SdkErrorEvent {
  readonly kind: SdkErrorKind;
  /** The underlying error (a `TidewayError` for control-plane answers and overflow). */
  readonly error: unknown;
  /** The key as text, when the event concerns one read or write. */
  readonly key?: string;
  /** For `dual_write`: which side failed (`'new'` normally, `'old'` under `write-new`). */
  readonly side?: 'old' | 'new';
}
