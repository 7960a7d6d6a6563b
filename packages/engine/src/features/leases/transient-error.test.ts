import { DependencyUnavailableError, TidewayError } from '@tideway/core';
import { describe, expect, it } from 'vitest';
import { asDependencyError, dependencyOf, errorMessage, isTransientError, TRANSIENT_RETRY_BASE_MS, TRANSIENT_RETRY_CAP_MS, transientRetryDelayMs } from './transient-error.js';

const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

describe('transient errors', () => {
  it('are connection errors and unavailable dependencies, also as causes', () => {
    expect(isTransientError(reset())).toBe(true);
    expect(isTransientError(new DependencyUnavailableError('redis', 'no answer'))).toBe(true);
    expect(isTransientError(new Error('chunk failed', { cause: new DependencyUnavailableError('datasource "main"', 'cannot connect') }))).toBe(true);
    expect(isTransientError(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }))).toBe(false);
    expect(isTransientError(new TidewayError('INVALID_SPEC', 'gone', {}))).toBe(false);
  });

  it('name what failed', () => {
    expect(dependencyOf(new DependencyUnavailableError('datasource "main"', 'x'), 'fallback')).toBe('datasource "main"');
    expect(dependencyOf(reset(), 'datasource "main"')).toBe('datasource "main"');
    const wrapped = asDependencyError('postgres', reset());
    expect(wrapped).toBeInstanceOf(DependencyUnavailableError);
    expect(dependencyOf(wrapped, 'x')).toBe('postgres');
    const other = new Error('duplicate key');
    expect(asDependencyError('postgres', other)).toBe(other);
    expect(errorMessage(wrapped)).toBe('postgres is unavailable: read ECONNRESET');
  });

  it('back off with jitter in [ceiling/2, ceiling), doubling up to the cap', () => {
    expect(transientRetryDelayMs(1, () => 0)).toBe(TRANSIENT_RETRY_BASE_MS / 2);
    expect(transientRetryDelayMs(1, () => 0.999)).toBeLessThan(TRANSIENT_RETRY_BASE_MS);
    expect(transientRetryDelayMs(3, () => 0)).toBe(TRANSIENT_RETRY_BASE_MS * 2);
    expect(transientRetryDelayMs(50, () => 0.999)).toBeLessThan(TRANSIENT_RETRY_CAP_MS);
    expect(transientRetryDelayMs(50, () => 0)).toBe(TRANSIENT_RETRY_CAP_MS / 2);
  });
});
