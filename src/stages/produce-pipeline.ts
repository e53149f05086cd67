/**
 * Produce stage, EOS_MODE=v2: a few transactional producers for the whole pipeline, and one
 * transaction for the chunks of every partition that are ready together (Kafka Streams'
 * exactly_once_v2). Where v1 (produce.ts) runs one transaction per partition per fetch, this runs
 * one per fetch cycle, so the broker writes a fraction of the transaction markers and round trips.
 *
 * Fencing (KIP-447) comes from the consumer group, not from the transactional id: each chunk's
 * offsets are committed with the generation and member id under which its partition was
 * assigned (src/kafka/kafkajs-kip447.ts), and the group coordinator refuses them once the group
 * has moved on, so a zombie's transaction aborts. A new owner reads its starting offset with
 * require_stable: while a previous owner's transaction holds offsets of the partition the broker
 * answers UNSTABLE_OFFSET_COMMIT, and the partition waits until that transaction commits or
 * aborts — at most the transaction timeout if that owner died (the broker then aborts it).
 *
 * Dispatch: a transaction starts as soon as a chunk is ready and no transaction is running;
 * chunks that become ready meanwhile wait and go together into the next one, up to 2,000 records.
 * Another transaction runs beside the first only when that many records wait: a live stream
 * (small chunks) commits in few transactions, a backlog (5,000-record chunks) one per chunk, in
 * parallel, as v1 does.
 *
 * Transactional ids: `<prefix>-<group>-<instance>-<pipeline>-<slot>`, one per producer slot. The
 * instance (EOS_INSTANCE_ID, default `<hostname>-<pid>`) must differ between live processes; a
 * process restarted with the same one (a container restarted in its pod: same hostname, pid 1)
 * fences its previous self at once instead of waiting for its transactions to time out.
 */
import type { ProducerConfig } from 'kafkajs';
import type { Logger } from 'pino';
import { ScorerError, isBug } from '../errors.js';
import { authorizationFailure, kafkaErrorType, notAuthorized } from '../kafka/access.js';
import { type GroupMetadata, type StableOffsetsAdmin, withGroupMetadata } from '../kafka/kafkajs-kip447.js';
import { backoffDelay } from '../retry.js';
import { BROKEN_PRODUCER_ERRORS, type ChunkCommit, type ChunkCommitter, type GroupAssignment, type PartitionLease, type PartitionLeases, type TransactionListener, type TransactionStep, type TransactionalProducer, fillAndCommit, initialiseProducer, transactionFailure } from './produce.js';

/** Offset-commit refusals meaning the group moved on: the partition is no longer ours under that generation. */
const GROUP_FENCING_ERRORS = new Set(['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID']);

export interface PipelineProducersOptions {
  kafka: { producer(config: ProducerConfig): TransactionalProducer };
  admin: StableOffsetsAdmin;
  groupId: string;
  inputTopic: string;
  /** `<prefix>-<group>-<instance>-<pipeline>`; each slot adds `-<slot>`. */
  transactionalIdBase: string;
  /** TRANSACTIONAL_ID_PREFIX (for a missing-ACL message). */
  transactionalIdPrefix: string;
  transactionTimeoutMs: number;
  retry: { initialRetryTime: number; retries: number; maxRetryTime: number };
  /** Producers, i.e. transactions in flight at once. */
  slots: number;
  /** Records waiting before a transaction starts beside a running one. */
  parallelRecords: number;
  logger: Logger;
  onTransaction: TransactionListener;
  principal?: string;
}

interface Waiting {
  chunk: ChunkCommit;
  group: GroupMetadata;
  records: number;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * The outputs of several chunks, one entry per topic: a produce request must not name a
 * partition twice (kafkajs would send each entry as its own record batch of the same partition).
 */
function byTopic(batch: readonly Waiting[]): ChunkCommit['outputs'] {
  if (batch.length === 1) return (batch[0] as Waiting).chunk.outputs; // a chunk names each topic once
  const topics = new Map<string, ChunkCommit['outputs'][number]['messages']>();
  for (const { chunk } of batch) {
    for (const { topic, messages } of chunk.outputs) {
      const list = topics.get(topic);
      if (list === undefined) topics.set(topic, [...messages]);
      else for (const m of messages) list.push(m);
    }
  }
  return [...topics].map(([topic, messages]) => ({ topic, messages }));
}

export class PipelineProducers implements ChunkCommitter, PartitionLeases {
  readonly #opts: PipelineProducersOptions;
  readonly #log: Logger;
  /** Partition -> the group metadata it was acquired (or kept) under. */
  readonly #leases = new Map<number, GroupMetadata>();
  #group: GroupMetadata | undefined;
  /** Idle initialised producers, by slot. */
  readonly #idle = new Map<number, TransactionalProducer>();
  /** Slots being (re)initialised: acquire waits for them, since their last transaction may still hold offsets. */
  readonly #initialising = new Map<number, Promise<void>>();
  /** Slots whose producer is in a transaction. */
  readonly #busy = new Set<number>();
  #waiting: Waiting[] = [];
  #waitingRecords = 0;
  #scheduled = false;
  #closed = false;

  constructor(opts: PipelineProducersOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  transactionalId(slot: number): string {
    return `${this.#opts.transactionalIdBase}-${slot}`;
  }

  has(partition: number): boolean {
    return this.#leases.has(partition);
  }

  /**
   * A partition kept from the generation just before, by the same member, was ours throughout:
   * nobody else committed it, so its lease moves to the new generation. After a gap (this member
   * was dropped from the group, a frozen zombie that rejoined: a new member id, or generations
   * it never saw) another member may have owned it meanwhile, and may still have a transaction
   * open on it: every lease goes, and each partition re-reads its stable offset.
   */
  assigned({ generationId, memberId, partitions }: GroupAssignment): void {
    const previous = this.#group;
    this.#group = { generationId, memberId };
    const continuous = previous !== undefined && previous.memberId === memberId && generationId === previous.generationId + 1;
    const kept = new Set(continuous ? partitions : []);
    for (const p of [...this.#leases.keys()]) {
      if (kept.has(p)) this.#leases.set(p, this.#group);
      else this.#leases.delete(p);
    }
  }

  async acquire(partition: number): Promise<PartitionLease> {
    const group = this.#group;
    if (group === undefined) throw new ScorerError('KAFKA_UNAVAILABLE', `partition ${partition} fetched before the group assignment was seen`);
    await this.#ensureSlots();
    const committedOffset = await this.#stableOffset(partition);
    this.#leases.set(partition, group);
    this.#log.info({ partition, generationId: group.generationId, committedOffset: committedOffset?.toString() ?? null }, 'partition acquired (stable committed offset read)');
    return { partition, committedOffset };
  }

  /**
   * Every slot with a producer, initialised where missing (at start, after a failed transaction
   * or a failed initialisation). InitProducerId completes whatever a previous producer with the
   * slot's id left open, so a partition is read only after every slot is initialised.
   */
  async #ensureSlots(): Promise<void> {
    for (let slot = 0; slot < this.#opts.slots; slot++) {
      if (!this.#idle.has(slot) && !this.#busy.has(slot) && !this.#initialising.has(slot)) this.#initialise(slot);
    }
    await Promise.all(this.#initialising.values());
  }

  #initialise(slot: number): void {
    const pending = this.#connect(slot)
      .then((producer) => {
        if (this.#closed) return void producer.disconnect().catch(() => undefined);
        this.#idle.set(slot, producer);
      })
      .finally(() => {
        this.#initialising.delete(slot);
        this.#schedule();
      });
    this.#initialising.set(slot, pending);
    pending.catch(() => undefined); // acquire awaits it and reports the failure; the slot is tried again by the next acquire
  }

  #connect(slot: number): Promise<TransactionalProducer> {
    const { kafka, transactionTimeoutMs, retry, transactionalIdPrefix, principal } = this.#opts;
    const transactionalId = this.transactionalId(slot);
    return initialiseProducer(kafka, { transactionalId, transactionTimeoutMs, retry, transactionalIdPrefix, action: `initialising transactional producer ${transactionalId}`, ...(principal !== undefined && { principal }) });
  }

  /**
   * The committed offset, once no open transaction holds one for the partition. Waits (with
   * backoff) through UNSTABLE_OFFSET_COMMIT for up to the transaction timeout and a margin for
   * the broker's abort of a dead producer's transaction; then a transient failure (the
   * partition backs off and tries again).
   */
  async #stableOffset(partition: number): Promise<bigint | undefined> {
    const { groupId, inputTopic: topic } = this.#opts;
    const deadline = Date.now() + this.#opts.transactionTimeoutMs + 20_000;
    for (let attempt = 1; ; attempt++) {
      try {
        const offsets = await this.#opts.admin.fetchStableOffsets({ groupId, topic, partitions: [partition] });
        const offset = offsets.get(partition)?.offset;
        return offset === undefined || offset < 0n ? undefined : offset;
      } catch (err) {
        const denied = authorizationFailure(err);
        if (denied !== undefined) throw notAuthorized(this.#opts.principal ?? "the scorer's principal", err, { action: `reading the committed offset of partition ${partition}`, needs: `Describe on group '${groupId}'` });
        const unstable = kafkaErrorType(err) === 'UNSTABLE_OFFSET_COMMIT';
        if (!unstable || Date.now() > deadline) {
          throw new ScorerError('KAFKA_UNAVAILABLE', `reading the committed offset of partition ${partition} failed${unstable ? ': a transaction holding its offsets is still open' : ''}`, { cause: err });
        }
        if (attempt === 1) this.#log.info({ partition }, 'partition waits for an open transaction of its previous owner to end (UNSTABLE_OFFSET_COMMIT)');
        await new Promise((r) => setTimeout(r, backoffDelay(attempt, { initialDelayMs: 50, maxDelayMs: 1_000 })));
      }
    }
  }

  commit(chunk: ChunkCommit): Promise<void> {
    const group = this.#leases.get(chunk.partition);
    if (group === undefined) return Promise.reject(new ScorerError('PRODUCER_FENCED', `partition ${chunk.partition} is not this pipeline's any more (revoked, or dropped after a failed transaction)`));
    const records = chunk.outputs.reduce((n, o) => n + o.messages.length, 0);
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ chunk, group, records, resolve, reject });
      this.#waitingRecords += records;
      this.#schedule();
    });
  }

  /** Dispatch after the current tick, so chunks finishing together (one inference batch) share a transaction. */
  #schedule(): void {
    if (this.#scheduled || this.#waiting.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    if (this.#idle.size === 0 && this.#busy.size === 0 && this.#initialising.size === 0 && this.#waiting.length > 0) {
      // Every producer lost (their initialisation failed: the broker is away): fail the waiting
      // chunks; their partitions back off and are acquired again, which re-initialises the slots.
      const failure = new ScorerError('TRANSACTION_FAILED', 'no transactional producer available (re-initialising them failed)');
      for (const w of this.#waiting.splice(0)) {
        this.#leases.delete(w.chunk.partition);
        w.reject(failure);
      }
      this.#waitingRecords = 0;
      return;
    }
    while (this.#waiting.length > 0 && this.#idle.size > 0 && (this.#busy.size === 0 || this.#waitingRecords >= this.#opts.parallelRecords)) {
      const [slot, producer] = this.#idle.entries().next().value as [number, TransactionalProducer];
      this.#idle.delete(slot);
      this.#busy.add(slot);
      const batch = this.#take();
      void this.#transaction(slot, producer, batch).finally(() => {
        this.#busy.delete(slot);
        this.#schedule();
      });
    }
  }

  /**
   * The next transaction's chunks, in arrival order: of one generation (after a rebalance, chunks
   * of the old one may still wait), and no more once they hold `parallelRecords` records: big
   * chunks (a backlog) are not worth merging and leave the rest to the other slots.
   */
  #take(): Waiting[] {
    const { generationId } = (this.#waiting[0] as Waiting).group;
    const batch: Waiting[] = [];
    const left: Waiting[] = [];
    let records = 0;
    for (const w of this.#waiting) {
      if (w.group.generationId === generationId && records < this.#opts.parallelRecords) {
        batch.push(w);
        records += w.records;
      } else left.push(w);
    }
    this.#waiting = left;
    this.#waitingRecords -= records;
    return batch;
  }

  async #transaction(slot: number, producer: TransactionalProducer, batch: Waiting[]): Promise<void> {
    const group = (batch[0] as Waiting).group;
    const partitions = batch.map((w) => w.chunk.partition);
    const at: { step: TransactionStep } = { step: 'begin' };
    let tx: Awaited<ReturnType<TransactionalProducer['transaction']>> | undefined;
    let seconds: number;
    try {
      tx = await producer.transaction();
      const offsets = batch.map(({ chunk: c }) => ({ partition: c.partition, offset: c.nextOffset.toString(), ...(c.metadata !== undefined && { metadata: c.metadata }) }));
      seconds = await fillAndCommit(tx, byTopic(batch), { consumerGroupId: this.#opts.groupId, topics: withGroupMetadata([{ topic: this.#opts.inputTopic, partitions: offsets }], group) }, at);
    } catch (err) {
      if (isBug(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      const failure = await this.#failed(slot, producer, tx, err, at.step, batch, group);
      for (const w of batch) w.reject(failure);
      return;
    }
    this.#opts.onTransaction('committed', seconds);
    this.#idle.set(slot, producer);
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ slot, partitions, records: batch.reduce((n, w) => n + w.records, 0) }, 'transaction committed');
    for (const w of batch) w.resolve();
  }

  /**
   * After a failed transaction: aborted (unless the producer is out of sequence), the producer
   * replaced (never reused after a failure: produce.ts explains why), and every partition of it
   * dropped, so each is acquired again and re-reads its stable committed offset — the commit may
   * have landed although its answer was lost.
   */
  async #failed(slot: number, producer: TransactionalProducer, tx: { abort(): Promise<unknown> } | undefined, err: unknown, step: string, batch: Waiting[], group: GroupMetadata): Promise<ScorerError> {
    const partitions = batch.map((w) => w.chunk.partition);
    const type = kafkaErrorType(err);
    const what = `the transaction for partitions ${partitions.join(',')}`;
    let failure: ScorerError;
    if (type !== undefined && GROUP_FENCING_ERRORS.has(type)) {
      failure = new ScorerError('PRODUCER_FENCED', `${what} failed: ${type} (the group moved on from generation ${group.generationId}: the partitions are re-acquired)`, { cause: err });
    } else {
      failure = transactionFailure(err, {
        what,
        topics: step === 'send' ? [...new Set(batch.flatMap((w) => w.chunk.outputs.map((o) => o.topic)))] : [],
        groupId: this.#opts.groupId,
        transactionalId: this.transactionalId(slot),
        fenced: `another live process uses transactional id ${this.transactionalId(slot)}: EOS_INSTANCE_ID must differ between processes`,
        ...(this.#opts.principal !== undefined && { principal: this.#opts.principal }),
      });
    }
    if (failure.code === 'PRODUCER_FENCED' && type !== undefined && !GROUP_FENCING_ERRORS.has(type)) this.#log.error({ slot, type }, failure.message);
    if (tx !== undefined && failure.code !== 'KAFKA_NOT_AUTHORIZED' && !(type !== undefined && BROKEN_PRODUCER_ERRORS.has(type))) {
      await tx.abort().then(
        () => this.#opts.onTransaction('aborted'),
        (abortErr: unknown) => this.#log.warn({ slot, err: abortErr }, 'abort failed (re-initialising the producer aborts the transaction)'),
      );
    }
    for (const p of partitions) this.#leases.delete(p);
    await producer.disconnect().catch((e: unknown) => this.#log.warn({ slot, err: e }, 'producer disconnect failed'));
    if (!this.#closed) this.#initialise(slot);
    return failure;
  }

  async release(partition: number): Promise<void> {
    this.#leases.delete(partition);
  }

  async releaseAll(): Promise<void> {
    this.#closed = true;
    this.#leases.clear();
    await Promise.all(this.#initialising.values()).catch(() => undefined);
    const idle = [...this.#idle.values()];
    this.#idle.clear();
    await Promise.all(idle.map((p) => p.disconnect().catch((err: unknown) => this.#log.warn({ err }, 'producer disconnect failed'))));
  }
}
