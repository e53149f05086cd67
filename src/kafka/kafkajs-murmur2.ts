/**
 * kafkajs 2.2.4's default partitioner hashes every message key with murmur2 written on its `Long`
 * class, which wraps an unbounded BigInt: each multiply allocates, and the product keeps growing
 * with the key's length (about a tenth of the scorer's event-loop time in the churn profile,
 * bench/README.md). Java's murmur2 (org.apache.kafka.common.utils.Utils#murmur2), which kafkajs
 * copies, is 32-bit int arithmetic, and kafkajs only ever keeps the low 32 bits (`toInt()`): the
 * same function in Math.imul gives the same partition for every key, without allocating
 * (test/unit/kafka/kafkajs-murmur2.test.ts compares both on every key length up to 64 bytes).
 */
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

replaceKafkajsModule('producer/partitioners/default/murmur2.js', ['producer/partitioners/default/index.js'], murmur2);
