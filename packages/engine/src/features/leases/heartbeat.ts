/** Timing of a {@link Heartbeat}, milliseconds. */
export interface HeartbeatTiming {
  /** Lease length; each successful renewal makes the lease good for this long again. */
  readonly leaseMs: number;
  /** Pause between renewals. */
  readonly intervalMs: number;
}

/**
 * Keeps one lease alive while its unit runs: every `intervalMs` it calls `renew`, which extends the
 * lease in PostgreSQL and answers whether it still held it. The heartbeat gives the lease up — aborts
 * {@link signal}, sets {@link lost} — when
 * - `renew` answers `false`: the lease ran out or another worker holds it now; or
 * - no renewal succeeded for the length of a lease, by the local monotonic clock, counted from the
 *   moment the last successful renewal (or the claim) was *sent*: the server set the expiry at or
 *   after that moment, so by then the lease may have run out and been taken over.
 *
 * Aborting is advice to stop early (the chunk copier cancels its statement); the fence that keeps
 * a late writer out is the lease check right before COMMIT, which the heartbeat never weakens: a
 * renewal only extends a lease that is still this token's and has not run out (ADR 007).
 *
 * A renewal that throws (the orchestrator database restarting) is retried on the next beat; renewals
 * never overlap, and nothing here rejects unhandled.
 */
export class Heartbeat {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #timing: HeartbeatTiming;
  readonly #renew: () => Promise<boolean>;
  #validUntil: number;
  #inFlight = false;
  #stopped = false;
  #lost: string | null = null;

  /**
   * @param renew - extends the lease; `true` while it still held it, `false` when it is gone.
   * @param timing - lease length and beat interval.
   * @param sentAt - `performance.now()` when the claim that took the lease was sent.
   */
  constructor(renew: () => Promise<boolean>, timing: HeartbeatTiming, sentAt: number = performance.now()) {
    this.#renew = renew;
    this.#timing = timing;
    this.#validUntil = sentAt + timing.leaseMs;
    this.#timer = setInterval(() => this.#beat(), timing.intervalMs);
  }

  /** Aborted when the lease is given up. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the lease was given up, or `null` while it is held. */
  get lost(): string | null {
    return this.#lost;
  }

  /** Stops renewing (the unit finished, or gave its lease back). Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  #lose(reason: string): void {
    if (this.#lost !== null) return;
    this.#lost = reason;
    this.stop();
    this.#controller.abort(new Error(reason));
  }

  #beat(): void {
    if (this.#stopped) return;
    if (performance.now() >= this.#validUntil) {
      this.#lose(`the lease could not be renewed within ${this.#timing.leaseMs} ms`);
      return;
    }
    if (this.#inFlight) return;
    this.#inFlight = true;
    const sentAt = performance.now();
    this.#renew().then(
      (held) => {
        this.#inFlight = false;
        if (this.#stopped) return;
        if (held) this.#validUntil = sentAt + this.#timing.leaseMs;
        else this.#lose('the lease ran out or another worker holds it now');
      },
      () => {
        // Transient (the database restarting): try again next beat, until the lease would run out.
        this.#inFlight = false;
      },
    );
  }
}
