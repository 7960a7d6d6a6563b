export type { FlagControl, FlagState } from './flag-control.js';
export { UnleashFlagControl, type UnleashFlagControlOptions } from './unleash-flag-control.js';
export { UnleashFlagReader, type UnleashFlagReaderOptions } from './unleash-flag-reader.js';
