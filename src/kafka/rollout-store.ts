/**
 * The canary guard's decisions, kept in a compacted topic `<TRANSACTIONAL_ID_PREFIX>-rollout`
 * (one partition) so that they survive restarts and reach every instance of the group:
 *   - the instance that decides writes the record (an idempotent producer, acks=all);
 *   - every instance reads the topic from the beginning at start, up to the end offsets it saw
 *     when it started, before it serves (so a rolled-back canary gets no traffic after a
 *     restart), and keeps reading it, so a decision taken elsewhere applies here within a fetch.
 *
 * Key `<group>/<canary key>/<state>/<step>`: one key per point of progress, so compaction never
 * replaces a rollback with a promotion written concurrently by another instance; readers merge
 * what they read (mergeRecords: the furthest wins). A few small records per rollout, never deleted.
 * Records of other consumer groups sharing the prefix are passed over; unreadable ones are logged.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { ScorerError } from '../errors.js';
import { type GuardRecord, type RolloutStore, mergeRecords } from '../model/guard.js';

export interface KafkaRolloutStoreOptions {
  kafka: Kafka;
  /** `<TRANSACTIONAL_ID_PREFIX>-rollout` (rolloutTopic()). */
  topic: string;
  /** The scorer's consumer group: its records only. */
  groupId: string;
  replicationFactor: number;
  logger: Logger;
}

export const rolloutTopic = (transactionalIdPrefix: string): string => `${transactionalIdPrefix}-rollout`;

const isRecord = (v: unknown): v is GuardRecord => {
  const r = v as Partial<GuardRecord> | null;
  return typeof r === 'object' && r !== null && typeof r.key === 'string' && typeof r.step === 'number' && typeof r.percent === 'number' &&
    (r.state === 'promoting' || r.state === 'promoted' || r.state === 'rolled_back') && typeof r.decision?.at === 'number';
};

export class KafkaRolloutStore implements RolloutStore {
  readonly #o: KafkaRolloutStoreOptions;
  readonly #records = new Map<string, GuardRecord>();
  readonly #listeners: ((r: GuardRecord) => void)[] = [];
  #producer: Producer | undefined;
  #consumer: Consumer | undefined;
  #started = false;
  /** Writes in flight: stop() waits for them, so a decision taken just before a stop is kept. */
  readonly #writing = new Set<Promise<unknown>>();

  constructor(opts: KafkaRolloutStoreOptions) {
    this.#o = opts;
  }

  get(key: string): GuardRecord | undefined {
    return this.#records.get(key);
  }

  onRecord(listener: (record: GuardRecord) => void): void {
    this.#listeners.push(listener);
  }

  /** Creates the topic if missing, then reads it to the end; resolves when caught up. */
  async start(timeoutMs = 30_000): Promise<void> {
    const { kafka, topic, logger } = this.#o;
    const admin = kafka.admin();
    await admin.connect();
    let ends: Map<number, bigint>;
    try {
      await this.#ensureTopic(admin);
      ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
    } catch (err) {
      throw err instanceof ScorerError ? err : new ScorerError('KAFKA_UNAVAILABLE', `reading the rollout topic ${topic} failed`, { cause: err });
    } finally {
      await admin.disconnect();
    }
    this.#producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await this.#producer.connect();

    // A group of its own that never commits: every start reads the whole (compacted) topic.
    const consumer = kafka.consumer({ groupId: `${topic}-reader-${randomUUID()}`, maxWaitTimeInMs: 250, allowAutoTopicCreation: false });
    this.#consumer = consumer;
    const pending = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
    let caughtUp: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (caughtUp = resolve));
    if (pending.size === 0) caughtUp();
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        this.#read(message.key, message.value);
        if (pending.has(partition) && BigInt(message.offset) + 1n >= (ends.get(partition) ?? 0n)) {
          pending.delete(partition);
          if (pending.size === 0) caughtUp();
        }
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ScorerError('KAFKA_UNAVAILABLE', `the rollout topic ${topic} was not read to its end within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([done, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    this.#started = true;
    logger.info({ topic, decisions: this.#records.size }, 'rollout decisions read');
  }

  async write(record: GuardRecord): Promise<void> {
    if (this.#producer === undefined) throw new Error('bug: KafkaRolloutStore.write before start');
    const { topic, groupId } = this.#o;
    const key = `${groupId}/${record.key}/${record.state}/${record.step}`;
    const sending = this.#producer.send({ topic, acks: -1, messages: [{ key, value: JSON.stringify({ ...record, group: groupId }) }] });
    this.#writing.add(sending);
    try {
      await sending;
    } catch (err) {
      throw new ScorerError('KAFKA_UNAVAILABLE', `writing the guard decision to ${topic} failed`, { cause: err });
    } finally {
      this.#writing.delete(sending);
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.#writing]);
    await Promise.allSettled([this.#consumer?.disconnect(), this.#producer?.disconnect()]);
  }

  #read(key: Buffer | null, value: Buffer | null): void {
    const prefix = `${this.#o.groupId}/`;
    if (key === null || value === null || !key.toString().startsWith(prefix)) return;
    let record: unknown;
    try {
      record = JSON.parse(value.toString());
    } catch {
      record = undefined;
    }
    if (!isRecord(record)) {
      this.#o.logger.warn({ topic: this.#o.topic, key: key.toString() }, 'unreadable rollout record passed over');
      return;
    }
    const known = this.#records.get(record.key);
    if (mergeRecords(known, record) !== record) return; // older than what was read before
    this.#records.set(record.key, record);
    // Before start() resolves the caller reads get(); after, it learns of decisions as they come.
    if (this.#started) for (const l of this.#listeners) l(record);
  }

  async #ensureTopic(admin: Admin): Promise<void> {
    const { topic, replicationFactor, logger } = this.#o;
    if ((await admin.listTopics()).includes(topic)) return;
    const created = await admin
      .createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }] })
      .catch(() => false); // another instance may have created it at the same moment
    if (!created && !(await admin.listTopics()).includes(topic)) throw new ScorerError('KAFKA_UNAVAILABLE', `creating the rollout topic ${topic} failed`);
    if (created) logger.info({ topic }, 'created the rollout topic (compacted)');
  }
}
