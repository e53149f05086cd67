/**
 * KIP-447 for kafkajs 2.2.4: the three things EOS_MODE=v2 (one transactional producer per
 * pipeline, src/stages/produce-pipeline.ts) needs and kafkajs does not have.
 *
 * 1. The group generation of an assignment. kafkajs's GROUP_JOIN event says which partitions and
 *    which member id, not which generation: the consumer group now adds `generationId` to it.
 * 2. TxnOffsetCommit v3, which carries the generation and member id the offsets were consumed
 *    under. The group coordinator refuses it (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) once the
 *    group has moved on: a zombie that lost its partitions in a rebalance cannot commit offsets,
 *    so its transaction aborts, whatever its transactional id. kafkajs sends v0/v1 only (no
 *    generation). A `topics` list registered with `withGroupMetadata` goes out as v3; any other
 *    keeps kafkajs's own request. kafkajs passes the caller's `topics` array through
 *    transaction.sendOffsets to the broker unchanged, which is what carries the registration.
 * 3. OffsetFetch v7 with require_stable: while a transaction that commits offsets of a partition
 *    is open, the coordinator answers UNSTABLE_OFFSET_COMMIT instead of an offset that the open
 *    transaction may still move. A new owner reads its starting offset this way
 *    (`fetchStableOffsets`, added to kafkajs's admin client), so it never starts below what the
 *    previous owner's transaction commits. kafkajs fetches v1-v4 only (no require_stable).
 *
 * v3 and v7 are flexible versions (compact strings and arrays, tagged fields): the request header
 * gains tagged fields after the client id, which kafkajs does not write, so each body starts with
 * that empty field; the response header gains one after the correlation id, which each decoder
 * reads first. Brokers since 2.5 accept both; Kafka 3.9 and 4.x are tested (test/integration/).
 */
import { kafkajsModule, replaceKafkajsModule } from './kafkajs-patch.js';
// Loading kafkajs's admin below loads its consumer, which captures its runner: patched first.
import './kafkajs-rejoin.js';

/** What TxnOffsetCommit v3 carries about the consumer: the member and the generation it consumed under. */
export interface GroupMetadata {
  generationId: number;
  memberId: string;
}

interface KafkaEncoder {
  writeInt8(v: number): KafkaEncoder;
  writeInt16(v: number): KafkaEncoder;
  writeInt32(v: number): KafkaEncoder;
  writeInt64(v: string | number): KafkaEncoder;
  writeBoolean(v: boolean): KafkaEncoder;
  writeUVarInt(v: number): KafkaEncoder;
  writeUVarIntString(v: string | null): KafkaEncoder;
  writeUVarIntArray(v: KafkaEncoder[], type: 'object'): KafkaEncoder;
  buffer: Buffer;
}
interface KafkaDecoder {
  readInt16(): number;
  readInt32(): number;
  readInt64(): { toString(): string };
  readUVarInt(): number;
  readUVarIntString(): string | null;
  readUVarIntArray<T>(reader: (d: KafkaDecoder) => T): T[] | null;
  readTaggedFields(): unknown;
}
type EncoderClass = new () => KafkaEncoder;
type DecoderClass = new (buffer: Buffer) => KafkaDecoder;
interface ProtocolErrors {
  failure(code: number): boolean;
  createErrorFromCode(code: number): Error;
}

const Encoder = kafkajsModule<EncoderClass>('protocol/encoder.js');
const Decoder = kafkajsModule<DecoderClass>('protocol/decoder.js');
const { failure, createErrorFromCode } = kafkajsModule<ProtocolErrors>('protocol/error.js');
const apiKeys = kafkajsModule<Record<string, number>>('protocol/requests/apiKeys.js');
const TXN_OFFSET_COMMIT = apiKeys.TxnOffsetCommit as number;
const OFFSET_FETCH = apiKeys.OffsetFetch as number;

/** A kafkajs protocol request as Broker's private send takes it. */
interface ProtocolRequest {
  request: { apiKey: number; apiVersion: number; apiName: string; encode(): Promise<KafkaEncoder> };
  response: { decode(raw: Buffer): Promise<unknown>; parse(data: unknown): Promise<unknown> };
}

// ---------------------------------------------------------------- 1. the generation in GROUP_JOIN
// (first: loading kafkajs's admin below loads its consumer, which captures the consumer group)

interface Emitter {
  emit(eventName: string, payload: unknown): unknown;
}
type ConsumerGroupClass = new (options: { instrumentationEmitter: Emitter; [option: string]: unknown }) => { generationId: number | null; instrumentationEmitter: Emitter };

const ConsumerGroup = kafkajsModule<ConsumerGroupClass>('consumer/consumerGroup.js');
const GROUP_JOIN = (kafkajsModule<{ events: { GROUP_JOIN: string } }>('consumer/instrumentationEvents.js')).events.GROUP_JOIN;
/** The consumer group an emitter speaks for now (kafkajs makes a new one on every consumer restart, same emitter). */
const currentGroup = new WeakMap<Emitter, { generationId: number | null }>();

class ConsumerGroupWithGeneration extends ConsumerGroup {
  constructor(options: ConstructorParameters<ConsumerGroupClass>[0]) {
    super(options);
    const emitter = this.instrumentationEmitter;
    if (!currentGroup.has(emitter)) {
      const emit = emitter.emit.bind(emitter);
      emitter.emit = (eventName, payload) => emit(eventName, eventName === GROUP_JOIN ? { ...(payload as object), generationId: currentGroup.get(emitter)?.generationId ?? -1 } : payload);
    }
    currentGroup.set(emitter, this);
  }
}
replaceKafkajsModule('consumer/consumerGroup.js', ['consumer/index.js'], ConsumerGroupWithGeneration);

// ---------------------------------------------------------------- 2. TxnOffsetCommit v3

export interface TxnOffsetCommitArgs {
  transactionalId: string;
  groupId: string;
  producerId: number | string;
  producerEpoch: number;
  topics: { topic: string; partitions: { partition: number; offset: string; metadata?: string | null }[] }[];
}

const groupMetadataOf = new WeakMap<object, GroupMetadata>();

/** `topics` as transaction.sendOffsets takes it, sent as TxnOffsetCommit v3 with this group metadata. */
export function withGroupMetadata<T extends TxnOffsetCommitArgs['topics']>(topics: T, group: GroupMetadata): T {
  groupMetadataOf.set(topics, group);
  return topics;
}

const taggedEnd = (e: KafkaEncoder): KafkaEncoder => e.writeUVarInt(0);

export function txnOffsetCommitV3(args: TxnOffsetCommitArgs & GroupMetadata): ProtocolRequest {
  return {
    request: {
      apiKey: TXN_OFFSET_COMMIT,
      apiVersion: 3,
      apiName: 'TxnOffsetCommit',
      encode: async () => {
        const topics = args.topics.map(({ topic, partitions }) =>
          taggedEnd(
            new Encoder().writeUVarIntString(topic).writeUVarIntArray(
              partitions.map((p) => taggedEnd(new Encoder().writeInt32(p.partition).writeInt64(p.offset).writeInt32(-1).writeUVarIntString(p.metadata ?? null))),
              'object',
            ),
          ),
        );
        const body = new Encoder()
          .writeUVarInt(0) // request header v2: its tagged fields (kafkajs wrote the rest of the header)
          .writeUVarIntString(args.transactionalId)
          .writeUVarIntString(args.groupId)
          .writeInt64(String(args.producerId))
          .writeInt16(args.producerEpoch)
          .writeInt32(args.generationId)
          .writeUVarIntString(args.memberId)
          .writeUVarIntString(null) // group instance id: kafkajs has no static membership
          .writeUVarIntArray(topics, 'object');
        return taggedEnd(body);
      },
    },
    response: {
      decode: async (raw) => {
        const d = new Decoder(raw);
        d.readTaggedFields(); // response header v1
        const throttleTime = d.readInt32();
        const topics = d.readUVarIntArray((t) => {
          const topic = t.readUVarIntString();
          const partitions = t.readUVarIntArray((p) => {
            const partition = p.readInt32();
            const errorCode = p.readInt16();
            p.readTaggedFields();
            return { partition, errorCode };
          }) ?? [];
          t.readTaggedFields();
          return { topic, partitions };
        }) ?? [];
        return { throttleTime, topics };
      },
      parse: async (data) => {
        const { topics } = data as { topics: { partitions: { errorCode: number }[] }[] };
        for (const { partitions } of topics) for (const { errorCode } of partitions) if (failure(errorCode)) throw createErrorFromCode(errorCode);
        return data;
      },
    },
  };
}

// ---------------------------------------------------------------- 3. OffsetFetch v7, require_stable

export interface StableOffsetsArgs {
  groupId: string;
  topic: string;
  partitions: number[];
}
/** Committed offsets, -1 where none; a partition with an open transaction's offsets throws UNSTABLE_OFFSET_COMMIT. */
export type StableOffsets = Map<number, { offset: bigint; metadata: string | null }>;

export function offsetFetchStableV7({ groupId, topic, partitions }: StableOffsetsArgs): ProtocolRequest {
  return {
    request: {
      apiKey: OFFSET_FETCH,
      apiVersion: 7,
      apiName: 'OffsetFetch',
      encode: async () => {
        const t = new Encoder().writeUVarIntString(topic).writeUVarInt(partitions.length + 1);
        for (const p of partitions) t.writeInt32(p);
        taggedEnd(t);
        const body = new Encoder()
          .writeUVarInt(0) // request header v2 tagged fields
          .writeUVarIntString(groupId)
          .writeUVarIntArray([t], 'object')
          .writeBoolean(true); // require_stable
        return taggedEnd(body);
      },
    },
    response: {
      decode: async (raw) => {
        const d = new Decoder(raw);
        d.readTaggedFields();
        d.readInt32(); // throttle time
        const offsets: { partition: number; offset: bigint; metadata: string | null; errorCode: number }[] = [];
        d.readUVarIntArray((t) => {
          t.readUVarIntString();
          t.readUVarIntArray((p) => {
            const partition = p.readInt32();
            const offset = BigInt(p.readInt64().toString());
            p.readInt32(); // committed leader epoch
            const metadata = p.readUVarIntString();
            const errorCode = p.readInt16();
            p.readTaggedFields();
            offsets.push({ partition, offset, metadata, errorCode });
          });
          t.readTaggedFields();
        });
        const errorCode = d.readInt16();
        return { errorCode, offsets };
      },
      parse: async (data) => {
        const { errorCode, offsets } = data as { errorCode: number; offsets: { partition: number; offset: bigint; metadata: string | null; errorCode: number }[] };
        if (failure(errorCode)) throw createErrorFromCode(errorCode);
        const result: StableOffsets = new Map();
        for (const o of offsets) {
          if (failure(o.errorCode)) throw createErrorFromCode(o.errorCode);
          result.set(o.partition, { offset: o.offset, metadata: o.metadata });
        }
        return result;
      },
    },
  };
}

// ---------------------------------------------------------------- the Broker and admin patches

interface KafkajsBroker {
  versions: Record<number, { minVersion: number; maxVersion: number }> | null;
  txnOffsetCommit(args: TxnOffsetCommitArgs): Promise<unknown>;
}
interface BrokerClass {
  prototype: KafkajsBroker & Record<symbol, (request: ProtocolRequest) => Promise<unknown>>;
}
const Broker = kafkajsModule<BrokerClass>('broker/index.js');
const sendRequest = Object.getOwnPropertySymbols(Broker.prototype).find((s) => s.description === 'private:Broker:sendRequest');
if (sendRequest === undefined) throw new Error('kafkajs patch (kafkajs-kip447.ts): Broker has no private sendRequest method');
const SEND = sendRequest;

/** Throws unless the broker answers the request's API at its version or above (it told in ApiVersions). */
function requireVersion(broker: KafkajsBroker, { request }: ProtocolRequest): void {
  const max = broker.versions?.[request.apiKey]?.maxVersion;
  if (max === undefined || max < request.apiVersion) {
    throw Object.assign(new Error(`EOS_MODE=v2 needs ${request.apiName} v${request.apiVersion} (Kafka 2.5 or later); this broker answers up to v${max ?? '?'}`), { retriable: false, type: 'UNSUPPORTED_VERSION' });
  }
}

const originalTxnOffsetCommit = Broker.prototype.txnOffsetCommit;
Broker.prototype.txnOffsetCommit = async function txnOffsetCommit(this: KafkajsBroker & Record<symbol, (r: ProtocolRequest) => Promise<unknown>>, args: TxnOffsetCommitArgs): Promise<unknown> {
  const group = groupMetadataOf.get(args.topics);
  if (group === undefined) return originalTxnOffsetCommit.call(this, args);
  const request = txnOffsetCommitV3({ ...args, ...group });
  requireVersion(this, request);
  return (this[SEND] as (r: ProtocolRequest) => Promise<unknown>).call(this, request);
};

interface AdminCluster {
  findGroupCoordinator(lookup: { groupId: string }): Promise<KafkajsBroker & Record<symbol, (r: ProtocolRequest) => Promise<unknown>>>;
}
type AdminFactory = (options: { cluster: AdminCluster; [option: string]: unknown }) => object;

/** The kafkajs admin client with `fetchStableOffsets`: OffsetFetch v7, require_stable, from the group's coordinator. */
export interface StableOffsetsAdmin {
  fetchStableOffsets(args: StableOffsetsArgs): Promise<StableOffsets>;
}

const createAdmin = kafkajsModule<AdminFactory>('admin/index.js');
const createStableOffsetsAdmin: AdminFactory = (options) =>
  Object.assign(createAdmin(options), {
    fetchStableOffsets: async (args: StableOffsetsArgs): Promise<StableOffsets> => {
      const coordinator = await options.cluster.findGroupCoordinator({ groupId: args.groupId });
      const request = offsetFetchStableV7(args);
      requireVersion(coordinator, request);
      return (await (coordinator[SEND] as (r: ProtocolRequest) => Promise<unknown>).call(coordinator, request)) as StableOffsets;
    },
  } satisfies StableOffsetsAdmin);
replaceKafkajsModule('admin/index.js', ['index.js'], createStableOffsetsAdmin);

/** `admin` with fetchStableOffsets (every admin made after this module loaded has it). */
export function stableOffsetsAdmin<A extends object>(admin: A): A & StableOffsetsAdmin {
  if (typeof (admin as Partial<StableOffsetsAdmin>).fetchStableOffsets !== 'function') throw new Error('bug: kafkajs admin without fetchStableOffsets (src/kafka/kafkajs-fix.ts must load before kafkajs)');
  return admin as A & StableOffsetsAdmin;
}

/** The group metadata registered for `topics` (undefined: kafkajs's own v0/v1 request). */
export const groupMetadataFor = (topics: object): GroupMetadata | undefined => groupMetadataOf.get(topics);
