export { ApiClient, type ApiClientOptions, type Query, type RequestOptions } from './api-client.js';
export { ApiError, CLIENT_ERROR_CODES, type ClientErrorCode } from './api-error.js';
export { EXIT_CODES, type ExitCode } from './exit-codes.js';
export { buildProgram, renderApiError, run } from './program.js';
export { processIo, type Io } from './io.js';
export type * from './api-types.js';
