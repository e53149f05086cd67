/**
 * The guard's decisions in the compacted rollout topic, on the real broker: created compacted,
 * read to the end before start() resolves (a restart resumes them), carried to the other
 * instances, the furthest decision kept whatever the order of concurrent writes, other groups'
 * and unreadable records passed over.
 */
import '../../src/kafka/kafkajs-fix.js'; // before kafkajs
import { ConfigResourceTypes } from 'kafkajs';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaRolloutStore } from '../../src/kafka/rollout-store.js';
import type { GuardRecord } from '../../src/model/guard.js';
import { randomName, testKafka, waitFor } from '../helpers/kafka.js';

const logger = pino({ level: 'silent' });
const topic = randomName('scorer-rollout');
const groupId = randomName('group');
const stores: KafkaRolloutStore[] = [];

async function startStore(group = groupId): Promise<KafkaRolloutStore> {
  const store = new KafkaRolloutStore({ kafka: testKafka(), topic, groupId: group, replicationFactor: 1, logger });
  stores.push(store);
  await store.start();
  return store;
}

const record = (state: GuardRecord['state'], step: number, by: string, key = 'canary-key-1'): GuardRecord => ({
  key,
  stable: '1.0.0',
  canary: '1.1.0',
  state,
  step,
  percent: state === 'rolled_back' ? 0 : [10, 25, 50, 100][step] ?? 100,
  decision: { action: state === 'rolled_back' ? 'rollback' : 'promote', at: Date.now(), reason: `${state} by ${by}`, fromPercent: 10, toPercent: 0 },
  by,
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.stop()));
  const admin = testKafka().admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

describe('KafkaRolloutStore', () => {
  it('creates the topic compacted with one partition, and starts on it empty', async () => {
    const store = await startStore();
    expect(store.get('canary-key-1')).toBeUndefined();
    const admin = testKafka().admin();
    await admin.connect();
    try {
      const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
      expect(meta?.partitions).toHaveLength(1);
      const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }] });
      expect(resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue).toBe('compact');
    } finally {
      await admin.disconnect();
    }
  });

  it('carries a decision to the other instances, and a restarted instance has it before it serves', async () => {
    const a = await startStore();
    const b = await startStore();
    const seen: GuardRecord[] = [];
    b.onRecord((r) => seen.push(r));
    const promoted = record('promoting', 1, 'pod-a');
    await a.write(promoted);
    await waitFor('pod-b to read the promotion', () => seen.some((r) => r.by === 'pod-a' && r.step === 1));
    expect(b.get('canary-key-1')).toMatchObject({ state: 'promoting', step: 1, by: 'pod-a' });

    const restarted = await startStore(); // no waiting: start() read to the end
    expect(restarted.get('canary-key-1')).toMatchObject({ state: 'promoting', step: 1, percent: 25 });
  });

  it('keeps the rollback whatever was written after it by an instance that had not seen it', async () => {
    const a = await startStore();
    const b = await startStore();
    await b.write(record('rolled_back', 1, 'pod-b'));
    await a.write(record('promoting', 2, 'pod-a')); // concurrent: pod-a decided before reading pod-b's
    await a.write(record('promoted', 3, 'pod-a'));
    await waitFor('both instances to read all three', () => a.get('canary-key-1')?.state === 'rolled_back' && b.get('canary-key-1')?.state === 'rolled_back');
    const restarted = await startStore();
    expect(restarted.get('canary-key-1')).toMatchObject({ state: 'rolled_back', by: 'pod-b' });
  });

  it('passes over records of another consumer group and records it cannot read', async () => {
    const other = await startStore(randomName('other-group'));
    await other.write(record('rolled_back', 0, 'elsewhere', 'canary-key-2'));
    const producer = testKafka().producer();
    await producer.connect();
    // (A keyless record cannot exist here: the broker refuses those on a compacted topic.)
    await producer.send({ topic, messages: [{ key: `${groupId}/canary-key-3/promoting/1`, value: 'not json' }, { key: `${groupId}/canary-key-3/promoted/3`, value: '{"key":"canary-key-3"}' }] });
    await producer.disconnect();
    const mine = await startStore();
    expect(mine.get('canary-key-2')).toBeUndefined();
    expect(mine.get('canary-key-3')).toBeUndefined();
    expect(mine.get('canary-key-1')?.state).toBe('rolled_back');
    expect(other.get('canary-key-2')?.state).toBe('rolled_back');
  });
});
