/**
 * Produce stage: one transactional producer per input partition, and one transaction per
 * processed chunk of that partition (scored events + dead letters + the input offset, then commit).
 *
 * Why one producer per partition (DESIGN.md): kafkajs 2.2.4 sends TxnOffsetCommit v0/v1, without
 * the group generation (no KIP-447 fencing), so a zombie owner of a partition is only fenced
 * through the transactional id: `<prefix>-<group>-<topic>-<partition>`. Initialising a producer
 * (its first, empty transaction) sends InitProducerId, which bumps the epoch, fences the previous
 * owner and completes (aborts or finishes) its open transaction before answering; only then is
 * the committed offset final, so `acquire` reads it afterwards and the pipeline skips below it.
 */
import type { Admin, Message, Producer, ProducerConfig } from 'kafkajs';
import type { Logger } from 'pino';
import { ScorerError, isBug } from '../errors.js';
import { authorizationFailure, kafkaErrorType, notAuthorized } from '../kafka/access.js';

export interface PartitionLease {
  partition: number;
  /** Next offset to read: everything below it is already in the output or dead-letter topic. */
  committedOffset: bigint | undefined;
}

export interface ChunkCommit {
  partition: number;
  outputs: { topic: string; messages: Message[] }[];
  /** Offset of the next record to read (last processed + 1). */
  nextOffset: bigint;
  /** Committed with the offset (a backfill keeps its range there: src/serve/backfill/plan.ts). */
  metadata?: string;
}

/**
 * Most bytes and messages per sendBatch. Every output of a chunk keeps its input key, so a whole
 * chunk can land in one output partition; kafkajs writes that as one record batch, and a batch
 * over the broker's message.max.bytes (1 MiB by default) fails with MESSAGE_TOO_LARGE, again on
 * every retry. Several sendBatch calls in the same transaction keep each batch small.
 */
const SLICE_BYTES = 512 * 1024;
const SLICE_MESSAGES = 1_000;
const MESSAGE_OVERHEAD_BYTES = 64;

const sizeOf = (v: Message['key'] | Message['value']): number => (v === null || v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);

/** Cuts the outputs into sendBatch-sized slices (each a topicMessages list), in order. */
export function sendSlices(outputs: { topic: string; messages: Message[] }[]): { topic: string; messages: Message[] }[][] {
  const slices: { topic: string; messages: Message[] }[][] = [];
  let current: { topic: string; messages: Message[] }[] = [];
  let bytes = 0;
  let count = 0;
  for (const { topic, messages } of outputs) {
    let run: Message[] | undefined;
    for (const m of messages) {
      const size = sizeOf(m.key) + sizeOf(m.value) + MESSAGE_OVERHEAD_BYTES;
      if (count > 0 && (bytes + size > SLICE_BYTES || count >= SLICE_MESSAGES)) {
        slices.push(current);
        current = [];
        bytes = 0;
        count = 0;
        run = undefined;
      }
      if (run === undefined) {
        run = [];
        current.push({ topic, messages: run });
      }
      run.push(m);
      bytes += size;
      count += 1;
    }
  }
  if (count > 0) slices.push(current);
  return slices;
}

/** Told of every transaction's end: committed, with its duration in seconds (first request to the commit's answer), or aborted. */
export type TransactionListener = (result: 'committed' | 'aborted', seconds?: number) => void;

/** A transaction as kafkajs hands it out. */
type Transaction = Awaited<ReturnType<TransactionalProducer['transaction']>>;

/** A transaction's steps, for its failure's message: the output topics are named when the send failed. */
export type TransactionStep = 'begin' | 'send' | 'offsets' | 'commit';

/**
 * Fills and commits one transaction: the records (AddPartitionsToTxn, Produce), then the input
 * offsets (AddOffsetsToTxn, TxnOffsetCommit), then the commit (EndTxn); `at.step` names the step
 * that failed. Returns the seconds from the first request to the commit's answer. One after the
 * other, not side by side as the Java producer sends them: sent together with the records,
 * AddOffsetsToTxn met CONCURRENT_TRANSACTIONS while the previous transaction's markers were still
 * being written, and back-to-back transactions failed and were redone (bench/README.md phase G);
 * sent once AddPartitionsToTxn had answered, beside the Produce, it gained nothing on one broker,
 * which handles one request per connection at a time (phase H).
 */
export async function fillAndCommit(tx: Transaction, outputs: ChunkCommit['outputs'], offsets: Parameters<Transaction['sendOffsets']>[0], at: { step: TransactionStep }): Promise<number> {
  const began = performance.now();
  at.step = 'send';
  for (const topicMessages of sendSlices(outputs)) await tx.sendBatch({ topicMessages });
  at.step = 'offsets';
  await tx.sendOffsets(offsets);
  at.step = 'commit';
  await tx.commit();
  return (performance.now() - began) / 1000;
}

/** kafkajs error names meaning this producer can never be used again. */
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED is a missing ACL, reported as one by transactionFailure, not a fencing.)
const FATAL_PRODUCER_ERRORS = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING']);

/**
 * kafkajs error names after which the producer's sequence numbers are out of step with the
 * broker's, which kafkajs 2.2.4 never repairs: every later transaction of that producer fails the
 * same way. Seen after a broker failover (the new partition leader rejects the next sequence).
 * The producer is dropped; the next chunk initialises a new one (InitProducerId bumps the epoch,
 * resets the sequences and completes the open transaction) and re-reads the committed offset.
 */
export const BROKEN_PRODUCER_ERRORS = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID']);

/** What the chunk processor needs from the produce stage: commit one chunk, all or nothing. */
export interface ChunkCommitter {
  /**
   * One transaction: every output message, then the input offset, then commit (fillAndCommit).
   * On failure the transaction is aborted, the producer dropped (the next acquire makes a new
   * one, with a new epoch) and a ScorerError is thrown: TRANSACTION_FAILED (transient: acquire
   * again and read the chunk again) or PRODUCER_FENCED.
   */
  commit(chunk: ChunkCommit): Promise<void>;
}

/** A group assignment as the consumer joined it (GROUP_JOIN, with the generation: src/kafka/kafkajs-kip447.ts). */
export interface GroupAssignment {
  generationId: number;
  memberId: string;
  partitions: number[];
}

/** What the consume stage needs: a fenced producer per owned partition, and its committed offset. */
export interface PartitionLeases {
  has(partition: number): boolean;
  /** Told every assignment before its partitions are fetched (EOS v2 commits offsets under its generation). */
  assigned?(assignment: GroupAssignment): void;
  /** Creates and initialises (fences) the partition's producer, then reads its committed offset. */
  acquire(partition: number): Promise<PartitionLease>;
  release(partition: number): Promise<void>;
  releaseAll(): Promise<void>;
}

/** The parts of a kafkajs producer this stage uses (a test passes a fake). */
export type TransactionalProducer = Pick<Producer, 'connect' | 'disconnect' | 'transaction'>;

export interface PartitionProducersOptions {
  /** Makes the producers (a kafkajs Kafka, or a fake). */
  kafka: { producer(config: ProducerConfig): TransactionalProducer };
  /** Reads committed offsets (a kafkajs Admin, or a fake). */
  admin: Pick<Admin, 'fetchOffsets'>;
  groupId: string;
  inputTopic: string;
  transactionalIdPrefix: string;
  transactionTimeoutMs: number;
  /** kafkajs producer retry for one request (CONCURRENT_TRANSACTIONS after a back-to-back commit). */
  retry: { initialRetryTime: number; retries: number; maxRetryTime: number };
  logger: Logger;
  onTransaction: TransactionListener;
  /** Who the broker sees (kafka/access.ts `principalOf`), for a missing-ACL message. */
  principal?: string;
}

export class PartitionProducers implements ChunkCommitter, PartitionLeases {
  readonly #opts: PartitionProducersOptions;
  readonly #log: Logger;
  readonly #producers = new Map<number, TransactionalProducer>();
  readonly #connecting = new Map<number, Promise<TransactionalProducer>>();

  constructor(opts: PartitionProducersOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  transactionalId(partition: number): string {
    const { transactionalIdPrefix, groupId, inputTopic } = this.#opts;
    return `${transactionalIdPrefix}-${groupId}-${inputTopic}-${partition}`;
  }

  has(partition: number): boolean {
    return this.#producers.has(partition);
  }

  async acquire(partition: number): Promise<PartitionLease> {
    let pending = this.#connecting.get(partition);
    if (pending === undefined) {
      pending = this.#connect(partition).finally(() => this.#connecting.delete(partition));
      this.#connecting.set(partition, pending);
    }
    await pending;
    const committedOffset = await this.committedOffset(partition);
    this.#log.info({ partition, transactionalId: this.transactionalId(partition), committedOffset: committedOffset?.toString() ?? null }, 'partition producer initialised (previous owner fenced)');
    return { partition, committedOffset };
  }

  async #connect(partition: number): Promise<TransactionalProducer> {
    await this.release(partition);
    const { kafka, transactionTimeoutMs, retry, transactionalIdPrefix, principal } = this.#opts;
    const producer = await initialiseProducer(kafka, {
      transactionalId: this.transactionalId(partition),
      transactionTimeoutMs,
      retry,
      transactionalIdPrefix,
      action: `initialising the transactional producer for partition ${partition}`,
      ...(principal !== undefined && { principal }),
    });
    this.#producers.set(partition, producer);
    return producer;
  }

  async committedOffset(partition: number): Promise<bigint | undefined> {
    try {
      const { groupId, inputTopic } = this.#opts;
      const [topicOffsets] = await this.#opts.admin.fetchOffsets({ groupId, topics: [inputTopic] });
      const entry = topicOffsets?.partitions.find((p) => p.partition === partition);
      return entry === undefined || entry.offset === '-1' ? undefined : BigInt(entry.offset);
    } catch (err) {
      throw new ScorerError('KAFKA_UNAVAILABLE', `reading the committed offset of partition ${partition} failed`, { cause: err });
    }
  }

  async commit({ partition, outputs, nextOffset, metadata }: ChunkCommit): Promise<void> {
    const producer = this.#producers.get(partition);
    if (producer === undefined) throw new ScorerError('PRODUCER_FENCED', `no producer for partition ${partition} (not acquired or dropped)`);
    const tx = await producer.transaction().catch((err: unknown) => {
      throw this.#failed(partition, err, 'beginning the transaction');
    });
    const at = { step: 'send' as TransactionStep };
    try {
      const seconds = await fillAndCommit(tx, outputs, { consumerGroupId: this.#opts.groupId, topics: [{ topic: this.#opts.inputTopic, partitions: [{ partition, offset: nextOffset.toString(), ...(metadata !== undefined && { metadata }) }] }] }, at);
      this.#opts.onTransaction('committed', seconds);
    } catch (err) {
      if (isBug(err)) throw err;
      const failure = this.#failed(partition, err, 'the transaction', at.step === 'send' ? [...new Set(outputs.map((o) => o.topic))] : []);
      if (failure.code === 'PRODUCER_FENCED') throw failure; // #failed dropped it
      const type = kafkaErrorType(err);
      if (type !== undefined && BROKEN_PRODUCER_ERRORS.has(type)) {
        this.#log.warn({ partition, type }, 'producer out of sequence with the broker; dropping it (the next chunk re-initialises it)');
      } else {
        // End the transaction now: its markers are written while the partition backs off.
        await tx.abort().then(
          () => this.#opts.onTransaction('aborted'),
          (abortErr: unknown) => this.#log.warn({ partition, err: abortErr }, 'abort failed (the next producer\'s initialisation aborts the transaction)'),
        );
      }
      // Never reuse a producer after a failed transaction. A batch whose request failed may have
      // been written all the same (a timeout, an answer lost with a broker); kafkajs then sends the
      // retry's batch with the same sequence numbers and epoch, and the broker, taking it for a
      // duplicate of the aborted one, acknowledges it without writing it: records lost from a
      // transaction that commits. A new producer (InitProducerId) bumps the epoch, which resets
      // the sequences, as the Java client does after such an error (KIP-360).
      await this.release(partition);
      throw failure;
    }
  }

  #failed(partition: number, err: unknown, what: string, topics: string[] = []): ScorerError {
    const failure = transactionFailure(err, {
      what: `${what} for partition ${partition}`,
      topics,
      groupId: this.#opts.groupId,
      transactionalId: this.transactionalId(partition),
      fenced: `another instance owns ${this.transactionalId(partition)}`,
      ...(this.#opts.principal !== undefined && { principal: this.#opts.principal }),
    });
    if (failure.code === 'PRODUCER_FENCED') void this.release(partition);
    return failure;
  }

  async release(partition: number): Promise<void> {
    const producer = this.#producers.get(partition);
    this.#producers.delete(partition);
    if (producer !== undefined) await producer.disconnect().catch((err: unknown) => this.#log.warn({ partition, err }, 'producer disconnect failed'));
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.#producers.keys()].map((p) => this.release(p)));
  }
}

export interface FailureContext {
  /** What failed, for the message: "the transaction for partition 3". */
  what: string;
  /** Output topics the transaction wrote to (for a refused Write), [] after the send step. */
  topics: string[];
  groupId: string;
  transactionalId: string;
  /** Why a fenced producer was fenced, for the message. */
  fenced: string;
  principal?: string;
}

/**
 * A failed transaction step as the consume stage handles it: a missing ACL (KAFKA_NOT_AUTHORIZED,
 * fatal), a fenced producer (PRODUCER_FENCED: the partition is re-acquired) or anything else
 * (TRANSACTION_FAILED: transient, the chunk is read again).
 */
export function transactionFailure(err: unknown, ctx: FailureContext): ScorerError {
  const denied = authorizationFailure(err);
  if (denied !== undefined) {
    const { topics } = ctx;
    const needs =
      denied === 'TOPIC_AUTHORIZATION_FAILED' ? `Write on topic ${topics.map((t) => `'${t}'`).join(' or ') || '(unknown)'} (the transaction wrote to ${topics.length > 1 ? 'these; kafkajs does not say which one refused' : 'it'})`
      : denied === 'GROUP_AUTHORIZATION_FAILED' ? `Read on group '${ctx.groupId}' (committing offsets in the transaction)`
      : denied === 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED' ? `Write on transactional id '${ctx.transactionalId}'`
      : 'the ACL named in the error';
    return notAuthorized(ctx.principal ?? "the scorer's principal", err, { action: ctx.what, needs });
  }
  const type = kafkaErrorType(err);
  if (type !== undefined && FATAL_PRODUCER_ERRORS.has(type)) return new ScorerError('PRODUCER_FENCED', `${ctx.what} failed: ${type} (${ctx.fenced})`, { cause: err });
  return new ScorerError('TRANSACTION_FAILED', `${ctx.what} failed${type ? `: ${type}` : ''}`, { cause: err });
}

export interface ProducerInit {
  transactionalId: string;
  transactionTimeoutMs: number;
  /** kafkajs producer retry for one request (CONCURRENT_TRANSACTIONS after a back-to-back commit). */
  retry: { initialRetryTime: number; retries: number; maxRetryTime: number };
  /** For a missing-ACL message: the prefix a PREFIXED ACL names. */
  transactionalIdPrefix: string;
  /** What is being done, for messages: "initialising the transactional producer for partition 3". */
  action: string;
  principal?: string;
}

/**
 * A transactional producer, connected and initialised. connect() initialises only the idempotent
 * (non-transactional) producer id; the first transaction() sends InitProducerId with the
 * transactional id, which fences an earlier producer with that id and completes its open
 * transaction; the empty transaction is aborted right away. A refusal for want of an ACL is
 * fatal (KAFKA_NOT_AUTHORIZED, naming it); anything else is transient (KAFKA_UNAVAILABLE).
 */
export async function initialiseProducer(kafka: { producer(config: ProducerConfig): TransactionalProducer }, init: ProducerInit): Promise<TransactionalProducer> {
  const producer = kafka.producer({
    transactionalId: init.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: init.transactionTimeoutMs,
    // A back-to-back transaction can meet CONCURRENT_TRANSACTIONS while the previous one's
    // markers are written; kafkajs retries after initialRetryTime, so it is kept short.
    retry: init.retry,
  });
  try {
    await producer.connect();
    const tx = await producer.transaction();
    await tx.abort();
    return producer;
  } catch (err) {
    await producer.disconnect().catch(() => undefined);
    const who = init.principal ?? "the scorer's principal";
    const denied = authorizationFailure(err);
    if (denied === 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED') throw notAuthorized(who, err, { action: init.action, needs: `Write on transactional id '${init.transactionalId}' (e.g. a PREFIXED ACL on '${init.transactionalIdPrefix}-')` });
    if (denied === 'CLUSTER_AUTHORIZATION_FAILED') throw notAuthorized(who, err, { action: init.action, needs: 'IdempotentWrite on the cluster (brokers before 3.0; later ones accept Write on a topic instead)' });
    throw new ScorerError('KAFKA_UNAVAILABLE', `${init.action} failed`, { cause: err });
  }
}
