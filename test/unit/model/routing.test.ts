// Key-sticky routing: the hash is the reference MurmurHash3, a key's version is stable across
// routers (restarts, instances), shares are right, raising a percent only moves keys to canary.
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { CANARY_SEED, Router, SHADOW_SEED, murmur3, routingHash, thresholdOf } from '../../../src/model/routing.js';

const KEYS: Buffer[] = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`entity-${i}`));
const share = (router: Router, keys = KEYS): number => keys.filter((k) => router.isCanary(k, 0, 0n)).length / keys.length;
const router = (canaryPercent: number, shadowPercent = 0): Router => new Router({ canaryPercent, shadowPercent });

describe('murmur3', () => {
  // Expected values from the reference implementation (python mmh3, unsigned).
  it.each([
    ['', 0, 0x0],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    ['\0\0\0\0', 0, 0x2362f9de],
    ['ab', 1, 0xb8079b46],
    ['abc', SHADOW_SEED, 0x876334e8],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['entity-1', CANARY_SEED, 0x5ca26cea],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ])('murmur3(%j, %i) is the reference value', (text, seed, expected) => {
    expect(murmur3(Buffer.from(text, 'latin1'), seed)).toBe(expected);
  });
});

describe('Router', () => {
  it('sends the same keys to canary from every router built with the same percent (restarts, instances)', () => {
    const a = router(20);
    const b = router(20);
    expect(KEYS.map((k) => a.isCanary(k, 0, 0n))).toEqual(KEYS.map((k) => b.isCanary(k, 5, 99n)));
    // Pinned (computed with python mmh3): a change of hash or seed would move live keys between versions on upgrade.
    expect(KEYS.slice(0, 20).map((k) => (a.isCanary(k, 0, 0n) ? 1 : 0)).join('')).toBe('00000011000111001100');
  });

  it.each([1, 5, 20, 50, 90])('gives the canary %i %% of 10,000 keys within ±3 points', (percent) => {
    expect(Math.abs(share(router(percent)) * 100 - percent)).toBeLessThanOrEqual(3);
  });

  it('only moves keys from stable to canary as the percent rises, never back', () => {
    let previous = new Set<number>();
    for (const percent of [0, 1, 5, 10, 20, 25, 33.3, 50, 75, 99, 100]) {
      const r = router(percent);
      const canary = new Set(KEYS.flatMap((k, i) => (r.isCanary(k, 0, 0n) ? [i] : [])));
      expect([...previous].filter((i) => !canary.has(i)), `keys that left canary at ${percent}%`).toEqual([]);
      previous = canary;
    }
    expect(previous.size).toBe(KEYS.length);
  });

  it('0 % routes nothing to canary, 100 % everything', () => {
    expect(share(router(0))).toBe(0);
    expect(share(router(100))).toBe(1);
    expect(thresholdOf(100)).toBeGreaterThan(0xffffffff);
    expect(() => thresholdOf(101)).toThrow(RangeError);
    expect(() => thresholdOf(Number.NaN)).toThrow(RangeError);
  });

  it('shadows a share of keys independently of the canary split', () => {
    const r = router(20, 50);
    const shadowed = (keys: Buffer[]) => keys.filter((k) => r.isShadowed(k, 0, 0n)).length / keys.length;
    expect(Math.abs(shadowed(KEYS) - 0.5)).toBeLessThanOrEqual(0.03);
    // Among canary keys and among stable keys alike, about half are shadowed: the seeds differ.
    const canaryKeys = KEYS.filter((k) => r.isCanary(k, 0, 0n));
    const stableKeys = KEYS.filter((k) => !r.isCanary(k, 0, 0n));
    expect(Math.abs(shadowed(canaryKeys) - 0.5)).toBeLessThanOrEqual(0.03);
    expect(Math.abs(shadowed(stableKeys) - 0.5)).toBeLessThanOrEqual(0.03);
    expect(router(20, 0).isShadowed(KEYS[0] as Buffer, 0, 0n)).toBe(false);
    expect(KEYS.every((k) => router(0, 100).isShadowed(k, 0, 0n))).toBe(true);
  });

  it('gives every Kafka partition its share of canary keys (the split is not by partition)', () => {
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 6 }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    const byPartition = new Map<number, Buffer[]>();
    for (const key of KEYS) {
      const p = partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
      const keys = byPartition.get(p) ?? [];
      keys.push(key);
      byPartition.set(p, keys);
    }
    expect(byPartition.size).toBe(6);
    const r = router(20);
    for (const [p, keys] of byPartition) expect(Math.abs(share(r, keys) - 0.2), `partition ${p}`).toBeLessThanOrEqual(0.04);
  });

  it('splits keyless records by partition and offset, the same way on every read', () => {
    const r = router(20);
    const offsets = Array.from({ length: 10_000 }, (_, i) => BigInt(i));
    const canary = offsets.filter((o) => r.isCanary(null, 3, o)).length / offsets.length;
    expect(Math.abs(canary - 0.2)).toBeLessThanOrEqual(0.03);
    expect(offsets.map((o) => r.isCanary(null, 3, o))).toEqual(offsets.map((o) => router(20).isCanary(null, 3, o.toString())));
    // Partition matters too: the same offset of two partitions is two records.
    expect(routingHash(null, 0, 7n, CANARY_SEED)).not.toBe(routingHash(null, 1, 7n, CANARY_SEED));
    // An empty key is a key (all such records go one way), not a keyless record.
    expect(routingHash(Buffer.alloc(0), 0, 7n, CANARY_SEED)).toBe(murmur3(Buffer.alloc(0), CANARY_SEED));
  });
});
