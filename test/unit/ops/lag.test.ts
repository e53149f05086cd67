// LagPoller's arithmetic and the gauges it sets. The admin here is a plain object answering the two
// offset requests with fixed numbers: this tests our math on the broker's answers, not the broker.
import '../../../src/kafka/kafkajs-fix.js'; // before kafkajs: see the module
import { type Admin, AssignerProtocol } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PartitionProgress } from '../../../src/stages/consume.js';
import { LagPoller } from '../../../src/ops/lag.js';
import { LAG_STATUSES, LAG_STATUS_WINDOW } from '../../../src/ops/lag-status.js';
import { createLogger } from '../../../src/ops/logger.js';
import { createMetrics } from '../../../src/ops/metrics.js';
import type { Metrics } from '../../../src/ops/metrics.js';

const GROUP = 'scorer-group';
const TOPIC = 'features';
const NOW = 1_700_000_100_000;

interface Offsets {
  ends: { partition: number; high: string; low: string }[];
  committed: { partition: number; offset: string }[];
  /** Partitions a member of the (stable) group holds; default none. */
  owned?: number[];
}

/** The two Admin methods poll() uses, answering from `offsets` (mutable between polls). */
function fakeAdmin(offsets: Offsets) {
  const fetchTopicOffsets = vi.fn(async (topic: string) => {
    expect(topic).toBe(TOPIC);
    return offsets.ends.map((e) => ({ ...e, offset: e.high }));
  });
  const fetchOffsets = vi.fn(async ({ groupId, topics }: { groupId: string; topics?: string[] }) => {
    expect(groupId).toBe(GROUP);
    expect(topics).toEqual([TOPIC]);
    return [{ topic: TOPIC, partitions: offsets.committed.map((c) => ({ ...c, metadata: null })) }];
  });
  const describeGroups = vi.fn(async (groupIds: string[]) => {
    expect(groupIds).toEqual([GROUP]);
    const memberAssignment = AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: { [TOPIC]: offsets.owned ?? [] }, userData: Buffer.alloc(0) });
    const member = { memberId: 'm', clientId: 'c', clientHost: '/127.0.0.1', memberMetadata: Buffer.alloc(0), memberAssignment };
    return { groups: [{ groupId: GROUP, members: [member], protocol: 'RoundRobinAssigner', protocolType: 'consumer', state: 'Stable' }] };
  });
  return { admin: { fetchTopicOffsets, fetchOffsets, describeGroups } as unknown as Admin, fetchTopicOffsets, fetchOffsets, describeGroups };
}

/** The brief's example: 0: high 100 committed 40; 1: high 10, no commit, low 2; 2: high 0. */
const example = (): Offsets => ({
  ends: [
    { partition: 0, high: '100', low: '0' },
    { partition: 1, high: '10', low: '2' },
    { partition: 2, high: '0', low: '0' },
  ],
  committed: [
    { partition: 0, offset: '40' },
    { partition: 1, offset: '-1' },
    { partition: 2, offset: '-1' },
  ],
});

function setup(offsets: Offsets, pending: Record<number, number | undefined> = {}) {
  const metrics = createMetrics(new Registry());
  const { admin, fetchTopicOffsets, fetchOffsets, describeGroups } = fakeAdmin(offsets);
  const progress = (partition: number): PartitionProgress | undefined => (partition in pending ? { oldestPendingAt: pending[partition], paused: false } : undefined);
  const poller = new LagPoller({ admin, groupId: GROUP, topic: TOPIC, metrics, logger: createLogger('silent'), progress });
  return { poller, metrics, fetchTopicOffsets, fetchOffsets, describeGroups };
}

/** Gauge values by partition label (or '' for the sum). */
async function gauge(metrics: Metrics, name: 'consumerGroupLag' | 'consumerGroupLagSeconds' | 'consumerGroupLagSum'): Promise<Record<string, number>> {
  const { values } = await metrics[name].get();
  return Object.fromEntries(
    values.map((v) => {
      expect(v.labels.group).toBe(GROUP);
      expect(v.labels.topic).toBe(TOPIC);
      return [String((v.labels as { partition?: string }).partition ?? ''), v.value];
    }),
  );
}

describe('LagPoller.poll', () => {
  it('computes high - committed, or high - low when nothing is committed', async () => {
    const { poller } = setup(example());
    const samples = await poller.poll(NOW);
    expect(samples.map((s) => [s.partition, s.lag])).toEqual([
      [0, 60],
      [1, 8],
      [2, 0],
    ]);
  });

  it('exports kafka_consumergroup_lag per partition and kafka_consumergroup_lag_sum with group and topic labels', async () => {
    const { poller, metrics } = setup(example());
    await poller.poll(NOW);
    expect(await gauge(metrics, 'consumerGroupLag')).toEqual({ '0': 60, '1': 8, '2': 0 });
    expect(await gauge(metrics, 'consumerGroupLagSum')).toEqual({ '': 68 });

    const text = await metrics.registry.metrics();
    expect(text).toContain('kafka_consumergroup_lag{group="scorer-group",topic="features",partition="0"} 60');
    expect(text).toContain('kafka_consumergroup_lag{group="scorer-group",topic="features",partition="1"} 8');
    expect(text).toContain('kafka_consumergroup_lag{group="scorer-group",topic="features",partition="2"} 0');
    expect(text).toContain('kafka_consumergroup_lag_sum{group="scorer-group",topic="features"} 68');
  });

  it('asks for the end offsets of the topic, the committed offsets and the assignment of the group', async () => {
    const { poller, fetchTopicOffsets, fetchOffsets, describeGroups } = setup(example());
    await poller.poll(NOW);
    expect(fetchTopicOffsets).toHaveBeenCalledWith(TOPIC);
    expect(fetchOffsets).toHaveBeenCalledWith({ groupId: GROUP, topics: [TOPIC] });
    expect(describeGroups).toHaveBeenCalledWith([GROUP]);
  });

  it('exports kafka_consumergroup_lag_status as a state set: STALL for a held partition stuck behind, STOP for one nobody holds', async () => {
    const offsets = { ...example(), owned: [0] }; // 0: held, stuck at 40 of 100; 1: nobody, 8 waiting; 2: empty
    const { poller, metrics } = setup(offsets);
    const status = async () => {
      const { values } = await metrics.consumerGroupLagStatus.get();
      const current = values.filter((v) => v.value === 1).map((v) => [v.labels.partition, v.labels.status]);
      expect(values).toHaveLength(3 * LAG_STATUSES.length); // every state of every partition, 0 or 1
      return Object.fromEntries(current);
    };
    await poller.poll(NOW);
    expect(await status()).toEqual({ '0': 'OK', '1': 'OK', '2': 'OK' }); // one sample is no history
    for (let i = 1; i < LAG_STATUS_WINDOW; i++) await poller.poll(NOW + i * 1_000);
    expect(await status()).toEqual({ '0': 'STALL', '1': 'STOP', '2': 'OK' });
    expect(await metrics.registry.metrics()).toContain('kafka_consumergroup_lag_status{group="scorer-group",topic="features",partition="0",status="STALL"} 1');
  });

  it('treats a partition missing from the committed answer as not committed', async () => {
    const offsets = example();
    offsets.committed = [{ partition: 0, offset: '40' }];
    const { poller } = setup(offsets);
    expect((await poller.poll(NOW)).map((s) => s.lag)).toEqual([60, 8, 0]);
  });

  it('handles offsets beyond 2^53 exactly', async () => {
    const offsets: Offsets = { ends: [{ partition: 0, high: '9007199254740999', low: '0' }], committed: [{ partition: 0, offset: '9007199254740993' }] };
    const { poller } = setup(offsets);
    expect((await poller.poll(NOW))[0]?.lag).toBe(6);
  });

  it('lag seconds is (now - oldestPendingAt) / 1000 when the partition is behind and has a pending record', async () => {
    const { poller, metrics } = setup(example(), { 0: NOW - 2_500 });
    const samples = await poller.poll(NOW);
    expect(samples[0]).toEqual({ partition: 0, lag: 60, seconds: 2.5 });
    expect((await gauge(metrics, 'consumerGroupLagSeconds'))['0']).toBe(2.5);
  });

  it('lag seconds is 0 when no pending timestamp is known, or the partition is not ours', async () => {
    const { poller, metrics } = setup(example(), { 1: undefined }); // 1: ours, nothing pending; 0: not ours
    const samples = await poller.poll(NOW);
    expect(samples.map((s) => s.seconds)).toEqual([0, 0, 0]);
    expect(await gauge(metrics, 'consumerGroupLagSeconds')).toEqual({ '0': 0, '1': 0, '2': 0 });
  });

  it('lag seconds is 0 when lag is 0, even with a pending timestamp', async () => {
    const { poller } = setup(example(), { 2: NOW - 60_000 });
    expect((await poller.poll(NOW))[2]).toEqual({ partition: 2, lag: 0, seconds: 0 });
  });

  it('lag seconds is never negative (a pending timestamp ahead of our clock)', async () => {
    const { poller } = setup(example(), { 0: NOW + 5_000 });
    expect((await poller.poll(NOW))[0]?.seconds).toBe(0);
  });

  it('a later poll replaces the values, and `last` holds the latest samples', async () => {
    const offsets = example();
    const { poller, metrics } = setup(offsets, { 0: NOW - 1_000 });
    expect(poller.last).toEqual([]);
    const first = await poller.poll(NOW);
    expect(poller.last).toEqual(first);

    offsets.committed = [
      { partition: 0, offset: '100' },
      { partition: 1, offset: '7' },
      { partition: 2, offset: '-1' },
    ];
    const second = await poller.poll(NOW + 1_000);
    expect(second.map((s) => s.lag)).toEqual([0, 3, 0]);
    expect(poller.last).toEqual(second);
    expect(await gauge(metrics, 'consumerGroupLag')).toEqual({ '0': 0, '1': 3, '2': 0 });
    expect(await gauge(metrics, 'consumerGroupLagSum')).toEqual({ '': 3 });
    expect(await gauge(metrics, 'consumerGroupLagSeconds')).toEqual({ '0': 0, '1': 0, '2': 0 });
  });

  it('rejects when the admin fails, keeping the previous samples', async () => {
    const { poller, fetchOffsets } = setup(example());
    const first = await poller.poll(NOW);
    fetchOffsets.mockRejectedValueOnce(new Error('broker down'));
    await expect(poller.poll(NOW + 1)).rejects.toThrow('broker down');
    expect(poller.last).toBe(first);
  });
});

describe('LagPoller.start/stop', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('polls at once, then every interval, keeps going after a failed poll, and stops', async () => {
    vi.useFakeTimers();
    const { poller, fetchTopicOffsets } = setup(example());
    fetchTopicOffsets.mockRejectedValueOnce(new Error('broker down'));
    poller.start(1_000);
    poller.start(1_000); // a second start is a no-op
    await vi.advanceTimersByTimeAsync(0);
    expect(fetchTopicOffsets).toHaveBeenCalledTimes(1); // failed, logged
    expect(poller.last).toEqual([]);
    await vi.advanceTimersByTimeAsync(999);
    expect(fetchTopicOffsets).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchTopicOffsets).toHaveBeenCalledTimes(2);
    expect(poller.last.map((s) => s.lag)).toEqual([60, 8, 0]);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(fetchTopicOffsets).toHaveBeenCalledTimes(5);
    poller.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(fetchTopicOffsets).toHaveBeenCalledTimes(5);
    expect(vi.getTimerCount()).toBe(0);
  });
});
