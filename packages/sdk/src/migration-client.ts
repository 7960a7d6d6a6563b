import { performance } from 'node:perf_hooks';
import { TidewayError, flagNames, type FlagReader, type ShadowResult } from '@tideway/core';
import { ControlPlaneReporter, MAX_BATCH_ITEMS, type FetchLike } from './control-plane-reporter.js';
import { deepDiff } from './deep-diff.js';
import { defaultKeyToString, keyParts, type MigrationKey } from './migration-key.js';
import type { SdkErrorEvent } from './sdk-error-event.js';
import { stickyBucket } from './sticky-bucket.js';
import { toWireValue } from './wire-value.js';

/** `ShadowResult` limits of the wire contract. */
const MAX_KEY_CHARS = 512;
const MAX_DIFF_PATHS = 100;
const MAX_PATH_CHARS = 512;
const MAX_ERROR_CHARS = 2000;

/**
 * Options of {@link createMigrationClient}. Durations are milliseconds, rates are percent.
 *
 * @example
 * ```ts
 * const options: MigrationClientOptions = {
 *   baseUrl: 'http://127.0.0.1:7070',
 *   token: 'secret',
 *   migration: { id: 'b6f1…', name: 'orders-v2', installation: 'k3x9q2ma' },
 *   flags: { isEnabled: () => false },
 *   shadowSamplePercent: 10,
 * };
 * ```
 */
export interface MigrationClientOptions {
  /** Control-plane base URL, e.g. `https://tideway.internal:7070`; the SDK appends `/v1/migrations/...`. */
  readonly baseUrl: string;
  /** API token, sent as `Authorization: Bearer <token>`. */
  readonly token: string;
  /**
   * The migration, as `GET /v1/migrations/:id` answers it (pass that resource, or these three fields
   * copied from it): `id` addresses the API routes; `installation` (the orchestrator's id,
   * `TIDEWAY_INSTALLATION` or its database's own) and `name` form the flag names
   * `tideway.<installation>.<name>.<purpose>` (the resource's `flags` lists them). Flags of another
   * name are not read: a wrong installation means every key takes the old path.
   */
  readonly migration: { readonly id: string; readonly name: string; readonly installation: string };
  /** Answers whether a flag is on for a key (e.g. `UnleashFlagReader` from `@tideway/flags`). If it throws, the flag counts as off. */
  readonly flags: FlagReader;
  /** Turns a key into text for flags, sampling and `ShadowResult.key`. @defaultValue {@link defaultKeyToString} */
  readonly keyToString?: (key: MigrationKey) => string;
  /** Shadow results per POST, 1–1000; a full batch is sent at once. @defaultValue 200 */
  readonly batchSize?: number;
  /** Everything pending (partial batches, dual-write reports) is sent this often, milliseconds. @defaultValue 1000 */
  readonly flushIntervalMs?: number;
  /**
   * Shadow results held at most while waiting to be sent (e.g. the control plane is down); beyond
   * this new results are dropped and counted. Also the cap on queued dual-write failures.
   * @defaultValue 10000
   */
  readonly maxBufferedResults?: number;
  /**
   * Extra sticky sampling of shadow reads, percent (0–100): a key is shadowed only when the
   * `shadow-read` flag is on for it **and** `stickyBucket(migration.name, keyToString(key)) <
   * shadowSamplePercent`. Leave it out to let the flag's (sticky) gradual rollout alone decide. The
   * two hashes are independent, so the effective rate is their product.
   * @defaultValue undefined (no extra sampling)
   */
  readonly shadowSamplePercent?: number;
  /** Used for every POST to the control plane. @defaultValue globalThis.fetch */
  readonly fetch?: FetchLike;
  /** Called for every failure the SDK absorbs instead of throwing (see {@link SdkErrorEvent}). @defaultValue a no-op */
  readonly onError?: (event: SdkErrorEvent) => void;
  /** Wall clock for `at` timestamps, epoch milliseconds. Latencies use `performance.now()`. @defaultValue Date.now */
  readonly now?: () => number;
  /** A POST not answered within this is abandoned and retried on a later flush, milliseconds. @defaultValue 10000 */
  readonly requestTimeoutMs?: number;
  /** How long `close()` waits for background work (new-side writes, shadow reads) before its final flush, milliseconds. @defaultValue 5000 */
  readonly closeTimeoutMs?: number;
  /**
   * Best-effort writes running at once, at most. Beyond this the best-effort side is skipped,
   * counted as a failure and its key reported for re-drive, so a slow store cannot pile up
   * unbounded work in the application.
   * @defaultValue 1000
   */
  readonly maxPendingWrites?: number;
}

/**
 * Argument of {@link MigrationClient.write}: the key and both sides of one write. Both sides return
 * the same type, since either may be the one whose result the caller gets.
 *
 * @example
 * ```ts
 * const request: WriteRequest<void> = {
 *   key: 42,
 *   writeOld: async () => { await oldDb.updateTotal(42, 1250); },
 *   writeNew: async () => { await newDb.updateTotalCents(42, 125000); },
 * };
 * ```
 */
export interface WriteRequest<T> {
  /** The row's migration key (composite keys in `spec.source.key` order). */
  readonly key: MigrationKey;
  /** Writes the old store. Authoritative unless `write-new` is on. */
  readonly writeOld: () => T | PromiseLike<T>;
  /** Writes the new store. Best-effort unless `write-new` is on (then authoritative). */
  readonly writeNew: () => T | PromiseLike<T>;
}

/**
 * Argument of {@link MigrationClient.read}: the key, both sides of one read (returning the same
 * type) and how to compare them.
 *
 * @example
 * ```ts
 * const request: ReadRequest<Order | undefined> = {
 *   key: 42,
 *   readOld: () => oldDb.order(42),
 *   readNew: () => newDb.order(42),
 *   ignore: ['updatedAt'],
 * };
 * ```
 */
export interface ReadRequest<T> {
  /** The row's migration key. */
  readonly key: MigrationKey;
  /** Reads the old store. Served unless `read-new` is on. */
  readonly readOld: () => T | PromiseLike<T>;
  /** Reads the new store, in the old store's shape. Served when `read-new` is on; otherwise compared in the background. */
  readonly readNew: () => T | PromiseLike<T>;
  /**
   * Applied to each side before comparing (e.g. round timestamps, map `total_cents` to `total`).
   * Its results are what `compare`/`deepDiff` see and what a mismatch sends as `oldValue`/`newValue`.
   * @defaultValue identity
   */
  readonly normalize?: (value: T, side: 'old' | 'new') => unknown;
  /** Field paths left out of the comparison (see {@link deepDiff}), e.g. `['updatedAt', 'items[*].etag']`. @defaultValue [] */
  readonly ignore?: readonly string[];
  /**
   * Replaces {@link deepDiff}: `true` or `[]` is a match, `false` a mismatch without paths, a
   * non-empty array a mismatch with those paths. Receives normalised values. `ignore` is not applied.
   */
  readonly compare?: (oldValue: unknown, newValue: unknown) => boolean | readonly string[];
}

/**
 * Counters since the client was created. All are counts (no units).
 *
 * @example
 * ```ts
 * const { mismatches, shadowReads } = client.stats();
 * const divergence = shadowReads === 0 ? 0 : mismatches / shadowReads;
 * ```
 */
export interface MigrationClientStats {
  /** Shadow reads compared and recorded (`matches + mismatches + newErrors`). */
  readonly shadowReads: number;
  /** Shadow reads whose two sides compared equal. */
  readonly matches: number;
  /** Shadow reads whose two sides differed. */
  readonly mismatches: number;
  /** Shadow reads whose new side failed. */
  readonly newErrors: number;
  /** Shadow results dropped (buffer full, client closed, or refused by the control plane). */
  readonly dropped: number;
  /** Shadow results the control plane accepted. */
  readonly sent: number;
  /** POSTs to the control plane that failed (both routes). */
  readonly sendFailures: number;
  /** Writes that ran both sides (the best-effort side at least started or was skipped as over the limit). */
  readonly dualWrites: number;
  /** Best-effort sides that failed or were skipped. */
  readonly dualWriteFailures: number;
  /** Shadow results held now, waiting to be sent. */
  readonly buffered: number;
  /** New-side failures that could not be queued for re-drive (buffer full or client closed). */
  readonly droppedDualWriteFailures: number;
}

/**
 * The application's handle on one migration. Every method is safe to call whatever the state of
 * the control plane and the flag server: Tideway's own failures go to `onError` and `stats()`,
 * never into the application.
 *
 * @example
 * ```ts
 * const saved = await client.write({ key: 42, writeOld: () => oldDb.save(order), writeNew: () => newDb.save(order) });
 * const row = await client.read({ key: 42, readOld: () => oldDb.order(42), readNew: () => newDb.order(42) });
 * await client.close();
 * ```
 */
export interface MigrationClient {
  /**
   * Writes one row through the migration's write path:
   * - `write-new` on for the key: awaits `writeNew()` (its result is returned, its error thrown),
   *   then starts `writeOld()` best-effort (kept for rollback); a failure is counted and its key sent
   *   with `side: "old"` so the control plane re-copies the row from new to old;
   * - else `dual-write` on: awaits `writeOld()` (its result is returned, its error thrown, exactly as
   *   without Tideway), then starts `writeNew()` best-effort: it never delays the caller past
   *   `writeOld()` and never throws; a failure is counted and its key sent in the next dual-write
   *   report so the control plane re-drives it;
   * - else only `writeOld()`.
   * Best-effort writes of one key run in call order (one after the other).
   *
   * @throws whatever the authoritative side throws; nothing else.
   */
  write<T>(request: WriteRequest<T>): Promise<T>;
  /**
   * Reads one row through the migration's read path:
   * - `read-new` on: serves `readNew()`; when the key is also shadowed, `readOld()` runs in the
   *   background and the two are compared;
   * - else shadowed (the `shadow-read` flag on and, with `shadowSamplePercent`, the key in the
   *   sticky sample): starts `readOld()` and `readNew()` together and settles as soon as `readOld()`
   *   does, with its result or error; `readNew()` is awaited and compared in the background and
   *   recorded as a shadow result (match / mismatch with diff paths / new_error, both latencies);
   * - else only `readOld()`.
   *
   * @throws whatever the served side throws; nothing else.
   */
  read<T>(request: ReadRequest<T>): Promise<T>;
  /** Sends every shadow result and dual-write report recorded so far. Never rejects. Does not wait for running background work (see {@link MigrationClient.idle}). */
  flush(): Promise<void>;
  /** Resolves once every background task started so far (best-effort writes, shadow comparisons) has finished. Never rejects. */
  idle(): Promise<void>;
  /**
   * Stops shadowing, waits up to `closeTimeoutMs` for background work, makes a final flush and stops
   * the timer. Idempotent; never rejects. Afterwards reads use the served side only, writes still
   * honour the flags (data stays correct) but nothing more is reported.
   */
  close(): Promise<void>;
  /** Counters since creation. */
  stats(): MigrationClientStats;
}

type Settled<T> = { readonly ok: true; readonly value: T; readonly ms: number } | { readonly ok: false; readonly error: unknown; readonly ms: number };

/**
 * Creates the SDK client of one migration. It does no I/O until there is something to report.
 *
 * @param options - see {@link MigrationClientOptions}; defaults: `batchSize` 200, `flushIntervalMs`
 *   1000, `maxBufferedResults` 10,000, `requestTimeoutMs` 10,000, `closeTimeoutMs` 5,000,
 *   `maxPendingWrites` 1,000, `keyToString` {@link defaultKeyToString}, `fetch` the global one.
 * @returns a {@link MigrationClient}; call `close()` on shutdown.
 * @throws TidewayError `VALIDATION_FAILED` (details `{ option }`) when an option is missing or out of range.
 *
 * @example
 * ```ts
 * const client = createMigrationClient({
 *   baseUrl: 'http://127.0.0.1:7070',
 *   token: process.env.TIDEWAY_TOKEN ?? '',
 *   migration: { id: 'b6f1…', name: 'orders-v2', installation: 'k3x9q2ma' }, // or the resource of GET /v1/migrations/:id
 *   flags: { isEnabled: () => false }, // UnleashFlagReader in production
 * });
 * const order = await client.read({
 *   key: 42,
 *   readOld: () => db.oldOrder(42),
 *   readNew: () => db.newOrder(42),
 *   ignore: ['updatedAt'],
 * });
 * await client.close();
 * ```
 */
export function createMigrationClient(options: MigrationClientOptions): MigrationClient {
  return new TidewayMigrationClient(options);
}

class TidewayMigrationClient implements MigrationClient {
  private readonly flags: FlagReader;
  private readonly names: ReturnType<typeof flagNames>;
  private readonly migrationName: string;
  private readonly keyToString: (key: MigrationKey) => string;
  private readonly samplePercent: number | undefined;
  private readonly now: () => number;
  private readonly closeTimeoutMs: number;
  private readonly maxPendingWrites: number;
  private readonly userOnError: ((event: SdkErrorEvent) => void) | undefined;
  private readonly reporter: ControlPlaneReporter;
  private readonly counts = { shadowReads: 0, matches: 0, mismatches: 0, newErrors: 0, dualWrites: 0, dualWriteFailures: 0 };
  /** Background tasks running, and who waits for none. */
  private pending = 0;
  private pendingWrites = 0;
  private idleWaiters: Array<() => void> = [];
  /** Per key, the last best-effort write: the next one of that key runs after it. */
  private readonly writeChains = new Map<string, Promise<void>>();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: MigrationClientOptions) {
    const bad = (option: string, why: string): never => {
      throw new TidewayError('VALIDATION_FAILED', `createMigrationClient: ${option} ${why}`, { option });
    };
    const int = (option: string, value: number | undefined, fallback: number, min: number, max: number): number => {
      const v = value ?? fallback;
      if (!Number.isInteger(v) || v < min || v > max) bad(option, `must be an integer from ${min} to ${max}`);
      return v;
    };
    try {
      new URL(options.baseUrl);
    } catch {
      bad('baseUrl', 'must be an absolute URL');
    }
    if (typeof options.token !== 'string' || options.token === '') bad('token', 'must be a non-empty string');
    if (!options.migration || typeof options.migration.id !== 'string' || options.migration.id === '') bad('migration.id', 'must be a non-empty string');
    if (typeof options.migration.name !== 'string' || options.migration.name === '') bad('migration.name', 'must be a non-empty string');
    if (typeof options.migration.installation !== 'string' || !/^[a-z0-9]{1,16}$/.test(options.migration.installation)) {
      bad('migration.installation', 'must be the installation id of the migration resource (1-16 lower-case letters and digits)');
    }
    if (!options.flags || typeof options.flags.isEnabled !== 'function') bad('flags', 'must be a FlagReader');
    const p = options.shadowSamplePercent;
    if (p !== undefined && !(typeof p === 'number' && p >= 0 && p <= 100)) bad('shadowSamplePercent', 'must be a number from 0 to 100');
    const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (typeof fetchImpl !== 'function') bad('fetch', 'is required where no global fetch exists');

    this.flags = options.flags;
    this.names = flagNames(options.migration.installation, options.migration.name);
    this.migrationName = options.migration.name;
    this.keyToString = options.keyToString ?? defaultKeyToString;
    this.samplePercent = p;
    this.now = options.now ?? Date.now;
    this.userOnError = options.onError;
    this.closeTimeoutMs = int('closeTimeoutMs', options.closeTimeoutMs, 5000, 0, 3_600_000);
    this.maxPendingWrites = int('maxPendingWrites', options.maxPendingWrites, 1000, 1, Number.MAX_SAFE_INTEGER);
    const batchSize = int('batchSize', options.batchSize, 200, 1, MAX_BATCH_ITEMS);
    this.reporter = new ControlPlaneReporter({
      baseUrl: options.baseUrl,
      token: options.token,
      migrationId: options.migration.id,
      batchSize,
      flushIntervalMs: int('flushIntervalMs', options.flushIntervalMs, 1000, 1, 3_600_000),
      maxBufferedResults: int('maxBufferedResults', options.maxBufferedResults, 10_000, batchSize, Number.MAX_SAFE_INTEGER),
      requestTimeoutMs: int('requestTimeoutMs', options.requestTimeoutMs, 10_000, 1, 3_600_000),
      fetch: fetchImpl as FetchLike,
      onError: (event) => this.onError(event),
    });
  }

  async write<T>(request: WriteRequest<T>): Promise<T> {
    const keyText = this.keyText(request.key);
    if (keyText === null) return invoke(request.writeOld);
    if (this.isOn(this.names.writeNew, keyText)) {
      const result = await request.writeNew();
      this.bestEffortWrite(request.writeOld, 'old', request.key, keyText);
      return result;
    }
    if (this.isOn(this.names.dualWrite, keyText)) {
      const result = await this.timedOld(request.writeOld);
      this.bestEffortWrite(request.writeNew, 'new', request.key, keyText);
      return result;
    }
    return invoke(request.writeOld);
  }

  read<T>(request: ReadRequest<T>): Promise<T> {
    const keyText = this.keyText(request.key);
    if (keyText === null) return invoke(request.readOld);
    const serveNew = this.isOn(this.names.readNew, keyText);
    const shadow =
      !this.closed &&
      (this.samplePercent === undefined || stickyBucket(this.migrationName, keyText) < this.samplePercent) &&
      this.isOn(this.names.shadowRead, keyText);
    if (!shadow) return serveNew ? invoke(request.readNew) : this.isOn(this.names.dualWrite, keyText) ? this.timedOld(request.readOld) : invoke(request.readOld);

    const at = this.now();
    const oldStarted = performance.now();
    const oldRead = invoke(request.readOld);
    const oldDone = settle(oldRead, oldStarted);
    const newStarted = performance.now();
    const newRead = invoke(request.readNew);
    const newDone = settle(newRead, newStarted);
    this.background(Promise.all([oldDone, newDone]).then(([o, n]) => this.recordShadow(request, keyText, at, o, n, serveNew)));
    return serveNew ? newRead : oldRead;
  }

  flush(): Promise<void> {
    return this.reporter.flush();
  }

  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.idle(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.closeTimeoutMs);
          timer.unref?.();
        }),
      ]);
      clearTimeout(timer);
      await this.reporter.close();
    })();
    return this.closing;
  }

  stats(): MigrationClientStats {
    const r = this.reporter.stats();
    return {
      shadowReads: this.counts.shadowReads,
      matches: this.counts.matches,
      mismatches: this.counts.mismatches,
      newErrors: this.counts.newErrors,
      dropped: r.dropped,
      sent: r.sent,
      sendFailures: r.sendFailures,
      dualWrites: this.counts.dualWrites,
      dualWriteFailures: this.counts.dualWriteFailures,
      buffered: r.buffered,
      droppedDualWriteFailures: r.droppedDualWriteFailures,
    };
  }

  private onError(event: SdkErrorEvent): void {
    if (this.userOnError === undefined) return;
    try {
      this.userOnError(event);
    } catch {
      // the application's hook must not break the SDK
    }
  }

  /** The key as text, or `null` (old path) when `keyToString` fails. */
  private keyText(key: MigrationKey): string | null {
    try {
      const text = this.keyToString(key);
      if (typeof text === 'string' && text !== '') return text;
      this.onError({ kind: 'key', error: new TidewayError('VALIDATION_FAILED', 'keyToString returned an empty or non-string value', { key: String(key) }) });
    } catch (error) {
      this.onError({ kind: 'key', error });
    }
    return null;
  }

  /** Whether `flag` is on for the key; `false` when the flag reader throws. */
  private isOn(flag: string, keyText: string): boolean {
    try {
      return this.flags.isEnabled(flag, { key: keyText }) === true;
    } catch (error) {
      this.onError({ kind: 'flags', error, key: keyText });
      return false;
    }
  }

  /**
   * Runs a call of the application's to the old store and counts its wall time for the latency
   * guard (ADR 014): the production path a backfill must not slow down, as the application sees it.
   * Only while dual writes are on for the key (the phases in which a backfill runs), so an
   * application with every flag off sends nothing.
   */
  private timedOld<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    const started = performance.now();
    const done = (): void => this.reporter.addLatency(performance.now() - started);
    return invoke(fn).then(
      (value) => (done(), value),
      (error: unknown) => {
        done();
        throw error;
      },
    );
  }

  private background(task: Promise<unknown>): void {
    this.pending++;
    const done = (): void => {
      if (--this.pending > 0) return;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    };
    task.then(done, (error: unknown) => {
      this.onError({ kind: 'compare', error });
      done();
    });
  }

  private bestEffortWrite(run: () => unknown, side: 'old' | 'new', key: MigrationKey, keyText: string): void {
    this.counts.dualWrites++;
    this.reporter.addDualWrite();
    const fail = (error: unknown): void => {
      this.counts.dualWriteFailures++;
      this.onError({ kind: 'dual_write', side, key: keyText, error });
      this.reporter.addDualWriteFailure({ key: keyParts(key), error: errorText(error), at: isoTime(this.now()), side });
    };
    if (this.pendingWrites >= this.maxPendingWrites) {
      fail(new TidewayError('DEPENDENCY_UNAVAILABLE', `best-effort ${side} write skipped: ${this.maxPendingWrites} already pending`, { side }));
      return;
    }
    this.pendingWrites++;
    const previous = this.writeChains.get(keyText);
    const attempt = previous === undefined ? invoke(run) : previous.then(() => invoke(run));
    const chain = attempt.then(
      () => undefined,
      (error: unknown) => fail(error),
    );
    this.writeChains.set(keyText, chain);
    const cleanup = (): void => {
      this.pendingWrites--;
      if (this.writeChains.get(keyText) === chain) this.writeChains.delete(keyText);
    };
    this.background(chain.then(cleanup, (error: unknown) => {
      cleanup();
      throw error;
    }));
  }

  private recordShadow<T>(request: ReadRequest<T>, keyText: string, at: number, o: Settled<T>, n: Settled<T>, servedNew: boolean): void {
    if (!o.ok) {
      // Served old: the application got the error. Served new: nothing to compare against.
      if (servedNew) this.onError({ kind: 'shadow_read', error: o.error, key: keyText });
      return;
    }
    const base = { key: truncate(keyText, MAX_KEY_CHARS), oldLatencyMs: o.ms, at: isoTime(at) };
    if (!n.ok) {
      this.counts.shadowReads++;
      this.counts.newErrors++;
      this.reporter.addResult({ ...base, outcome: 'new_error', error: truncate(errorText(n.error), MAX_ERROR_CHARS) });
      return;
    }
    let result: ShadowResult;
    try {
      const a = request.normalize ? request.normalize(o.value, 'old') : o.value;
      const b = request.normalize ? request.normalize(n.value, 'new') : n.value;
      let paths: readonly string[] | null;
      if (request.compare) {
        const verdict = request.compare(a, b);
        paths = verdict === true ? [] : verdict === false ? null : verdict;
      } else {
        paths = deepDiff(a, b, { ignore: request.ignore ?? [], maxPaths: MAX_DIFF_PATHS });
      }
      const timing = { ...base, newLatencyMs: n.ms };
      if (paths !== null && paths.length === 0) result = { ...timing, outcome: 'match' };
      else {
        result = { ...timing, outcome: 'mismatch', oldValue: toWireValue(a), newValue: toWireValue(b) };
        if (paths !== null) result.diffPaths = paths.slice(0, MAX_DIFF_PATHS).map((p) => truncate(String(p), MAX_PATH_CHARS));
      }
    } catch (error) {
      this.onError({ kind: 'compare', error, key: keyText });
      return;
    }
    this.counts.shadowReads++;
    if (result.outcome === 'match') this.counts.matches++;
    else this.counts.mismatches++;
    this.reporter.addResult(result);
  }
}

/** Calls `fn`, turning a synchronous throw into a rejection. */
function invoke<T>(fn: () => T | PromiseLike<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

function settle<T>(p: Promise<T>, started: number): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value, ms: performance.now() - started }),
    (error: unknown) => ({ ok: false as const, error, ms: performance.now() - started }),
  );
}

function errorText(error: unknown): string {
  if (error instanceof Error) return truncate(`${error.name}: ${error.message}`, MAX_ERROR_CHARS);
  try {
    return truncate(String(error), MAX_ERROR_CHARS);
  } catch {
    return 'unknown error';
  }
}

/** ISO 8601 of epoch milliseconds; the real time when the injected clock returns nonsense. */
function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? new Date().toISOString() : d.toISOString();
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max);
}
