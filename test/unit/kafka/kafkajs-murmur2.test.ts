/** The Math.imul murmur2 that replaces kafkajs 2.2.4's Long-based one gives the same hash for every key. */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { murmur2 } from '../../../src/kafka/kafkajs-murmur2.js';
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
