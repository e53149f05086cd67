/**
 * Key-sticky traffic split, as pure functions of the record: which records the canary scores and
 * which the shadow also scores.
 *
 * A record's place is a 32-bit MurmurHash3 (x86_32) of its key bytes, a function of the bytes
 * alone, so every instance and every restart agrees. A record is in a share of `percent` when its
 * hash is below percent% of 2^32: raising the percent only adds hashes, so keys only move from
 * stable to canary, never back, and lowering it only moves them back. Records without a key are
 * placed by partition and offset (fixed once written), so a re-read after a failure routes them
 * the same way.
 *
 * Canary and shadow use different seeds, so the shadowed keys are not the canary's keys; and the
 * hash is not Kafka's partitioner hash (murmur2), so a share is not a set of whole partitions.
 */

/** MurmurHash3 seeds: ASCII "cana" and "shad". Never change them: every key would move. */
export const CANARY_SEED = 0x63616e61;
export const SHADOW_SEED = 0x73686164;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3_x86_32 (Austin Appleby's reference, public domain) of `data`, as an unsigned 32-bit integer. */
export function murmur3(data: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const n = data.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    let k = data[blocks] as number;
    if (tail > 1) k ^= (data[blocks + 1] as number) << 8;
    if (tail > 2) k ^= (data[blocks + 2] as number) << 16;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const keyless = Buffer.alloc(12);

/** The record's routing hash: of its key, or for a keyless record of (partition int32, offset int64), big-endian. */
export function routingHash(key: Buffer | null, partition: number, offset: string | bigint, seed: number): number {
  if (key !== null) return murmur3(key, seed);
  keyless.writeInt32BE(partition, 0);
  keyless.writeBigInt64BE(BigInt(offset), 4);
  return murmur3(keyless, seed);
}

/** Hashes below this are in a share of `percent` (0..100); 100 admits every 32-bit hash. */
export function thresholdOf(percent: number): number {
  if (!(percent >= 0 && percent <= 100)) throw new RangeError(`percent: expected 0..100, got ${percent}`);
  return Math.floor((percent / 100) * 2 ** 32);
}

export interface Split {
  /** Share of keys the canary scores instead of stable, 0..100 (0: no canary). */
  canaryPercent: number;
  /** Share of keys the shadow scores as well, 0..100 (0: no shadow). */
  shadowPercent: number;
}

/** A split with its thresholds computed once; per record only a hash and a compare. */
export class Router {
  readonly split: Split;
  readonly #canary: number;
  readonly #shadow: number;

  constructor(split: Split) {
    this.split = { ...split };
    this.#canary = thresholdOf(split.canaryPercent);
    this.#shadow = thresholdOf(split.shadowPercent);
  }

  /** true: the canary scores this record; false: stable does. */
  isCanary(key: Buffer | null, partition: number, offset: string | bigint): boolean {
    return this.#canary > 0 && routingHash(key, partition, offset, CANARY_SEED) < this.#canary;
  }

  /** true: the shadow scores this record too. */
  isShadowed(key: Buffer | null, partition: number, offset: string | bigint): boolean {
    return this.#shadow > 0 && routingHash(key, partition, offset, SHADOW_SEED) < this.#shadow;
  }
}
