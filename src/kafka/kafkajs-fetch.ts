/**
 * kafkajs 2.2.4's record batch decoding (the fetch side), without `Long` and without a Decoder
 * object and a buffer slice per record. kafkajs decodes each record through a fresh Decoder over
 * a fresh slice, reads its timestamp delta as a BigInt `Long` and computes every record's offset
 * and timestamp as BigInt(string) + delta -> string; then the consumer's Batch parses every
 * offset once more (`Long.fromValue(offset).gte(fetchedOffset)`).
 *
 * Here one loop reads the records straight from the fetch buffer, and offsets and timestamps are
 * plain numbers while they are safe integers (always, in practice: 2^53 ms is year 287,396),
 * BigInt otherwise. The records are the objects kafkajs builds, field for field, with keys and
 * values still slices of the fetch buffer, and one shared frozen object as the headers of every
 * record without any (test/unit/kafka/kafkajs-fetch.test.ts). Compressed
 * batches and the legacy message sets keep kafkajs's decoder.
 */
import { kafkajsModule, replaceKafkajsModule } from './kafkajs-patch.js';

interface Decoder {
  buffer: Buffer;
  offset: number;
}
type Headers = Record<string, Buffer | null | (Buffer | null)[]>;
interface BatchContext {
  firstOffset: string;
  firstTimestamp: string;
  partitionLeaderEpoch: number;
  inTransaction: boolean;
  isControlBatch: boolean;
  lastOffsetDelta: number;
  producerId: string;
  producerEpoch: number;
  firstSequence: number;
  maxTimestamp: string;
  timestampType: number;
  magicByte?: number;
}
export interface FetchedRecord {
  magicByte: number;
  attributes: number;
  timestamp: string;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
  isControlRecord: boolean;
  batchContext: BatchContext;
}
type RecordBatchDecoder = (decoder: Decoder) => Promise<BatchContext & { records: FetchedRecord[] }>;

const kafkajsDecodeRecordBatch = kafkajsModule<RecordBatchDecoder>('protocol/recordBatch/v0/decoder.js');
const { KafkaJSPartialMessageError, KafkaJSInvalidLongError } = kafkajsModule<Record<string, new (message: string) => Error>>('errors.js') as {
  KafkaJSPartialMessageError: new (message: string) => Error;
  KafkaJSInvalidLongError: new (message: string) => Error;
};
const TimestampTypes = kafkajsModule<{ CREATE_TIME: number; LOG_APPEND_TIME: number }>('protocol/timestampTypes.js');

const COMPRESSION_CODEC_MASK = 0x07;
const TIMESTAMP_TYPE_FLAG_MASK = 0x08;
const TRANSACTIONAL_FLAG_MASK = 0x10;
const CONTROL_FLAG_MASK = 0x20;
/** firstOffset + length + partitionLeaderEpoch + magic + crc: where the attributes start. */
const ATTRIBUTES_AT = 8 + 4 + 4 + 1 + 4;

/** A reader over one record batch; same arithmetic as kafkajs's Decoder. */
class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
  ) {}

  varInt(): number {
    const buf = this.buf;
    let byte: number;
    let result = 0;
    let shift = 0;
    do {
      byte = buf[this.pos++] as number;
      result += (byte & 0x7f) << shift;
      shift += 7;
    } while (byte >= 0x80);
    return (result >>> 1) ^ -(result & 1);
  }

  /** A zig-zag varlong as a number when it has at most 7 bytes (49 bits: exact), else as a BigInt. */
  varLong(): number | bigint {
    const buf = this.buf;
    const start = this.pos;
    let result = 0;
    let scale = 1;
    for (let n = 0; n < 7; n++) {
      const byte = buf[this.pos++] as number;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
      scale *= 128;
    }
    this.pos = start;
    let big = 0n;
    let shift = 0n;
    let byte: number;
    do {
      if (shift > 63n) throw new KafkaJSInvalidLongError('Invalid Long, must contain 9 bytes or less');
      byte = buf[this.pos++] as number;
      big += BigInt(byte & 0x7f) << shift;
      shift += 7n;
    } while (byte >= 0x80);
    return (big >> 1n) ^ -(big & 1n);
  }

  bytes(): Buffer | null {
    const length = this.varInt();
    if (length === -1) return null;
    const b = this.buf.slice(this.pos, this.pos + length);
    this.pos += length;
    return b;
  }

  string(): string | null {
    const b = this.bytes();
    return b === null ? null : b.toString('utf8');
  }
}

/** `base + delta` as kafkajs's Long gives it: a decimal string. */
function plus(base: number | undefined, baseBig: bigint, delta: number | bigint): string {
  if (base !== undefined && typeof delta === 'number') {
    const sum = base + delta;
    if (Number.isSafeInteger(sum)) return String(sum);
  }
  return String(baseBig + BigInt(delta));
}
const safe = (v: bigint): number | undefined => (v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : undefined);

/** The headers of every record that has none: one frozen object instead of one per record (nothing writes to a fetched record's headers). */
const NO_HEADERS: Headers = Object.freeze({}) as Headers;

/** kafkajs's header reduce: one property per key, repeated keys become an array. */
function headerObject(reader: Reader): Headers {
  const count = reader.varInt();
  if (count === 0) return NO_HEADERS;
  const headers: Headers = {};
  for (let i = 0; i < count; i++) {
    const key = String(reader.string());
    const value = reader.bytes();
    // Read through the prototype chain as kafkajs's `obj[key] === undefined` does ('toString' is not undefined).
    const previous = (headers as Record<string, unknown>)[key];
    const next = previous === undefined ? value : Array.isArray(previous) ? previous.concat([value]) : [previous, value];
    if (key === '__proto__') Object.defineProperty(headers, key, { value: next, writable: true, enumerable: true, configurable: true });
    else headers[key] = next as Headers[string];
  }
  return headers;
}

/** Drop-in for kafkajs's recordBatch/v0/decoder.js: reads one record batch at `fetchDecoder.offset`. */
export async function decodeRecordBatch(fetchDecoder: Decoder): Promise<BatchContext & { records: FetchedRecord[] }> {
  const buf = fetchDecoder.buffer;
  const start = fetchDecoder.offset;
  if (start + ATTRIBUTES_AT + 2 > buf.length || (buf.readInt16BE(start + ATTRIBUTES_AT) & COMPRESSION_CODEC_MASK) !== 0) {
    return kafkajsDecodeRecordBatch(fetchDecoder);
  }
  const firstOffsetBig = buf.readBigInt64BE(start);
  const length = buf.readInt32BE(start + 8);
  fetchDecoder.offset = start + 12 + length;
  const remainingBytes = Math.max(0, Math.min(length, buf.length - (start + 12)));
  if (remainingBytes < length) {
    throw new KafkaJSPartialMessageError(`Tried to decode a partial record batch: remainingBytes(${remainingBytes}) < recordBatchLength(${length})`);
  }
  const p = start + 12;
  const attributes = buf.readInt16BE(p + 9);
  const firstTimestampBig = buf.readBigInt64BE(p + 15);
  const context: BatchContext = {
    firstOffset: firstOffsetBig.toString(),
    firstTimestamp: firstTimestampBig.toString(),
    partitionLeaderEpoch: buf.readInt32BE(p),
    inTransaction: (attributes & TRANSACTIONAL_FLAG_MASK) > 0,
    isControlBatch: (attributes & CONTROL_FLAG_MASK) > 0,
    lastOffsetDelta: buf.readInt32BE(p + 11),
    producerId: buf.readBigInt64BE(p + 31).toString(),
    producerEpoch: buf.readInt16BE(p + 39),
    firstSequence: buf.readInt32BE(p + 41),
    maxTimestamp: buf.readBigInt64BE(p + 23).toString(),
    timestampType: (attributes & TIMESTAMP_TYPE_FLAG_MASK) > 0 ? TimestampTypes.LOG_APPEND_TIME : TimestampTypes.CREATE_TIME,
  };
  const magicByte = buf.readInt8(p + 4);
  const batchContext: BatchContext = { ...context, magicByte };
  const count = buf.readInt32BE(p + 45);
  const records: FetchedRecord[] = count === -1 ? [] : new Array<FetchedRecord>(count);
  const firstOffset = safe(firstOffsetBig);
  const firstTimestamp = safe(firstTimestampBig);
  const appendTime = context.timestampType === TimestampTypes.LOG_APPEND_TIME && context.maxTimestamp !== '';
  const reader = new Reader(buf, p + 49);
  let lastDelta: number | bigint | undefined;
  let timestamp = '';
  for (let i = 0; i < count; i++) {
    const recordLength = reader.varInt();
    const end = reader.pos + recordLength;
    const recordAttributes = buf.readInt8(reader.pos++);
    const timestampDelta = reader.varLong();
    // Records of one batch often share their millisecond: the previous record's string is reused.
    if (timestampDelta !== lastDelta) {
      lastDelta = timestampDelta;
      timestamp = appendTime ? context.maxTimestamp : plus(firstTimestamp, firstTimestampBig, timestampDelta);
    }
    const offset = plus(firstOffset, firstOffsetBig, reader.varInt());
    const key = reader.bytes();
    const value = reader.bytes();
    const headers = headerObject(reader);
    reader.pos = end;
    records[i] = { magicByte, attributes: recordAttributes, timestamp, offset, key, value, headers, isControlRecord: context.isControlBatch, batchContext };
  }
  return { ...context, records };
}

interface BatchPartitionData {
  partition: number;
  highWatermark: string;
  abortedTransactions?: { producerId: string; firstOffset: string }[];
  messages: FetchedRecord[];
}
const KafkajsBatch = kafkajsModule<{ prototype: object }>('consumer/batch.js');

/** An offset, or a fetched offset, as a number when safe, else a BigInt (Long.fromValue's value). */
const offsetValue = (v: string | number | bigint): number | bigint => {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : BigInt(v);
};

/**
 * Drop-in for kafkajs's consumer/batch.js: its constructor without a Long per message; the
 * object has kafkajs's Batch prototype, so every method (lastOffset, offsetLag, ...) is kafkajs's.
 */
export function Batch(this: unknown, topic: string, fetchedOffset: string, partitionData: BatchPartitionData): object {
  const batch = Object.create(KafkajsBatch.prototype) as Record<string, unknown>;
  const fetched = offsetValue(fetchedOffset);
  const { abortedTransactions, messages } = partitionData;
  batch.fetchedOffset = fetchedOffset;
  batch.topic = topic;
  batch.partition = partitionData.partition;
  batch.highWatermark = partitionData.highWatermark;
  batch.rawMessages = messages;
  // Records below the requested offset (a fetch can start earlier) are dropped, as kafkajs does.
  const within = keepAll(messages, (m) => {
    const o = offsetValue(m.offset);
    return typeof o === typeof fetched ? o >= fetched : BigInt(o) >= BigInt(fetched);
  });
  batch.messagesWithinOffset = within;
  // kafkajs's filter as installed (src/kafka/kafkajs-fix.ts replaces it), looked up per batch.
  const filterAbortedMessages = kafkajsModule<(args: { messages: FetchedRecord[]; abortedTransactions: BatchPartitionData['abortedTransactions'] }) => FetchedRecord[]>('consumer/filterAbortedMessages.js');
  batch.messages = keepAll(filterAbortedMessages({ messages: within, abortedTransactions }), (m) => !m.isControlRecord);
  return batch;
}

/** `records.filter(keep)`, but the same array when every record is kept (the usual case): no copy of a fetch's records per filter. */
function keepAll(records: FetchedRecord[], keep: (m: FetchedRecord) => boolean): FetchedRecord[] {
  for (let i = 0; i < records.length; i++) if (!keep(records[i] as FetchedRecord)) return records.filter(keep);
  return records;
}
Batch.prototype = KafkajsBatch.prototype;

replaceKafkajsModule('protocol/recordBatch/v0/decoder.js', ['protocol/requests/fetch/v4/decodeMessages.js'], decodeRecordBatch);
replaceKafkajsModule('consumer/batch.js', ['consumer/consumerGroup.js'], Batch);
