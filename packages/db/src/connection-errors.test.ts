import { describe, expect, it } from 'vitest';
import { isConnectionError } from './connection-errors.js';

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('isConnectionError', () => {
  it('knows refused, reset and dropped connections and a server going away or starting', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03', '08006', '08001', '08P01']) {
      expect({ code, transient: isConnectionError(coded(code)) }).toEqual({ code, transient: true });
    }
    for (const message of ['Connection terminated unexpectedly', 'timeout exceeded when trying to connect', 'the database system is starting up', 'Client has encountered a connection error and is not queryable']) {
      expect({ message, transient: isConnectionError(new Error(message)) }).toEqual({ message, transient: true });
    }
  });

  it('looks through causes and AggregateError (a refused dual-stack connect)', () => {
    expect(isConnectionError(new Error('wrapped', { cause: coded('ECONNRESET') }))).toBe(true);
    expect(isConnectionError(new AggregateError([new Error('x'), coded('ECONNREFUSED')], 'connect failed'))).toBe(true);
  });

  it('is false for a statement that failed on its own', () => {
    for (const code of ['23505', '57014', '42P01', '40001', '53300x']) expect({ code, transient: isConnectionError(coded(code)) }).toEqual({ code, transient: false });
    expect(isConnectionError(new Error('syntax error at or near "x"'))).toBe(false);
    expect(isConnectionError(null)).toBe(false);
    expect(isConnectionError('ECONNREFUSED')).toBe(false);
    const loop: Error & { cause?: unknown } = new Error('loop');
    loop.cause = loop;
    expect(isConnectionError(loop)).toBe(false);
  });
});
