/** Where time comes from. Injected everywhere so tests can move time without waiting. */
export interface Clock {
  now(): Date;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => new Date() };
