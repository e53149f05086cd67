/**
 * The one-buffer Produce request encoder (src/kafka/kafkajs-produce.ts) writes exactly the bytes
 * kafkajs 2.2.4 writes, on every shape of request the producer sends, and on the ones it leaves
 * to kafkajs (timestamps, other value types, compression).
 */
import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ProduceRequestArgs, crc32C, produceRequestV3, recordBodySizes } from '../../../src/kafka/kafkajs-produce.js';
import { originalKafkajs } from '../../helpers/kafkajs-original.js';
import { rng } from '../../../scripts/lib/feature-events.js';

interface Request {
  apiKey: number;
  apiVersion: number;
  apiName: string;
  expectResponse: () => boolean;
  encode: () => Promise<{ buffer: Buffer }>;
}
const original = originalKafkajs<(args: ProduceRequestArgs) => Request>('protocol/requests/produce/v3/request.js');
const originalV7 = originalKafkajs<(args: ProduceRequestArgs) => Request>('protocol/requests/produce/v7/request.js');
const Long = originalKafkajs<{ fromValue(v: unknown): unknown }>('utils/long.js');

const random = rng(11);
const bytes = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
  return b;
};
// Lengths around every varint boundary (63/64, 127/128, 8191/8192) and a large value.
const SIZES = [0, 1, 63, 64, 100, 127, 128, 300, 8191, 8192, 16_400];

function messages(count: number, sizes: readonly number[] = SIZES): ProduceRequestArgs['topicData'][number]['partitions'][number]['messages'] {
  const pick = (): number => sizes[Math.floor(random() * sizes.length)] as number;
  return Array.from({ length: count }, (_, i) => {
    const kind = i % 7;
    if (kind === 0) return { key: null, value: bytes(pick()) };
    if (kind === 1) return { key: `ключ-${i}`, value: `valüe-${'x'.repeat(pick())}` };
    if (kind === 2) return { key: bytes(8), value: null };
    if (kind === 3) return { key: bytes(12), value: bytes(120), headers: { 'dlq.error.code': 'DECODE_FAILED', 'dlq.source.offset': String(i), raw: bytes(pick()), multi: ['a', bytes(3), 'ç'] } };
    if (kind === 4) return { key: bytes(12), value: bytes(120), headers: {} };
    if (kind === 5) return { key: '', value: '' };
    return { key: bytes(16), value: bytes(pick()) };
  });
}

async function expectSameBytes(args: ProduceRequestArgs): Promise<void> {
  const ours = produceRequestV3(args);
  const theirs = original(args);
  expect({ ...ours, encode: undefined, expectResponse: ours.expectResponse() }).toEqual({ ...theirs, encode: undefined, expectResponse: theirs.expectResponse() });
  const [a, b] = await Promise.all([ours.encode(), theirs.encode()]);
  expect(a.buffer.equals(b.buffer)).toBe(true);
}

describe('Produce v3 request encoding (kafkajs patch)', () => {
  beforeEach(() => {
    vi.spyOn(Date, 'now').mockReturnValue(1_764_620_000_123);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('is byte for byte kafkajs 2.2.4 on transactional requests over several topics and partitions', async () => {
    expect(recordBodySizes(messages(70))).toBeDefined(); // every kind of message below takes the fast path
    // 8,300 records: offset deltas past the 2-byte varint range, with small values to keep it quick.
    for (const [count, sizes] of [[1, SIZES], [2, SIZES], [65, SIZES], [150, SIZES], [8_300, [0, 1, 100, 130]]] as const) {
      await expectSameBytes({
        acks: -1,
        timeout: 30_000,
        transactionalId: 'kafka-onnx-scorer-g-in-3',
        producerId: Long.fromValue(4711),
        producerEpoch: 7,
        topicData: [
          { topic: 'scored', partitions: [{ partition: 3, firstSequence: 1_234, messages: messages(count, sizes) }, { partition: 0, firstSequence: 0, messages: messages(3) }] },
          { topic: 'dead-letters-ü', partitions: [{ partition: 5, firstSequence: 2_147_483_000, messages: messages(Math.ceil(count / 10)) }] },
        ],
      });
    }
  }, 30_000); // CPU well under a second; the allowance is for a machine shared with brokers and other tests

  it('is byte for byte kafkajs 2.2.4 with kafkajs defaults: not transactional, no producer id, no sequence, acks 0', async () => {
    await expectSameBytes({ acks: 0, timeout: 1_000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: messages(50) }] }] });
    await expectSameBytes({ acks: 1, timeout: 1_000, transactionalId: '', producerId: '-1', producerEpoch: 0, topicData: [] });
    await expectSameBytes({ acks: 1, timeout: 1_000, producerId: 9_007_199_254_740_991n, topicData: [{ topic: 't', partitions: [] }] });
  });

  it('leaves to kafkajs, with the same bytes, what its fast path does not cover', async () => {
    const withTimestamps = [{ key: 'a', value: 'b', timestamp: '1764620000999' }, { key: 'c', value: 'd' }, { key: 'e', value: 'f', timestamp: 1_764_619_000_000 }];
    const otherTypes = [{ key: new Uint8Array([1, 2, 3]) as unknown as Buffer, value: bytes(4) }];
    await expectSameBytes({
      acks: -1,
      timeout: 5_000,
      transactionalId: 'tx',
      producerId: 12,
      producerEpoch: 1,
      topicData: [{ topic: 't', partitions: [{ partition: 1, messages: withTimestamps }, { partition: 2, messages: messages(20) }, { partition: 4, messages: otherTypes }] }],
    });
    await expectSameBytes({ acks: -1, timeout: 5_000, compression: 1, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: messages(30) }] }] });
  });

  it('is what kafkajs sends for Produce v3 to v7, with a CRC32C equal to kafkajs\'s', async () => {
    const require = createRequire(import.meta.url);
    expect(require('kafkajs/src/protocol/requests/produce/v3/request.js')).toBe(produceRequestV3);
    expect(require('kafkajs/src/protocol/recordBatch/crc32C/index.js')).toBe(crc32C);
    const v7 = require('kafkajs/src/protocol/requests/produce/v7/request.js') as (args: ProduceRequestArgs) => Request;
    const args: ProduceRequestArgs = { acks: -1, timeout: 30_000, transactionalId: 'tx', producerId: 3, producerEpoch: 0, topicData: [{ topic: 't', partitions: [{ partition: 0, firstSequence: 5, messages: messages(40) }] }] };
    const [ours, theirs] = [v7(args), originalV7(args)];
    expect(ours.apiVersion).toBe(7);
    expect((await ours.encode()).buffer.equals((await theirs.encode()).buffer)).toBe(true);
    const kafkajsCrc = originalKafkajs<(b: Buffer) => number>('protocol/recordBatch/crc32C/index.js');
    for (const n of [0, 1, 7, 8, 9, 1_000, 65_537]) {
      const b = bytes(n);
      expect(crc32C(b)).toBe(kafkajsCrc(b));
    }
  });
});
