/**
 * The record batch decoder and Batch constructor that replace kafkajs 2.2.4's
 * (src/kafka/kafkajs-fetch.ts) give the consumer exactly the records and batches kafkajs gives,
 * on record sets built by kafkajs's own encoder.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Batch, decodeRecordBatch } from '../../../src/kafka/kafkajs-fetch.js';
import { originalKafkajs } from '../../helpers/kafkajs-original.js';
import { rng } from '../../../scripts/lib/feature-events.js';

interface Encoder {
  buffer: Buffer;
}
type Record = (opts: object) => Encoder;
type RecordBatch = (opts: object) => Promise<Encoder>;
type DecodeMessages = (decoder: unknown) => Promise<unknown[]>;
const require = createRequire(import.meta.url);
const DecoderClass = originalKafkajs<new (b: Buffer) => { offset: number }>('protocol/decoder.js');
const Long = originalKafkajs<{ fromValue(v: unknown): unknown }>('utils/long.js');
const RecordV0 = originalKafkajs<Record>('protocol/recordBatch/record/v0/index.js');
const { RecordBatch } = originalKafkajs<{ RecordBatch: RecordBatch }>('protocol/recordBatch/v0/index.js');
const originalDecodeMessages = originalKafkajs<DecodeMessages>('protocol/requests/fetch/v4/decodeMessages.js');
const patchedDecodeMessages = require('kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js') as DecodeMessages;
const OriginalBatch = originalKafkajs<new (topic: string, fetchedOffset: string, data: object) => object>('consumer/batch.js');

const random = rng(5);
const bytes = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
  return b;
};

/** One record batch as the broker stores it (kafkajs's producer encoding with a real first offset). */
async function batch(opts: { firstOffset: bigint | number; firstTimestamp: number; count: number; compression?: number; transactional?: boolean; attributes?: number; deltas?: number[] }): Promise<Buffer> {
  const records = Array.from({ length: opts.count }, (_, i) => {
    const kind = i % 5;
    const timestampDelta = opts.deltas?.[i % opts.deltas.length] ?? i * 3;
    const offsetDelta = i;
    if (kind === 0) return RecordV0({ offsetDelta, timestampDelta, key: null, value: bytes(Math.floor(random() * 300)) });
    if (kind === 1) return RecordV0({ offsetDelta, timestampDelta, key: bytes(12), value: null });
    if (kind === 2) return RecordV0({ offsetDelta, timestampDelta, key: 'ключ', value: bytes(0), headers: { a: 'x', b: [Buffer.from('1'), Buffer.from('2'), Buffer.from('3')], toString: 'shadow', ['__proto__']: 'p', 'dlq.source.offset': '42' } });
    if (kind === 3) return RecordV0({ offsetDelta, timestampDelta, key: bytes(8), value: bytes(200), headers: { only: bytes(20) } });
    return RecordV0({ offsetDelta, timestampDelta, key: bytes(16), value: bytes(130) });
  });
  const encoded = await RecordBatch({
    compression: opts.compression ?? 0,
    firstOffset: Long.fromValue(opts.firstOffset),
    firstTimestamp: opts.firstTimestamp,
    maxTimestamp: opts.firstTimestamp + 1_000,
    partitionLeaderEpoch: 3,
    lastOffsetDelta: opts.count - 1,
    transactional: opts.transactional ?? false,
    producerId: Long.fromValue(1_001),
    producerEpoch: 2,
    firstSequence: 77,
    records,
  });
  const b = Buffer.from(encoded.buffer);
  if (opts.attributes !== undefined) b.writeInt16BE(b.readInt16BE(21) | opts.attributes, 21); // control / log-append-time flags
  return b;
}

/** The RECORDS field of a fetch response partition: int32 size + the batches. */
const recordSet = (batches: Buffer[]): Buffer => {
  const body = Buffer.concat(batches);
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length);
  return Buffer.concat([size, body]);
};

async function expectSameRecords(set: Buffer): Promise<unknown[]> {
  const ours = await patchedDecodeMessages(new DecoderClass(set));
  const theirs = await originalDecodeMessages(new DecoderClass(set));
  expect(ours).toEqual(theirs);
  return ours;
}

describe('record batch decoding (kafkajs patch)', () => {
  it('decodes exactly as kafkajs 2.2.4: offsets, timestamps, keys, values, headers, batch context', async () => {
    const records = await expectSameRecords(recordSet([
      await batch({ firstOffset: 0, firstTimestamp: 1_764_620_000_000, count: 1 }),
      await batch({ firstOffset: 1_000_000_123, firstTimestamp: 1_764_620_000_000, count: 300, transactional: true, deltas: [0, -5, 63, 64, 8_191, 8_192, -1_000_000] }),
      // timestamp deltas past 49 bits take the BigInt path
      await batch({ firstOffset: 2n ** 40n, firstTimestamp: 1_000, count: 12, deltas: [2 ** 50, -(2 ** 52), 2 ** 31, -(2 ** 31) - 1] }),
      // offsets and timestamps beyond 2^53 (BigInt arithmetic)
      await batch({ firstOffset: 2n ** 53n - 3n, firstTimestamp: 2 ** 53 - 2, count: 8 }),
    ]));
    expect(records).toHaveLength(321);
  }, 30_000); // CPU well under a second, the allowance is for a shared machine

  it('decodes control, log-append-time and compressed batches, and stops at a partial batch, as kafkajs 2.2.4 does', async () => {
    const tail = await batch({ firstOffset: 500, firstTimestamp: 1_764_620_000_000, count: 10 });
    await expectSameRecords(recordSet([
      await batch({ firstOffset: 100, firstTimestamp: 1_764_620_000_000, count: 5, transactional: true, attributes: 0x20 }),
      await batch({ firstOffset: 105, firstTimestamp: 1_764_620_000_000, count: 5, attributes: 0x08 }),
      await batch({ firstOffset: 110, firstTimestamp: 1_764_620_000_000, count: 40, compression: 1 }),
      tail.subarray(0, tail.length - 7), // a fetch cut at maxBytes
    ]));
  });

  it('is the decoder the fetch response uses', () => {
    expect(require('kafkajs/src/protocol/recordBatch/v0/decoder.js')).toBe(decodeRecordBatch);
  });
});

describe('Batch (kafkajs patch)', () => {
  it('keeps the records kafkajs 2.2.4 keeps and answers its methods the same', async () => {
    const records = (await patchedDecodeMessages(new DecoderClass(recordSet([
      await batch({ firstOffset: 1_000, firstTimestamp: 1_764_620_000_000, count: 50, transactional: true }),
      await batch({ firstOffset: 1_050, firstTimestamp: 1_764_620_000_000, count: 1, transactional: true, attributes: 0x20 }),
    ])))) as object[];
    const project = (b: object) => {
      const x = b as { [k: string]: unknown; lastOffset(): string; firstOffset(): string | null; offsetLag(): string; offsetLagLow(): string; isEmpty(): boolean; isEmptyControlRecord(): boolean };
      return { own: { ...x }, lastOffset: x.lastOffset(), firstOffset: x.firstOffset(), offsetLag: x.offsetLag(), offsetLagLow: x.offsetLagLow(), isEmpty: x.isEmpty(), isEmptyControlRecord: x.isEmptyControlRecord() };
    };
    for (const fetchedOffset of ['0', '1000', '1020', '1050', '1051', '9007199254740993']) {
      const data = { partition: 2, highWatermark: '1051', abortedTransactions: [], messages: records };
      expect(project(new (Batch as unknown as typeof OriginalBatch)('t', fetchedOffset, data))).toEqual(project(new OriginalBatch('t', fetchedOffset, data)));
    }
    expect(require('kafkajs/src/consumer/batch.js')).toBe(Batch);
  });
});
