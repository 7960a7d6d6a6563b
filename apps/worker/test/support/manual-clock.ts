import type { Clock } from '@tideway/engine';

/** A {@link Clock} that stands still until the test moves it (forward only). */
export class ManualClock implements Clock {
  #ms: number;

  constructor(start: Date = new Date()) {
    this.#ms = start.getTime();
  }

  now(): Date {
    return new Date(this.#ms);
  }

  /** Moves the clock to `at`. @throws Error when `at` is earlier than the current time. */
  set(at: Date | number): Date {
    const ms = typeof at === 'number' ? at : at.getTime();
    if (ms < this.#ms) throw new Error(`ManualClock only moves forward (${new Date(this.#ms).toISOString()} → ${new Date(ms).toISOString()})`);
    this.#ms = ms;
    return this.now();
  }
}
