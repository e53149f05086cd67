/** The Math.imul murmur2 that replaces kafkajs 2.2.4's Long-based one gives the same hash for every key. */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createPartitionerFactory, murmur2 } from '../../../src/kafka/kafkajs-murmur2.js';
import { originalKafkajs } from '../../helpers/kafkajs-original.js';
import { rng } from '../../../scripts/lib/feature-events.js';

type Murmur2 = (key: Buffer | string | number) => number;
const original = originalKafkajs<Murmur2>('producer/partitioners/default/murmur2.js');

describe('murmur2 (kafkajs partitioner hash without Long)', () => {
  it('equals kafkajs 2.2.4 on random keys of every length 0..64, and on string and number keys', () => {
    const random = rng(7);
    const keys: (Buffer | string | number)[] = [];
    for (let length = 0; length <= 64; length++) {
      for (let n = 0; n < 20; n++) keys.push(Buffer.from(Array.from({ length }, () => Math.floor(random() * 256))));
    }
    keys.push('', 'c-1', 'customer-000123', 'ünïcødé-ключ', 12345, Buffer.alloc(7, 0xff), Buffer.alloc(9, 0x80));
    for (const key of keys) expect(murmur2(key)).toBe(original(key));
  });

  it('matches the Java client on its published test vectors', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
    expect(murmur2(Buffer.from('a-little-bit-long-string'))).toBe(-985981536);
    expect(murmur2(Buffer.from('a-little-bit-longer-string'))).toBe(-1486304829);
    expect(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(-58897971);
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
  });

  it('is what the default partitioner uses', () => {
    expect(createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js')).toBe(murmur2);
  });
});

describe("the default partitioner (kafkajs's, without an array per message)", () => {
  type Args = Parameters<ReturnType<ReturnType<typeof createPartitionerFactory>>>[0];
  type Partitioner = (args: Args) => number;
  const originalFactory = originalKafkajs<(hash: Murmur2) => () => Partitioner>('producer/partitioners/legacy/partitioner.js');
  const metadata = (leaders: number[]) => leaders.map((leader, partitionId) => ({ partitionId, leader }));

  it('picks what kafkajs 2.2.4 picks for messages with a partition or a key', () => {
    const ours = createPartitionerFactory(murmur2)();
    const theirs = originalFactory(original)();
    const random = rng(11);
    for (const leaders of [[1, 2, 3], [1, -1, 3, 1, 2, 3], [-1, -1]]) {
      const partitionMetadata = metadata(leaders);
      for (let n = 0; n < 200; n++) {
        const key = Buffer.from(Array.from({ length: Math.floor(random() * 20) }, () => Math.floor(random() * 256)));
        const message = n % 10 === 0 ? { partition: n % leaders.length, key } : n % 7 === 0 ? { key: `k-${n}` } : { key };
        expect(ours({ topic: 't', partitionMetadata, message })).toBe(theirs({ topic: 't', partitionMetadata, message }));
      }
    }
  });

  it('goes round the partitions with a leader, one step per keyless message, as kafkajs does (from a random start)', () => {
    const steps = (p: Partitioner, leaders: number[]): number[] => {
      const partitionMetadata = metadata(leaders);
      const within = leaders.some((l) => l >= 0) ? partitionMetadata.filter((m) => m.leader >= 0).map((m) => m.partitionId) : leaders.map((_, i) => i);
      const picks = Array.from({ length: 12 }, (_, n) => p({ topic: 't', partitionMetadata, message: n % 2 === 0 ? { key: null } : {} }));
      const at = picks.map((x) => within.indexOf(x));
      expect(at.every((i) => i >= 0)).toBe(true);
      return at.slice(1).map((i, n) => (i - (at[n] as number) + within.length) % within.length);
    };
    for (const leaders of [[1, 2, 3], [1, -1, 3, -1, 2], [-1, -1, -1]]) {
      const ours = steps(createPartitionerFactory(murmur2)(), leaders);
      expect(ours).toEqual(steps(originalFactory(original)(), leaders));
      expect(new Set(ours)).toEqual(new Set([1]));
    }
  });

  it('is what the default and the legacy partitioner are made with', () => {
    expect(createRequire(import.meta.url)('kafkajs/src/producer/partitioners/legacy/partitioner.js')).toBe(createPartitionerFactory);
  });
});
