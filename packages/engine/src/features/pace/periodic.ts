import { performance } from 'node:perf_hooks';

/**
 * A step run every `intervalMs` while started: one at a time (the next starts `intervalMs` after
 * the previous one started, or at once when it took longer), on an `unref`ed timer so it never keeps
 * the process alive. The latency guard's probe, statement reader and Prometheus query run on it.
 * A step that throws is the step's business: the error is swallowed and the next step runs.
 */
export class Periodic {
  #timer: NodeJS.Timeout | null = null;
  #running = false;

  /** @param step - calling `stop()` from inside it ends the loop after it. */
  constructor(
    private readonly intervalMs: number,
    private readonly step: () => Promise<void>,
  ) {}

  get running(): boolean {
    return this.#running;
  }

  /** Starts the loop with a step now (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Stops the loop; a step in flight finishes, and no other starts. */
  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => void this.#run(), delayMs);
    this.#timer.unref?.();
  }

  async #run(): Promise<void> {
    const started = performance.now();
    await this.step().catch(() => undefined);
    this.#schedule(Math.max(0, this.intervalMs - (performance.now() - started)));
  }
}
