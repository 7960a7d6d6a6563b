import { describe, expect, it } from 'vitest';
import { chunkJobId, rangeJobId, workJobId } from './job-catalog.js';

describe('work job ids', () => {
  it('carry the enqueue generation, so a re-drive never reuses the id of a failed job', () => {
    expect(chunkJobId(42, 1, 1)).toBe('chunk-42-a1-e1');
    expect(chunkJobId(42, 1, 2)).not.toBe(chunkJobId(42, 1, 1));
    expect(rangeJobId(7, 3, 9)).toBe('vrange-7-a3-e9');
  });

  it('are derived from the job data', () => {
    expect(workJobId({ name: 'backfill.chunk', data: { migrationId: 'm', chunkId: 5, attempt: 2, enqueue: 3 } })).toBe('chunk-5-a2-e3');
    expect(workJobId({ name: 'verification.range', data: { verificationId: 'v', rangeId: 5, attempt: 1, enqueue: 1 } })).toBe('vrange-5-a1-e1');
  });
});
