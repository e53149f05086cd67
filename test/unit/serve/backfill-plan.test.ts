/** Backfill bounds and the plan kept in offset metadata: parsing, defaults, round trip, refusals. */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/serve/command.js';
import { checkRange, defaultGroupId, encodePlan, parseBound, resolvePlan, storedPlan } from '../../../src/serve/backfill/plan.js';

const admin = {
  fetchTopicOffsets: async () => [0, 1].map((partition) => ({ partition, offset: '100', high: '100', low: '10' })),
  fetchTopicOffsetsByTimestamp: async (_: string, ts?: number) => [0, 1].map((partition) => ({ partition, offset: String(ts === 1 ? 20 + partition : 80) })),
};

describe('backfill plan', () => {
  it('parses ISO times with a zone, now, earliest and partition:offset lists, and refuses the rest naming the flag', () => {
    expect(parseBound('2026-12-01T00:00:00Z', '--from')).toEqual({ kind: 'time', ms: Date.parse('2026-12-01T00:00:00Z') });
    expect(parseBound('now', '--to')).toEqual({ kind: 'now' });
    expect(parseBound('earliest', '--from')).toEqual({ kind: 'earliest' });
    expect(parseBound('0:5,2:7', '--to')).toEqual({ kind: 'offsets', offsets: new Map([[0, 5n], [2, 7n]]) });
    expect(() => parseBound('2026-12-01T00:00:00', '--from')).toThrow(UsageError); // no zone: local time differs per machine
    expect(() => parseBound('now', '--from')).toThrow(/--from: expected/);
    expect(() => parseBound('0:1,0:2', '--to')).toThrow(/partition 0 given twice/);
  });

  it('resolves times per partition, now to the last stable offset, and leaves partitions out of a list empty', async () => {
    expect(await resolvePlan(admin, 't', { kind: 'time', ms: 1 }, { kind: 'now' })).toEqual([{ partition: 0, from: 20n, to: 100n }, { partition: 1, from: 21n, to: 100n }]);
    expect(await resolvePlan(admin, 't', { kind: 'offsets', offsets: new Map([[1, 30n]]) }, { kind: 'time', ms: 2 })).toEqual([{ partition: 0, from: 80n, to: 80n }, { partition: 1, from: 30n, to: 80n }]);
    await expect(resolvePlan(admin, 't', { kind: 'offsets', offsets: new Map([[7, 1n]]) }, { kind: 'now' })).rejects.toThrow(/partition 7/);
  });

  it('derives the same group from the same arguments, and reads its plan back from offset metadata', async () => {
    const parts = { input: 'a', output: 'b', from: 'earliest', to: 'now', model: 'churn@1' };
    expect(defaultGroupId('g', parts)).toBe(defaultGroupId('g', { ...parts }));
    expect(defaultGroupId('g', parts)).not.toBe(defaultGroupId('g', { ...parts, to: '2026-01-01T00:00:00Z' }));
    const metadata = encodePlan({ partition: 0, from: 5n, to: 9n });
    const fetchOffsets = async () => [{ topic: 't', partitions: [{ partition: 0, offset: '7', metadata }, { partition: 1, offset: '-1', metadata: null }] }];
    expect(await storedPlan({ fetchOffsets } as never, 'g', 't')).toEqual(new Map([[0, { partition: 0, from: 5n, to: 9n, next: 7n }]]));
    const foreign = async () => [{ topic: 't', partitions: [{ partition: 0, offset: '7', metadata: '' }] }];
    await expect(storedPlan({ fetchOffsets: foreign } as never, 'g', 't')).rejects.toThrow(/no backfill wrote/);
  });
});

describe('checkRange', () => {
  it('refuses a range that is empty by construction, naming the flag', () => {
    const at = (t: string) => parseBound(t, '--from');
    expect(() => checkRange(at('2026-12-02T00:00:00Z'), parseBound('2026-12-01T00:00:00Z', '--to'))).toThrow('--to: expected a time after --from (2026-12-02T00:00:00.000Z), got 2026-12-01T00:00:00.000Z');
    expect(() => checkRange(at('0:10,1:3'), parseBound('1:9,0:5', '--to'))).toThrow("--to: partition 0: expected an offset after --from's 10, got 5");
    expect(() => checkRange(at('0:10'), parseBound('0:10', '--to'))).toThrow('partition 0');
  });

  it('accepts ranges that may hold records', () => {
    expect(() => checkRange(parseBound('2026-12-01T00:00:00Z', '--from'), parseBound('2026-12-02T00:00:00Z', '--to'))).not.toThrow();
    expect(() => checkRange(parseBound('0:5', '--from'), parseBound('0:6,1:0', '--to'))).not.toThrow();
    expect(() => checkRange(parseBound('earliest', '--from'), parseBound('now', '--to'))).not.toThrow();
  });
});
