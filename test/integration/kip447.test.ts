/**
 * src/kafka/kafkajs-kip447.ts against the real broker of each line: the generation a consumer
 * joined with, TxnOffsetCommit v3 accepted with it and refused once the group moved on, and
 * OffsetFetch v7 (require_stable) refusing while a transaction holds offsets of the partition.
 */
import { describe, expect, it } from 'vitest';
import type { Consumer, Producer } from 'kafkajs';
import { type StableOffsetsAdmin, withGroupMetadata } from '../../src/kafka/kafkajs-kip447.js';
import { createTopics, produce, randomName, testKafka, waitFor } from '../helpers/kafka.js';

async function joined(consumer: Consumer, topic: string): Promise<{ generationId: number; memberId: string; partitions: number[] }> {
  let seen: { generationId: number; memberId: string; partitions: number[] } | undefined;
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const p = payload as unknown as { generationId: number; memberId: string; memberAssignment: Record<string, number[]> };
    seen = { generationId: p.generationId, memberId: p.memberId, partitions: p.memberAssignment[topic] ?? [] };
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => undefined });
  return waitFor('the consumer to join', () => seen);
}

async function transactionalProducer(id: string): Promise<Producer> {
  const producer = testKafka().producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
}

describe('KIP-447 requests (kafkajs-kip447.ts)', () => {
  it('GROUP_JOIN carries the generation; TxnOffsetCommit v3 commits with it, is refused with ILLEGAL_GENERATION after a rebalance, and a stable fetch waits for an open transaction', { timeout: 90_000 }, async () => {
    const topic = randomName('kip447-in');
    const out = randomName('kip447-out');
    const group = randomName('kip447-group');
    await createTopics([{ topic, numPartitions: 2 }, { topic: out }]);
    await produce(topic, [{ key: 'a', value: 'x', partition: 0 }, { key: 'b', value: 'y', partition: 1 }]);
    const kafka = testKafka();
    const admin = kafka.admin() as ReturnType<typeof kafka.admin> & StableOffsetsAdmin;
    await admin.connect();
    const first = kafka.consumer({ groupId: group });
    const producer = await transactionalProducer(randomName('kip447-tx'));
    let second: Consumer | undefined;
    try {
      const g1 = await joined(first, topic);
      expect(g1.generationId).toBeGreaterThan(0);
      expect(g1.partitions.sort()).toEqual([0, 1]);

      // Committed under the current generation, and read back stable.
      const tx = await producer.transaction();
      await tx.send({ topic: out, messages: [{ key: 'a', value: 'scored' }] });
      await tx.sendOffsets({ consumerGroupId: group, topics: withGroupMetadata([{ topic, partitions: [{ partition: 0, offset: '1' }] }], g1) });
      // Open transaction holding partition 0's offset: require_stable refuses, partition 1 alone answers.
      await expect(admin.fetchStableOffsets({ groupId: group, topic, partitions: [0, 1] })).rejects.toMatchObject({ type: 'UNSTABLE_OFFSET_COMMIT' });
      expect((await admin.fetchStableOffsets({ groupId: group, topic, partitions: [1] })).get(1)?.offset).toBe(-1n);
      await tx.commit();
      // EndTxn answers once the commit is decided; the coordinator writes the offsets' marker after
      // that, so the offset turns stable a moment later (Kafka 3.9 showed the gap): wait for it.
      const stable = await waitFor('the committed offset to turn stable', () => admin.fetchStableOffsets({ groupId: group, topic, partitions: [0, 1] }), 10_000, 20);
      expect(stable.get(0)?.offset).toBe(1n);

      // A second member joins: the generation moves on, and a commit under the old one is refused.
      second = kafka.consumer({ groupId: group });
      const g2 = await joined(second, topic);
      expect(g2.generationId).toBeGreaterThan(g1.generationId);
      const stale = await producer.transaction();
      await stale.send({ topic: out, messages: [{ key: 'b', value: 'zombie' }] });
      await expect(stale.sendOffsets({ consumerGroupId: group, topics: withGroupMetadata([{ topic, partitions: [{ partition: 1, offset: '1' }] }], g1) })).rejects.toMatchObject({ type: 'ILLEGAL_GENERATION' });
      await stale.abort();
      expect((await admin.fetchStableOffsets({ groupId: group, topic, partitions: [1] })).get(1)?.offset).toBe(-1n);
    } finally {
      await second?.disconnect();
      await first.disconnect();
      await producer.disconnect();
      await admin.disconnect();
    }
  });
});
