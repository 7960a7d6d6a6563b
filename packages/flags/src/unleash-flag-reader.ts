import type { EventEmitter } from 'node:events';
import { TidewayError, type FlagReader } from '@tideway/core';
import { InMemStorageProvider, Unleash, UnleashEvents } from 'unleash-client';

/** How `UnleashFlagReader` reaches Unleash's client API. */
export interface UnleashFlagReaderOptions {
  /** Base URL of the Unleash server, e.g. `http://127.0.0.1:4242` (no `/api`). */
  readonly url: string;
  /** A backend (client) token for the environment, e.g. `default:development.<secret>`. */
  readonly clientToken: string;
  /** Name this application reports to Unleash; also names the disk backup file. */
  readonly appName: string;
  /** How often to fetch flag definitions, milliseconds. @defaultValue 1000 */
  readonly refreshIntervalMs?: number;
  /**
   * Timeout of one attempt to fetch definitions, milliseconds, at least 1000 (unleash-client's retry
   * back-off starts at 1 s and it fails every fetch when this is lower). A fetch makes up to three
   * attempts, so against a hung server one fetch takes about 3 × this plus 3 s.
   * @defaultValue 3000
   */
  readonly requestTimeoutMs?: number;
  /** How long `start()` waits for the first definitions before giving up quietly, milliseconds. @defaultValue 5000 */
  readonly startTimeoutMs?: number;
  /**
   * Directory for a disk backup of the last definitions (file `unleash-backup-<appName>.json`),
   * e.g. `os.tmpdir()`. With it, a process that starts while Unleash is down serves the definitions
   * an earlier process saved; without it (the default) the backup is in memory only, so a fresh
   * process with Unleash down answers `false` (the old path) until it first synchronises.
   * @defaultValue undefined (in memory)
   */
  readonly backupDirectory?: string;
  /** Send usage metrics (which flags were asked, how often) to Unleash. @defaultValue false */
  readonly sendMetrics?: boolean;
  /**
   * Told about every failed fetch (unreachable server, bad token, …) and unleash-client's warning
   * about more than 10 live instances in one process; the reader keeps serving.
   */
  readonly onError?: (error: Error) => void;
}

/**
 * {@link FlagReader} over unleash-client: evaluates flags locally from definitions it polls every
 * `refreshIntervalMs`.
 *
 * - Stickiness: the key is passed as both `userId` and `sessionId`. A `flexibleRollout` strategy with
 *   stickiness `default` hashes `<groupId>:<userId || sessionId>` with murmur3 into 100 buckets and
 *   turns on buckets 1…rollout, so a key keeps its answer and a key that is on at 25 % stays on at 50 %.
 *   An empty key would fall back to a random number in unleash-client, so it is always `false`.
 * - Failure: `isEnabled` never throws. When a fetch fails, unleash-client keeps the definitions it
 *   has in memory and tries again after `refreshIntervalMs` (backing off up to 10× that while Unleash
 *   answers 404/429/5xx), so the reader serves the last known state;
 *   before any definitions arrived (and without a disk backup) every flag is `false`, the old path.
 *   A 401/403 answer makes unleash-client stop polling (reported through `onError`).
 *
 * @example
 * ```ts
 * import { UnleashFlagReader } from '@tideway/flags';
 *
 * const reader = new UnleashFlagReader({ url: 'http://127.0.0.1:4242', clientToken: 'default:development.secret', appName: 'orders-api' });
 * await reader.start();
 * const readNew = reader.isEnabled('tideway.orders-v2.read-new', { key: '42' });
 * reader.close();
 * ```
 */
export class UnleashFlagReader implements FlagReader {
  readonly #unleash: Unleash;
  readonly #startTimeoutMs: number;
  #starting: Promise<void> | undefined;
  #stopWaiting: (() => void) | undefined;
  #closed = false;

  /** @throws TidewayError `VALIDATION_FAILED` when `refreshIntervalMs` is not positive or `requestTimeoutMs` is below 1000. */
  constructor(options: UnleashFlagReaderOptions) {
    const onError = options.onError;
    const refreshIntervalMs = options.refreshIntervalMs ?? 1000;
    const requestTimeoutMs = options.requestTimeoutMs ?? 3000;
    if (!(refreshIntervalMs > 0)) throw new TidewayError('VALIDATION_FAILED', `refreshIntervalMs must be positive, got ${refreshIntervalMs}`, { field: 'refreshIntervalMs' });
    if (!(requestTimeoutMs >= 1000)) throw new TidewayError('VALIDATION_FAILED', `requestTimeoutMs must be at least 1000, got ${requestTimeoutMs}`, { field: 'requestTimeoutMs' });
    this.#startTimeoutMs = options.startTimeoutMs ?? 5000;
    this.#unleash = new Unleash({
      url: `${options.url.replace(/\/+$/, '')}/api`,
      appName: options.appName,
      customHeaders: { Authorization: options.clientToken },
      refreshInterval: refreshIntervalMs,
      timeout: requestTimeoutMs,
      disableMetrics: options.sendMetrics !== true,
      disableAutoStart: true,
      ...(options.backupDirectory === undefined ? { storageProvider: new InMemStorageProvider() } : { backupPath: options.backupDirectory }),
    });
    // Our listener also stops unleash-client from printing errors to the console itself.
    this.#unleash.on(UnleashEvents.Error, (error: unknown) => {
      try {
        onError?.(error instanceof Error ? error : new Error(String(error)));
      } catch {
        // A failing reporter must not break flag evaluation.
      }
    });
  }

  /**
   * Fetches the definitions and starts polling. Resolves when the first fetch is done (synchronised,
   * or failed: the reader then keeps retrying in the background) or after `startTimeoutMs`; never
   * throws. Idempotent. Until it was called every flag is `false`.
   */
  start(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#starting ??= new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.#startTimeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#stopWaiting = done;
      // unleash-client sets its ready flag (which isEnabled needs) on a process.nextTick after saving
      // definitions, and its start() can settle before that tick: `synchronized` comes after it, and
      // setImmediate waits it out when the first fetch failed but a disk backup was loaded.
      this.#unleash.once(UnleashEvents.Synchronized, done);
      const afterTicks = () => setImmediate(done);
      this.#unleash.start().then(afterTicks, afterTicks);
    });
    return this.#starting;
  }

  /** Whether the reader has received definitions from the server at least once. */
  get synchronized(): boolean {
    return this.#unleash.isSynchronized();
  }

  /**
   * Whether `flag` is on for `context.key`. Never throws: an unknown flag, an empty key, a closed
   * reader or any evaluation error is `false`.
   */
  isEnabled(flag: string, context: { key: string }): boolean {
    if (this.#closed || context.key === '') return false;
    try {
      return this.#unleash.isEnabled(flag, { userId: context.key, sessionId: context.key }, false) === true;
    } catch {
      return false;
    }
  }

  /** Stops polling. Afterwards every flag is `false`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopWaiting?.();
    this.#unleash.destroy();
    // unleash-client 6.12 bug: destroy() removes every listener of its repository, so a fetch still in
    // flight that then fails emits 'error' with no listener, which throws inside the fetch and surfaces
    // as an unhandled rejection (fatal in Node by default). Give the stopped repository a listener.
    try {
      const repository = (this.#unleash as unknown as { repository?: EventEmitter }).repository;
      repository?.on(UnleashEvents.Error, () => undefined);
    } catch {
      // A later unleash-client without the field: nothing to guard (test "close during a fetch" says).
    }
  }
}
