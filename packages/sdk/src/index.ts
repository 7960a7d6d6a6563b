export { createMigrationClient, type MigrationClient, type MigrationClientOptions, type MigrationClientStats, type ReadRequest, type WriteRequest } from './migration-client.js';
export { deepDiff, type DeepDiffOptions } from './deep-diff.js';
export { stickyBucket } from './sticky-bucket.js';
export { defaultKeyToString, keyParts, type MigrationKey, type KeyValue } from './migration-key.js';
export { SDK_ERROR_KINDS, type SdkErrorEvent, type SdkErrorKind } from './sdk-error-event.js';
export type { FetchLike } from './control-plane-reporter.js';
