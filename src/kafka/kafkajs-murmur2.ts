/**
 * kafkajs 2.2.4's default partitioner hashes every message key with murmur2 written on its `Long`
 * class, which wraps an unbounded BigInt: each multiply allocates, and the product keeps growing
 * with the key's length (about a tenth of the scorer's event-loop time in the churn profile,
 * bench/README.md). Java's murmur2 (org.apache.kafka.common.utils.Utils#murmur2), which kafkajs
 * copies, is 32-bit int arithmetic, and kafkajs only ever keeps the low 32 bits (`toInt()`): the
 * same function in Math.imul gives the same partition for every key, without allocating
 * (test/unit/kafka/kafkajs-murmur2.test.ts compares both on every key length up to 64 bytes).
 */
import { randomBytes } from 'node:crypto';
import { replaceKafkajsModule } from './kafkajs-patch.js';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** murmur2 of a key as kafkajs computes it: a Buffer as is, anything else as the UTF-8 of String(key). */
export function murmur2(key: Buffer | string | number): number {
  const data = Buffer.isBuffer(key) ? key : Buffer.from(String(key));
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data.readInt32LE(i);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The last 1-3 bytes (Java's switch with fall-through).
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= (data[length4 + 2] as number) << 16;
    if (rest >= 2) h ^= (data[length4 + 1] as number) << 8;
    h ^= data[length4] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

interface PartitionArgs {
  topic: string;
  partitionMetadata: { partitionId: number; leader: number }[];
  message: { partition?: number | null; key?: Buffer | string | null };
}

/**
 * kafkajs 2.2.4's partitioner factory (producer/partitioners/legacy/partitioner.js, which the
 * default partitioner is made with), with one change: kafkajs filters the partitions with a
 * leader for every message, an array per message that only a message with neither partition nor
 * key needs; here it is filtered for those only. Every scored event has a key. Same choices in
 * the same order, round-robin counter included (test/unit/kafka/kafkajs-murmur2.test.ts).
 */
export function createPartitionerFactory(hash: (key: Buffer | string) => number) {
  const toPositive = (x: number): number => x & 0x7fffffff;
  return () => {
    const counters: Record<string, number> = {};
    return ({ topic, partitionMetadata, message }: PartitionArgs): number => {
      if (!(topic in counters)) counters[topic] = randomBytes(32).readUInt32BE(0);
      const numPartitions = partitionMetadata.length;
      if (message.partition !== null && message.partition !== undefined) return message.partition;
      if (message.key !== null && message.key !== undefined) return toPositive(hash(message.key)) % numPartitions;
      const counter = (counters[topic] as number) + 1;
      counters[topic] = counter;
      const availablePartitions = partitionMetadata.filter((p) => p.leader >= 0);
      if (availablePartitions.length > 0) return (availablePartitions[toPositive(counter) % availablePartitions.length] as { partitionId: number }).partitionId;
      return toPositive(counter) % numPartitions; // no partition has a leader: a non-available one
    };
  };
}

replaceKafkajsModule('producer/partitioners/default/murmur2.js', ['producer/partitioners/default/index.js'], murmur2);
replaceKafkajsModule('producer/partitioners/legacy/partitioner.js', ['producer/partitioners/default/index.js', 'producer/partitioners/legacy/index.js'], createPartitionerFactory);
