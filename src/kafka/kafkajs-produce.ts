/**
 * kafkajs 2.2.4's Produce request (v3, which v4-v7 reuse), encoded in one buffer instead of
 * kafkajs's chain of Encoders. kafkajs builds every record in its own zero-filled 512-byte
 * Encoder, every varint in a fresh Buffer, and copies each record's bytes five more times on
 * the way to the request (records -> batch body -> batch -> length-prefixed bytes -> partition ->
 * topic -> request), growing each Encoder by doubling; its CRC32C is a byte-at-a-time JS loop.
 * That was the largest cost on the scorer's event loop (about 30 % of it, bench/README.md).
 *
 * Here: one pass sizes every record, one allocation holds the whole request, a second pass
 * writes it, and the CRC32C comes from @node-rs/crc32 (SSE4.2/ARMv8 CRC instructions, prebuilt
 * binary inside its npm package; kafkajs's own JS CRC is kept when the binding cannot load).
 * Byte for byte the request kafkajs writes (test/unit/kafka/kafkajs-produce.test.ts). Anything
 * the fast path does not cover takes kafkajs's own code, per partition: a message with a
 * timestamp (kafkajs sorts them as strings), a key, value or header of another type than Buffer,
 * string or null; a compressed request goes to kafkajs's encoder whole.
 */
import type { crc32c as Crc32c } from '@node-rs/crc32';
import { kafkajsModule, kafkajsRequire, replaceKafkajsModule } from './kafkajs-patch.js';

type Bytes = Buffer | string | null | undefined;
type Headers = Record<string, Bytes | Bytes[]>;
interface ProduceMessage { key?: Bytes; value?: Bytes; headers?: Headers; timestamp?: unknown }
interface PartitionData { partition: number; messages: ProduceMessage[]; firstSequence?: number }
interface TopicData { topic: string; partitions: PartitionData[] }
/** What kafkajs's broker.produce passes to the request (produce/index.js). */
export interface ProduceRequestArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: TopicData[];
}
/** kafkajs's Encoder, as far as this module uses it. */
interface EncoderLike {
  buf: Buffer;
  offset: number;
  size(): number;
  readonly buffer: Buffer;
  writeInt32(value: number): EncoderLike;
  writeEncoder(value: EncoderLike): EncoderLike;
}
interface ProduceRequest { apiKey: number; apiVersion: number; apiName: string; expectResponse: () => boolean; encode: () => Promise<EncoderLike> }

const Encoder = kafkajsModule<{ new (initialSize?: number): EncoderLike; prototype: EncoderLike }>('protocol/encoder.js');
const { Produce: API_KEY } = kafkajsModule<{ Produce: number }>('protocol/requests/apiKeys.js');
const COMPRESSION_NONE = kafkajsModule<{ Types: { None: number } }>('protocol/message/compression/index.js').Types.None;
const kafkajsCrc32C = kafkajsModule<(b: Buffer) => number>('protocol/recordBatch/crc32C/index.js');

function loadCrc32c(): (b: Buffer) => number {
  try {
    const { crc32c } = kafkajsRequire('@node-rs/crc32') as { crc32c: typeof Crc32c };
    return (b) => crc32c(b) >>> 0;
  } catch {
    return kafkajsCrc32C; // no prebuilt binary for this platform: correct, only slower
  }
}
/** CRC32C of a record batch body, unsigned, as kafkajs's crc32C/index.js returns it. */
export const crc32C = loadCrc32c();
// Before anything loads recordBatch/v0 (kafkajs's own encoder, kept for compressed batches, uses it too).
replaceKafkajsModule('protocol/recordBatch/crc32C/index.js', ['protocol/recordBatch/v0/index.js'], crc32C);

const MAGIC_BYTE = 2;
const TRANSACTIONAL_FLAG = 16;
/** attributes .. firstSequence (36 bytes) + the records count. */
const BATCH_BODY_HEADER = 40;
/** partition, recordBatch size, firstOffset, batch length, partitionLeaderEpoch, magic, crc. */
const PARTITION_HEADER = 4 + 4 + 8 + 4 + 4 + 1 + 4;

/** kafkajs's Encoder.sizeOfVarInt: zig-zag, then 7 bits a byte. */
function sizeOfVarInt(value: number): number {
  let v = (value << 1) ^ (value >> 31);
  let bytes = 1;
  while ((v & 0xffffff80) !== 0) {
    bytes += 1;
    v >>>= 7;
  }
  return bytes;
}

function writeVarInt(buf: Buffer, pos: number, value: number): number {
  let v = (value << 1) ^ (value >> 31);
  while ((v & 0xffffff80) !== 0) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v & 0x7f;
  return pos;
}

/** Bytes of a key, value or header value; -1 for null; undefined when the fast path does not cover it. */
function byteSize(v: unknown): number | undefined {
  if (v === null || v === undefined) return -1;
  if (Buffer.isBuffer(v)) return v.length;
  return typeof v === 'string' ? Buffer.byteLength(v) : undefined;
}

function writeBytes(buf: Buffer, pos: number, v: Bytes, size: number): number {
  pos = writeVarInt(buf, pos, size);
  if (size <= 0) return pos;
  if (typeof v === 'string') buf.write(v, pos, size, 'utf8');
  else buf.set(v as Buffer, pos);
  return pos + size;
}

/** Headers as kafkajs's Record flattens them (an array value is one header per element). */
function headerList(headers: Headers): { key: string; value: Bytes }[] {
  const list: { key: string; value: Bytes }[] = [];
  for (const key of Object.keys(headers)) {
    const v = headers[key];
    if (Array.isArray(v)) for (const value of v) list.push({ key, value });
    else list.push({ key, value: v });
  }
  return list;
}

/** Per record: the body size (without its own length varint), or undefined when kafkajs must encode the partition. */
export function recordBodySizes(messages: ProduceMessage[]): Int32Array | undefined {
  const sizes = new Int32Array(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as ProduceMessage;
    if (m.timestamp !== null && m.timestamp !== undefined) return undefined;
    if (m.headers !== undefined && (typeof m.headers !== 'object' || m.headers === null)) return undefined;
    const key = byteSize(m.key);
    const value = byteSize(m.value);
    if (key === undefined || value === undefined) return undefined;
    // attributes (1) + timestampDelta (varlong 0: every record takes the partition's Date.now())
    let size = 2 + sizeOfVarInt(i) + sizeOfVarInt(key) + Math.max(key, 0) + sizeOfVarInt(value) + Math.max(value, 0);
    const headers = m.headers === undefined ? [] : headerList(m.headers);
    size += sizeOfVarInt(headers.length);
    for (const h of headers) {
      const hv = byteSize(h.value);
      if (hv === undefined || hv < 0) return undefined; // kafkajs throws on a null header value: let it
      const hk = Buffer.byteLength(h.key);
      size += sizeOfVarInt(hk) + hk + sizeOfVarInt(hv) + hv;
    }
    sizes[i] = size;
  }
  return sizes;
}

const LONG_ZERO_STRINGS = new Set(['NaN', 'Infinity', '+Infinity', '-Infinity']);

/** Long.fromValue(v) as the signed 64-bit value kafkajs's writeInt64 writes. */
function int64(v: unknown): bigint {
  if (typeof v === 'number') return Number.isNaN(v) ? 0n : BigInt(v);
  if (typeof v === 'string') return LONG_ZERO_STRINGS.has(v) ? 0n : BigInt(v);
  if (typeof v === 'bigint') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { value?: unknown }).value === 'bigint') return (v as { value: bigint }).value;
  return BigInt(v as string);
}

type Plan = { kind: 'fast'; data: PartitionData; sizes: Int32Array; recordsBytes: number; now: number } | { kind: 'kafkajs'; data: PartitionData; bytes: Buffer };

interface KafkajsRecordBatch {
  RecordBatch: (opts: Record<string, unknown>) => Promise<EncoderLike>;
}
type KafkajsRecord = (opts: Record<string, unknown>) => EncoderLike;

/** kafkajs's partitionsEncoder (produce/v3/request.js), verbatim in behaviour: for what the fast path leaves out. */
async function kafkajsPartition(data: PartitionData, args: Required<Pick<ProduceRequestArgs, 'transactionalId' | 'producerId' | 'producerEpoch' | 'compression'>>): Promise<Buffer> {
  const Record = kafkajsModule<KafkajsRecord>('protocol/recordBatch/record/v0/index.js');
  const { RecordBatch } = kafkajsModule<KafkajsRecordBatch>('protocol/recordBatch/v0/index.js');
  const { partition, messages, firstSequence } = data;
  const dateNow = Date.now();
  const messageTimestamps = messages
    .map((m) => m.timestamp)
    .filter((timestamp) => timestamp !== null && timestamp !== undefined)
    .sort();
  const timestamps = messageTimestamps.length === 0 ? [dateNow] : messageTimestamps;
  const firstTimestamp = timestamps[0];
  const maxTimestamp = timestamps[timestamps.length - 1];
  const records = messages.map((message, i) =>
    Record({ ...message, offsetDelta: i, timestampDelta: ((message.timestamp as number) || dateNow) - (firstTimestamp as number) }),
  );
  const recordBatch = await RecordBatch({
    compression: args.compression,
    records,
    firstTimestamp,
    maxTimestamp,
    producerId: args.producerId,
    producerEpoch: args.producerEpoch,
    firstSequence,
    transactional: !!args.transactionalId,
    lastOffsetDelta: records.length - 1,
  });
  return new Encoder().writeInt32(partition).writeInt32(recordBatch.size()).writeEncoder(recordBatch).buffer;
}

function writeRecords(buf: Buffer, pos: number, messages: ProduceMessage[], sizes: Int32Array): number {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as ProduceMessage;
    pos = writeVarInt(buf, pos, sizes[i] as number);
    buf[pos++] = 0; // record attributes
    buf[pos++] = 0; // timestampDelta, varlong 0
    pos = writeVarInt(buf, pos, i);
    pos = writeBytes(buf, pos, m.key, byteSize(m.key) as number);
    pos = writeBytes(buf, pos, m.value, byteSize(m.value) as number);
    const headers = m.headers === undefined ? [] : headerList(m.headers);
    pos = writeVarInt(buf, pos, headers.length);
    for (const h of headers) {
      pos = writeBytes(buf, pos, h.key, Buffer.byteLength(h.key));
      pos = writeBytes(buf, pos, h.value, byteSize(h.value) as number);
    }
  }
  return pos;
}

/** The Produce v3 request payload (everything after the request header), as kafkajs encodes it. */
export async function encodeProduceV3(args: ProduceRequestArgs): Promise<EncoderLike> {
  const { acks, timeout, topicData } = args;
  // kafkajs's parameter defaults, which apply to undefined only.
  const transactionalId = args.transactionalId === undefined ? null : args.transactionalId;
  const producerId = args.producerId === undefined ? -1 : args.producerId;
  const producerEpoch = args.producerEpoch === undefined ? 0 : args.producerEpoch;
  const compression = args.compression === undefined ? COMPRESSION_NONE : args.compression;
  const attributes = transactionalId ? TRANSACTIONAL_FLAG : 0;
  const producerId64 = BigInt.asIntN(64, int64(producerId));

  // Pass 1: sizes.
  const plans: Plan[][] = [];
  let total = 2 + (transactionalId === null ? 0 : Buffer.byteLength(transactionalId)) + 2 + 4 + 4;
  for (const { topic, partitions } of topicData) {
    total += 2 + Buffer.byteLength(topic) + 4;
    const topicPlans: Plan[] = [];
    for (const data of partitions) {
      const sizes = recordBodySizes(data.messages);
      if (sizes === undefined) {
        const bytes = await kafkajsPartition(data, { transactionalId, producerId, producerEpoch, compression });
        topicPlans.push({ kind: 'kafkajs', data, bytes });
        total += bytes.length;
        continue;
      }
      let recordsBytes = 0;
      for (const size of sizes) recordsBytes += sizeOfVarInt(size) + size;
      topicPlans.push({ kind: 'fast', data, sizes, recordsBytes, now: Date.now() });
      total += PARTITION_HEADER + BATCH_BODY_HEADER + recordsBytes;
    }
    plans.push(topicPlans);
  }

  // Pass 2: one buffer, every byte written once.
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  if (transactionalId === null) pos = buf.writeInt16BE(-1, pos);
  else {
    pos = buf.writeInt16BE(Buffer.byteLength(transactionalId), pos);
    pos += buf.write(transactionalId, pos, 'utf8');
  }
  pos = buf.writeInt16BE(acks, pos);
  pos = buf.writeInt32BE(timeout, pos);
  pos = buf.writeInt32BE(topicData.length, pos);
  topicData.forEach(({ topic }, t) => {
    const topicPlans = plans[t] as Plan[];
    pos = buf.writeInt16BE(Buffer.byteLength(topic), pos);
    pos += buf.write(topic, pos, 'utf8');
    pos = buf.writeInt32BE(topicPlans.length, pos);
    for (const plan of topicPlans) {
      if (plan.kind === 'kafkajs') {
        buf.set(plan.bytes, pos);
        pos += plan.bytes.length;
        continue;
      }
      const { data, sizes, recordsBytes, now } = plan;
      const count = data.messages.length;
      const batchLength = 4 + 1 + 4 + BATCH_BODY_HEADER + recordsBytes;
      pos = buf.writeInt32BE(data.partition, pos);
      pos = buf.writeInt32BE(8 + 4 + batchLength, pos);
      pos = buf.writeBigInt64BE(0n, pos); // firstOffset
      pos = buf.writeInt32BE(batchLength, pos);
      pos = buf.writeInt32BE(0, pos); // partitionLeaderEpoch
      pos = buf.writeInt8(MAGIC_BYTE, pos);
      const crcAt = pos;
      pos += 4;
      const bodyStart = pos;
      pos = buf.writeInt16BE(attributes | compression, pos);
      pos = buf.writeInt32BE(count - 1, pos); // lastOffsetDelta
      pos = buf.writeBigInt64BE(BigInt(now), pos); // firstTimestamp
      pos = buf.writeBigInt64BE(BigInt(now), pos); // maxTimestamp
      pos = buf.writeBigInt64BE(producerId64, pos);
      pos = buf.writeInt16BE(producerEpoch, pos);
      pos = buf.writeInt32BE(data.firstSequence ?? 0, pos);
      pos = buf.writeInt32BE(count, pos);
      pos = writeRecords(buf, pos, data.messages, sizes);
      buf.writeUInt32BE(crc32C(buf.subarray(bodyStart, pos)), crcAt);
    }
  });
  if (pos !== total) throw new Error(`bug: produce request sized ${total} bytes, wrote ${pos}`);
  return Object.assign(Object.create(Encoder.prototype) as EncoderLike, { buf, offset: total });
}

const kafkajsProduceV3 = kafkajsModule<(args: ProduceRequestArgs) => ProduceRequest>('protocol/requests/produce/v3/request.js');

/** Drop-in for kafkajs's produce/v3/request.js; compressed requests keep kafkajs's encoder. */
export function produceRequestV3(args: ProduceRequestArgs): ProduceRequest {
  if (args.compression !== undefined && args.compression !== COMPRESSION_NONE) return kafkajsProduceV3(args);
  return { apiKey: API_KEY, apiVersion: 3, apiName: 'Produce', expectResponse: () => args.acks !== 0, encode: () => encodeProduceV3(args) };
}

replaceKafkajsModule('protocol/requests/produce/v3/request.js', ['protocol/requests/produce/v4/request.js'], produceRequestV3);
