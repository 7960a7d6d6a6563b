/**
 * MurmurHash3, x86 32-bit flavour, bit-for-bit the function Unleash uses for sticky gradual
 * rollouts.
 *
 * Source: Austin Appleby's public-domain MurmurHash3 (`MurmurHash3_x86_32` in
 * https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp), as ported to JavaScript by
 * the `murmurhash3js` package (`murmurHash3.x86.hash32`), which Unleash's `normalizedValue`
 * calls (https://github.com/Unleash/unleash-client-node/blob/main/src/strategy/util.ts:
 * `murmurHash3.x86.hash32(`${groupId}:${id}`, seed) % normalizer + 1`).
 *
 * Like `murmurhash3js`, each UTF-16 code unit of `text` contributes its low byte only. For ASCII
 * text that is exactly MurmurHash3 over the UTF-8 bytes; for other text it still is a stable,
 * well-mixed hash, and it stays identical to what Unleash computes for the same string.
 *
 * @param text - the string to hash.
 * @param seed - 32-bit seed. @defaultValue 0
 * @returns an unsigned 32-bit integer (0 to 2^32 − 1).
 *
 * @example
 * ```ts
 * murmurHash3X86_32('hello'); // 613153351
 * ```
 */
export function murmurHash3X86_32(text: string, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const length = text.length;
  const tail = length & 3;
  const blocksEnd = length - tail;
  let h1 = seed | 0;
  let k1 = 0;
  let i = 0;
  for (; i < blocksEnd; i += 4) {
    k1 =
      (text.charCodeAt(i) & 0xff) |
      ((text.charCodeAt(i + 1) & 0xff) << 8) |
      ((text.charCodeAt(i + 2) & 0xff) << 16) |
      ((text.charCodeAt(i + 3) & 0xff) << 24);
    k1 = Math.imul(k1, c1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, c2);
    h1 ^= k1;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
  }
  k1 = 0;
  if (tail === 3) k1 ^= (text.charCodeAt(i + 2) & 0xff) << 16;
  if (tail >= 2) k1 ^= (text.charCodeAt(i + 1) & 0xff) << 8;
  if (tail >= 1) {
    k1 ^= text.charCodeAt(i) & 0xff;
    k1 = Math.imul(k1, c1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, c2);
    h1 ^= k1;
  }
  h1 ^= length;
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  return h1 >>> 0;
}
