/**
 * kafkajs 2.2.4's transaction manager (its own code, producer/eosManager) over the caching
 * coordinator view of src/kafka/kafkajs-coordinators.ts: transactions look their coordinators up
 * once, and again after a request to one failed or its connection went away. The cluster and
 * brokers are fakes that count FindCoordinator lookups and record each request.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { type CoordinatorLookup, cachingCoordinators, createCachingEosManager } from '../../../src/kafka/kafkajs-coordinators.js';
import { kafkajsModule } from '../../../src/kafka/kafkajs-patch.js';

const require = createRequire(import.meta.url);
const { createLogger, LEVELS } = require('kafkajs/src/loggers/index.js') as { createLogger(o: { level: number; logCreator: () => () => void }): unknown; LEVELS: Record<string, number> };
const COORDINATOR_TYPES = require('kafkajs/src/protocol/coordinatorTypes.js') as { GROUP: number; TRANSACTION: number };

interface EosManager {
  initProducerId(): Promise<void>;
  beginTransaction(): void;
  addPartitionsToTransaction(topicData: { topic: string; partitions: { partition: number }[] }[]): Promise<void>;
  sendOffsets(o: { consumerGroupId: string; topics: { topic: string; partitions: { partition: number; offset: string }[] }[] }): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

function fakeCluster() {
  const lookups: string[] = [];
  const requests: string[] = [];
  const brokers: { connected: boolean }[] = [];
  let failNext: string | undefined;
  let failType = 'NOT_COORDINATOR';
  let node = 1;
  const broker = (nodeId: number) => {
    const state = { connected: true };
    brokers.push(state);
    const call = (name: string) => async () => {
      requests.push(`${name}@${nodeId}`);
      if (failNext === name) {
        failNext = undefined;
        throw Object.assign(new Error(failType), { name: 'KafkaJSProtocolError', type: failType, retriable: true });
      }
      return name === 'initProducerId' ? { producerId: 7, producerEpoch: 0 } : {};
    };
    return {
      nodeId,
      isConnected: () => state.connected,
      initProducerId: call('initProducerId'),
      addPartitionsToTxn: call('addPartitionsToTxn'),
      addOffsetsToTxn: call('addOffsetsToTxn'),
      txnOffsetCommit: call('txnOffsetCommit'),
      endTxn: call('endTxn'),
    };
  };
  const cluster = {
    retry: { retries: 2, initialRetryTime: 1 },
    refreshMetadataIfNecessary: async () => undefined,
    findGroupCoordinator: async ({ groupId, coordinatorType }: CoordinatorLookup) => {
      lookups.push(`${coordinatorType === COORDINATOR_TYPES.TRANSACTION ? 'txn' : 'group'}:${groupId}`);
      return broker(node);
    },
  };
  return {
    cluster,
    lookups,
    requests,
    failOnce: (name: string, type = 'NOT_COORDINATOR') => {
      failNext = name;
      failType = type;
    },
    moveCoordinators: (to: number) => (node = to),
    dropConnections: () => brokers.forEach((b) => (b.connected = false)),
  };
}

function transactionManager(cluster: ReturnType<typeof fakeCluster>['cluster']): EosManager {
  return createCachingEosManager({ logger: createLogger({ level: LEVELS.NOTHING as number, logCreator: () => () => undefined }), cluster, transactionTimeout: 60_000, transactional: true, transactionalId: 'scorer-0' }) as EosManager;
}

async function transaction(eos: EosManager): Promise<void> {
  eos.beginTransaction();
  await eos.addPartitionsToTransaction([{ topic: 'out', partitions: [{ partition: 0 }] }]);
  await eos.sendOffsets({ consumerGroupId: 'group', topics: [{ topic: 'in', partitions: [{ partition: 0, offset: '10' }] }] });
  await eos.commit();
}

describe('coordinators remembered per transactional producer (kafkajs eosManager)', () => {
  it('is what kafkajs producers are built with', () => {
    expect(kafkajsModule('producer/eosManager/index.js')).toBe(createCachingEosManager);
  });

  it('looks each coordinator up once for many transactions (kafkajs: 4 lookups per transaction)', async () => {
    const f = fakeCluster();
    const eos = transactionManager(f.cluster);
    await eos.initProducerId();
    for (let i = 0; i < 5; i++) await transaction(eos);
    expect(f.lookups).toEqual(['txn:scorer-0', 'group:group']);
    expect(f.requests.filter((r) => r.startsWith('endTxn'))).toHaveLength(5);
  });

  it('after NOT_COORDINATOR, kafkajs\'s own retry of the offset commit finds the new group coordinator', async () => {
    const f = fakeCluster();
    const eos = transactionManager(f.cluster);
    await eos.initProducerId();
    await transaction(eos);
    f.failOnce('txnOffsetCommit');
    f.moveCoordinators(2);
    await transaction(eos);
    expect(f.lookups).toEqual(['txn:scorer-0', 'group:group', 'group:group']);
    expect(f.requests.filter((r) => r.startsWith('txnOffsetCommit'))).toEqual(['txnOffsetCommit@1', 'txnOffsetCommit@1', 'txnOffsetCommit@2']);
    // The transaction coordinator did not fail: still the cached one.
    expect(f.requests.at(-1)).toBe('endTxn@1');
  });

  it('looks a coordinator up again after any failed request to it', async () => {
    const f = fakeCluster();
    const view = cachingCoordinators(f.cluster);
    const lookup = { groupId: 'scorer-0', coordinatorType: COORDINATOR_TYPES.TRANSACTION };
    const first = (await view.findGroupCoordinator(lookup)) as unknown as { endTxn(): Promise<unknown> };
    expect(await view.findGroupCoordinator(lookup)).toBe(first);
    f.failOnce('endTxn');
    await expect(first.endTxn()).rejects.toMatchObject({ type: 'NOT_COORDINATOR' });
    expect(await view.findGroupCoordinator(lookup)).not.toBe(first);
    expect(f.lookups).toHaveLength(2);
  });

  it('keeps the coordinator that answered CONCURRENT_TRANSACTIONS (it is the right one, busy with the last markers)', async () => {
    const f = fakeCluster();
    const view = cachingCoordinators(f.cluster);
    const lookup = { groupId: 'scorer-0', coordinatorType: COORDINATOR_TYPES.TRANSACTION };
    const first = (await view.findGroupCoordinator(lookup)) as unknown as { addPartitionsToTxn(): Promise<unknown> };
    f.failOnce('addPartitionsToTxn', 'CONCURRENT_TRANSACTIONS');
    await expect(first.addPartitionsToTxn()).rejects.toMatchObject({ type: 'CONCURRENT_TRANSACTIONS' });
    expect(await view.findGroupCoordinator(lookup)).toBe(first);
    expect(f.lookups).toHaveLength(1);
  });

  it('looks the coordinators up again once their connections are gone', async () => {
    const f = fakeCluster();
    const eos = transactionManager(f.cluster);
    await eos.initProducerId();
    await transaction(eos);
    f.dropConnections();
    await transaction(eos);
    expect(f.lookups).toEqual(['txn:scorer-0', 'group:group', 'txn:scorer-0', 'group:group']);
  });
});
