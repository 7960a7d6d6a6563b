export { buildApp, type BuildAppOptions } from './app.js';
export { loadConfig, ConfigError, type ControlPlaneConfig } from './config.js';
export { HTTP_STATUS, type ErrorBody } from './plugins/errors.js';
