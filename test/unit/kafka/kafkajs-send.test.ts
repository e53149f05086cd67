/**
 * The send retry that replaces kafkajs 2.2.4's (src/kafka/kafkajs-send.ts), on the timing that
 * made kafkajs write a batch twice inside a committed transaction on the three-node cluster: the
 * request to a killed broker fails at once while the request to a live broker is still in flight.
 * The brokers here are fakes that record each Produce request (partition, first sequence, count);
 * the retrier, broker locks and response parsing are kafkajs's own.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { type SendCluster, type SendEosManager, createSendMessages } from '../../../src/kafka/kafkajs-send.js';

const require = createRequire(import.meta.url);
const createRetry = require('kafkajs/src/retry/index.js') as (opts: object) => Parameters<typeof createSendMessages>[0]['retrier'];
const Lock = require('kafkajs/src/utils/lock.js') as new (opts: { timeout: number }) => { acquire(): Promise<void>; release(): void };

interface Sent { node: number; partition: number; firstSequence: number; count: number }
const TOPIC = 'out';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two brokers; partitions 0, 1 led by node 1, partitions 2, 3 by node 2. Node 1's first request
 * fails at once (its connection is gone); node 2 answers after `node2DelayMs`. With `moveOnFailure`
 * node 1's partitions move to node 2 once node 1 failed (the new leader after a failover).
 */
function fakeCluster({ node2DelayMs, moveOnFailure }: { node2DelayMs: number; moveOnFailure: boolean }) {
  const sent: Sent[] = [];
  const leaders = new Map([[0, 1], [1, 1], [2, 2], [3, 2]]);
  let node1Failed = false;
  const broker = (nodeId: number) => ({
    nodeId,
    produce: async ({ topicData }: { topicData: { topic: string; partitions: { partition: number; messages: unknown[]; firstSequence?: number }[] }[] }) => {
      const parts = topicData.flatMap((t) => t.partitions);
      if (nodeId === 1 && !node1Failed) {
        node1Failed = true;
        if (moveOnFailure) for (const p of [0, 1]) leaders.set(p, 2);
        throw Object.assign(new Error('Connection error: read ECONNRESET'), { name: 'KafkaJSConnectionError', retriable: true });
      }
      if (nodeId === 2) await sleep(node2DelayMs);
      for (const p of parts) sent.push({ node: nodeId, partition: p.partition, firstSequence: p.firstSequence as number, count: p.messages.length });
      return { topics: topicData.map((t) => ({ topicName: t.topic, partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: '0', logAppendTime: '-1', logStartOffset: '0' })) })) };
    },
  });
  const brokers = new Map([[1, broker(1)], [2, broker(2)]]);
  const cluster: SendCluster = {
    refreshMetadataIfNecessary: async () => undefined,
    refreshMetadata: async () => undefined,
    addMultipleTargetTopics: async () => undefined,
    findTopicPartitionMetadata: () => [...leaders].map(([partitionId, leader]) => ({ partitionId, leader })),
    findLeaderForPartitions: (_topic, partitions) => {
      const out: Record<string, number[]> = {};
      for (const p of partitions.map(Number)) (out[leaders.get(p) as number] ??= []).push(p);
      return out;
    },
    findBroker: async ({ nodeId }) => brokers.get(Number(nodeId)) as never,
    removeBroker: () => undefined,
    isConnected: () => true,
    connect: async () => undefined,
  };
  // kafkajs's eosManager as far as sending uses it: sequences per partition, one lock per broker.
  const sequences = new Map<number, number>();
  const locks = new Map<number, InstanceType<typeof Lock>>();
  const lock = (nodeId: number) => locks.get(nodeId) ?? (locks.set(nodeId, new Lock({ timeout: 60_000 })), locks.get(nodeId) as InstanceType<typeof Lock>);
  const eosManager: SendEosManager = {
    isTransactional: () => true,
    getTransactionalId: () => 'tx',
    getProducerId: () => 1,
    getProducerEpoch: () => 0,
    getSequence: (_t, p) => sequences.get(p) ?? 0,
    updateSequence: (_t, p, n) => void sequences.set(p, (sequences.get(p) ?? 0) + n),
    addPartitionsToTransaction: async () => undefined,
    acquireBrokerLock: (b) => lock(b.nodeId).acquire(),
    releaseBrokerLock: (b) => lock(b.nodeId).release(),
  };
  const messages = [0, 1, 2, 3].flatMap((partition) => Array.from({ length: 6 }, (_, i) => ({ partition, key: `k${partition}-${i}`, value: 'v' })));
  const options = { logger: { debug: () => undefined, error: () => undefined }, cluster, eosManager, partitioner: ({ message }: { message: { partition: number } }) => message.partition, retrier: createRetry({ initialRetryTime: 10, retries: 5 }) };
  return { sent, options, send: { acks: -1, timeout: 30_000, compression: 0, topicMessages: [{ topic: TOPIC, messages }] } };
}

/** kafkajs 2.2.4's own sendMessages, evaluated from its file (the module cache holds the replacement). */
function kafkajsSendMessages(): typeof createSendMessages {
  const path = require.resolve('kafkajs/src/producer/sendMessages.js');
  const mod = { exports: {} as unknown };
  new Function('require', 'module', 'exports', readFileSync(path, 'utf8'))(createRequire(path), mod, mod.exports);
  return mod.exports as typeof createSendMessages;
}

const byPartition = (sent: Sent[]) => [0, 1, 2, 3].map((p) => sent.filter((s) => s.partition === p).map((s) => `node ${s.node} seq ${s.firstSequence}+${s.count}`));

describe('sendMessages (kafkajs send retry replaced)', () => {
  it('sends each partition once when one broker fails while another is still answering', async () => {
    const { sent, options, send } = fakeCluster({ node2DelayMs: 100, moveOnFailure: false });
    const answers = await createSendMessages(options)(send);
    expect(byPartition(sent)).toEqual([['node 1 seq 0+6'], ['node 1 seq 0+6'], ['node 2 seq 0+6'], ['node 2 seq 0+6']]);
    expect(answers.map((a) => a.partition).sort()).toEqual([0, 1, 2, 3]);
  });

  it('kafkajs 2.2.4 writes the live broker\'s batch again with new sequence numbers on the same timing (why the fix exists)', async () => {
    const { sent, options, send } = fakeCluster({ node2DelayMs: 100, moveOnFailure: false });
    await kafkajsSendMessages()(options)(send);
    const [, , p2] = byPartition(sent);
    expect(p2?.length).toBeGreaterThan(1);
    expect(p2?.slice(0, 2)).toEqual(['node 2 seq 0+6', 'node 2 seq 6+6']);
  });

  it('sends a partition whose leader moved to a broker that has already answered, with its sequence numbers unchanged', async () => {
    const { sent, options, send } = fakeCluster({ node2DelayMs: 0, moveOnFailure: true });
    await createSendMessages(options)(send);
    expect(byPartition(sent)).toEqual([['node 2 seq 0+6'], ['node 2 seq 0+6'], ['node 2 seq 0+6'], ['node 2 seq 0+6']]);
  });

  it('kafkajs 2.2.4 never sends those partitions and reports success (why the fix exists)', async () => {
    const { sent, options, send } = fakeCluster({ node2DelayMs: 0, moveOnFailure: true });
    await kafkajsSendMessages()(options)(send);
    expect(byPartition(sent).slice(0, 2)).toEqual([[], []]);
  });

  it('asks again within milliseconds while AddPartitionsToTxn meets CONCURRENT_TRANSACTIONS, without a retry of the whole send', async () => {
    const { sent, options, send } = fakeCluster({ node2DelayMs: 0, moveOnFailure: false });
    let refused = 0;
    let added = 0;
    options.eosManager.addPartitionsToTransaction = async () => {
      // The previous transaction's markers are still being written: the first 3 asks are refused.
      if (refused < 3) {
        refused += 1;
        throw Object.assign(new Error('CONCURRENT_TRANSACTIONS'), { name: 'KafkaJSProtocolError', type: 'CONCURRENT_TRANSACTIONS', retriable: true });
      }
      added += 1;
    };
    let refreshed = 0;
    options.cluster.refreshMetadata = async () => void (refreshed += 1);
    await createSendMessages(options)(send);
    expect(refused).toBe(3);
    expect(added).toBe(3); // node 1, node 2, and node 1 again after the fake's connection failure
    expect(byPartition(sent)).toEqual([['node 1 seq 0+6'], ['node 1 seq 0+6'], ['node 2 seq 0+6'], ['node 2 seq 0+6']]);
    // One whole-send retry (the connection failure); kafkajs's retrier would have made one per refusal too.
    expect(refreshed).toBe(1);
  });

  it('is installed in place of kafkajs\'s', () => {
    expect(require('kafkajs/src/producer/sendMessages.js')).toBe(createSendMessages);
  });
});
