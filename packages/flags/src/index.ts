/** The port lives in `@tideway/core` beside `FlagReader`, so the engine and this package share one definition. */
export type { EnsureFlagsOptions, FlagControl, FlagState, FlagSummary } from '@tideway/core';
export { UnleashFlagControl, type UnleashFlagControlOptions } from './unleash-flag-control.js';
export { UnleashFlagReader, type UnleashFlagReaderOptions } from './unleash-flag-reader.js';
