/**
 * Fakes for the SDK's pure unit tests (not exported from the package): a flag reader and a
 * recording `fetch`. The SDK talks to nothing else, so these are its whole environment.
 */
import { flagNames, type FlagReader } from '@tideway/core';
import type { FetchLike } from './control-plane-reporter.js';
import { murmurHash3X86_32 } from './murmur-hash3.js';

/** A flag's state: on, off, on for some keys, or a reader that throws. */
export type FakeFlag = boolean | ((key: string) => boolean) | 'throws';

/** Which of a migration's four flags are on. */
export interface FakeFlagStates {
  dualWrite?: FakeFlag;
  shadowRead?: FakeFlag;
  readNew?: FakeFlag;
  writeNew?: FakeFlag;
}

/** The installation id of the fakes' flag names. */
export const FAKE_INSTALLATION = 'fake1';

/** A `FlagReader` over fixed states of the flags of `migrationName` in {@link FAKE_INSTALLATION}; `calls` lists every question asked. */
export function fakeFlags(migrationName: string, states: FakeFlagStates): FlagReader & { calls: Array<{ flag: string; key: string }> } {
  const names = flagNames(FAKE_INSTALLATION, migrationName);
  const byName = new Map<string, FakeFlag | undefined>([
    [names.dualWrite, states.dualWrite],
    [names.shadowRead, states.shadowRead],
    [names.readNew, states.readNew],
    [names.writeNew, states.writeNew],
  ]);
  const calls: Array<{ flag: string; key: string }> = [];
  return {
    calls,
    isEnabled(flag, { key }) {
      calls.push({ flag, key });
      const state = byName.get(flag);
      if (state === 'throws') throw new Error('flag server unreachable');
      if (typeof state === 'function') return state(key);
      return state ?? false;
    },
  };
}

/**
 * Unleash's flexibleRollout with `stickiness: default` on the key: on when
 * `normalizedValue(key, groupId) <= rolloutPercent` (`murmur(groupId:key) % 100 + 1`).
 */
export function unleashRollout(groupId: string, rolloutPercent: number): (key: string) => boolean {
  return (key) => (murmurHash3X86_32(`${groupId}:${key}`) % 100) + 1 <= rolloutPercent;
}

/** One POST the fake fetch received. */
export interface RecordedPost {
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** How the fake control plane answers. */
export type FakeAnswer = { status: number; body?: string } | 'reject' | 'hang' | 'throw-sync';

/** A recording `fetch`; `answer` may be changed between calls. */
export function fakeFetch(answer: FakeAnswer | ((post: RecordedPost) => FakeAnswer) = { status: 202 }): {
  fetch: FetchLike;
  posts: RecordedPost[];
  attempts: number;
  setAnswer(next: FakeAnswer | ((post: RecordedPost) => FakeAnswer)): void;
} {
  let current = answer;
  const state = {
    posts: [] as RecordedPost[],
    attempts: 0,
    setAnswer(next: FakeAnswer | ((post: RecordedPost) => FakeAnswer)) {
      current = next;
    },
    fetch: ((url, init) => {
      state.attempts++;
      const post: RecordedPost = { url, headers: init.headers, body: JSON.parse(init.body) as unknown };
      const a = typeof current === 'function' ? current(post) : current;
      if (a === 'throw-sync') throw new TypeError('fetch failed synchronously');
      if (a === 'reject') return Promise.reject(new TypeError('fetch failed: ECONNREFUSED'));
      if (a === 'hang') return new Promise(() => {});
      state.posts.push(post);
      return Promise.resolve(new Response(a.body ?? null, { status: a.status }));
    }) as FetchLike,
  };
  return state;
}

/** Resolves after `ms` milliseconds (to make a fake read slow, not to wait for the SDK). */
export function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}
