/**
 * Helpers for integration tests against the real broker: random names, topics that delete
 * themselves when the test file ends, a waitFor poller, and a reader that collects a topic.
 */
import '../../src/kafka/kafkajs-fix.js';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Admin, Kafka, type KafkaMessage, type Message, logLevel } from 'kafkajs';
import { afterAll, inject } from 'vitest';
import { drainTopic as drainTopicWith } from '../../scripts/lib/drain-topic.js';
import { kafkaSecurity, registryEndpoint } from '../../scripts/lib/stack-env.js';
import { RegistryRest } from '../../src/kafka/registry.js';

export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** A client of this line's broker; on a secure line (STACK_SECURITY=sasl_ssl) as the stack's admin. */
export function testKafka(clientId = randomName('test')): Kafka {
  return new Kafka({ clientId, brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING, ...kafkaSecurity(inject('stackSecurityEnv')) });
}

/** This line's registry (on a secure line with the admin's credentials and the stack's CA). */
export function testRegistry(): RegistryRest {
  return new RegistryRest(registryEndpoint(inject('schemaRegistryUrl'), inject('stackSecurityEnv')));
}

/** Polls `check` until it returns a value other than undefined/false, or throws with `what` after timeoutMs. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

let sharedAdmin: Admin | undefined;
const created: string[] = [];

export interface TestTopic {
  topic: string;
  numPartitions?: number;
  /** Default 1; the cluster tests replicate 3 times with min.insync.replicas 2 (configEntries). */
  replicationFactor?: number;
  configEntries?: { name: string; value: string }[];
}

/** Writes the messages with an idempotent producer, in sends of at most 1000. */
export async function produce(topic: string, messages: Message[]): Promise<void> {
  const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic, messages: messages.slice(i, i + 1000) });
  await producer.disconnect();
}

/** Creates topics (explicitly: the broker does not auto-create) and deletes them after the file's tests. */
export async function createTopics(topics: TestTopic[]): Promise<void> {
  if (sharedAdmin === undefined) {
    sharedAdmin = testKafka().admin();
    await sharedAdmin.connect();
    afterAll(async () => {
      // KEEP_TEST_TOPICS=1 leaves them for a post-mortem (e.g. reading them with another client).
      if (created.length > 0 && process.env.KEEP_TEST_TOPICS !== '1') await sharedAdmin?.deleteTopics({ topics: created.splice(0) }).catch(() => undefined);
      await sharedAdmin?.disconnect();
      sharedAdmin = undefined;
    });
  }
  const admin = sharedAdmin;
  // kafkajs's own leader wait (waitForLeaders) retries LEADER_NOT_AVAILABLE only; a broker that
  // was just restarted (test/cluster) can answer UNKNOWN_TOPIC_OR_PARTITION for a topic the
  // controller already created. So: create, then poll the metadata until every partition has a leader.
  await admin.createTopics({ waitForLeaders: false, topics: topics.map((t) => ({ topic: t.topic, numPartitions: t.numPartitions ?? 1, replicationFactor: t.replicationFactor ?? 1, ...(t.configEntries ? { configEntries: t.configEntries } : {}) })) });
  created.push(...topics.map((t) => t.topic));
  await waitFor(`leaders for every partition of ${topics.map((t) => t.topic).join(', ')}`, async () => {
    const { topics: meta } = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) });
    return topics.every((t) => {
      const partitions = meta.find((m) => m.name === t.topic)?.partitions ?? [];
      return partitions.length === (t.numPartitions ?? 1) && partitions.every((p) => p.leader >= 0);
    });
  });
}

export type ReadMessage = KafkaMessage & {
  topic: string;
  partition: number;
};

/**
 * Reads a topic from the beginning with a fresh group until `count` messages arrived, then
 * returns them (ordered per partition). `readUncommitted` shows aborted transactional records too.
 */
export async function readTopic(topic: string, count: number, { readUncommitted = false, timeoutMs = 60_000 } = {}): Promise<ReadMessage[]> {
  const consumer = testKafka().consumer({ groupId: randomName('reader'), readUncommitted, maxWaitTimeInMs: 200 });
  const got: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ topic: t, partition, message }) => void got.push({ ...message, topic: t, partition }) });
    await waitFor(`${count} messages on ${topic} (have ${got.length})`, () => got.length >= count, timeoutMs);
    return got;
  } finally {
    await consumer.disconnect();
  }
}

/**
 * Reads every record of a topic that is visible to a read_committed reader. Call it once no
 * writer is active (scripts/lib/drain-topic.ts: end markers, no sleeping).
 */
export async function drainTopic(topic: string, timeoutMs = 120_000): Promise<ReadMessage[]> {
  return drainTopicWith(testKafka(), topic, { timeoutMs, groupId: randomName('drain') });
}

/** Resolves when the group has committed the end offset of every partition of the topic (all input processed). */
export async function waitForCommittedToEnd(groupId: string, topic: string, timeoutMs = 120_000): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await waitFor(
      `group ${groupId} to commit to the end of ${topic}`,
      async () => {
        const ends = await admin.fetchTopicOffsets(topic);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        return ends.every((e) => {
          const c = committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
          // An idle partition never written to has end 0 and no commit.
          return e.high === '0' || c === e.high;
        });
      },
      timeoutMs,
      250,
    );
  } finally {
    await admin.disconnect();
  }
}
