/**
 * Reads every record of a topic that a read_committed reader can see, without sleeping: call it
 * once no writer is active. It appends a plain (non-transactional) marker to every partition and
 * reads from the beginning until each marker arrived, so nothing written before can still be on
 * its way. Used by the integration tests (test/helpers/kafka.ts) and the compose test.
 */
import '../../src/kafka/kafkajs-fix.js'; // before kafkajs: its read_committed filter is patched there
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka, KafkaMessage } from 'kafkajs';

const END_MARKER = '__end_of_test_stream__';

export type DrainedMessage = KafkaMessage & { topic: string; partition: number };

export async function drainTopic(kafka: Kafka, topic: string, { timeoutMs = 120_000, groupId = `drain-${Date.now()}-${Math.random().toString(16).slice(2, 8)}` } = {}): Promise<DrainedMessage[]> {
  const admin = kafka.admin();
  await admin.connect();
  const partitions = (await admin.fetchTopicOffsets(topic)).map((p) => p.partition);
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: partitions.map((partition) => ({ partition, key: END_MARKER, value: END_MARKER })) });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  const got: DrainedMessage[] = [];
  const ended = new Set<number>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (message.key?.toString() === END_MARKER) ended.add(partition);
        else got.push({ ...message, topic, partition });
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (ended.size < partitions.length) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the end markers on all ${partitions.length} partitions of ${topic} (${ended.size} arrived)`);
      await sleep(100);
    }
    return got;
  } finally {
    await consumer.disconnect();
  }
}
