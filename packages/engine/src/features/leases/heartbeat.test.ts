import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat } from './heartbeat.js';

const timing = { leaseMs: 10_000, intervalMs: 3_000 };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Heartbeat', () => {
  it('renews every interval while the lease holds, and stops when told', async () => {
    const renew = vi.fn(async () => true);
    const beat = new Heartbeat(renew, timing, performance.now());
    await vi.advanceTimersByTimeAsync(9_100);
    expect(renew).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(renew).toHaveBeenCalledTimes(23);
    expect(beat.lost).toBeNull();
    beat.stop();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(renew).toHaveBeenCalledTimes(23);
    expect(beat.signal.aborted).toBe(false);
  });

  it('gives the lease up at once when a renewal says it is gone', async () => {
    const beat = new Heartbeat(async () => false, timing, performance.now());
    await vi.advanceTimersByTimeAsync(3_100);
    expect(beat.lost).toMatch(/ran out or another worker holds it/);
    expect(beat.signal.aborted).toBe(true);
  });

  it('keeps trying through failed renewals and gives up once a lease length passed since the last good one was sent', async () => {
    let fail = false;
    const renew = vi.fn(async () => {
      if (fail) throw new Error('Connection terminated unexpectedly');
      return true;
    });
    const beat = new Heartbeat(renew, timing, performance.now());
    await vi.advanceTimersByTimeAsync(3_000); // good renewal sent at 3 s: valid until 13 s
    fail = true;
    await vi.advanceTimersByTimeAsync(9_000); // failures at 6, 9, 12 s
    expect(beat.lost).toBeNull();
    await vi.advanceTimersByTimeAsync(3_000); // 15 s > 13 s
    expect(beat.lost).toMatch(/could not be renewed within 10000 ms/);
    expect(beat.signal.aborted).toBe(true);
    expect(renew).toHaveBeenCalledTimes(4);
  });

  it('never overlaps renewals and gives up when one hangs past the lease', async () => {
    const renew = vi.fn(() => new Promise<boolean>(() => undefined));
    const beat = new Heartbeat(renew, timing, performance.now());
    await vi.advanceTimersByTimeAsync(9_500);
    expect(renew).toHaveBeenCalledTimes(1);
    expect(beat.lost).toBeNull();
    await vi.advanceTimersByTimeAsync(3_000);
    expect(beat.lost).not.toBeNull();
  });
});
