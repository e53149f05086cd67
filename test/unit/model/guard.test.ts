// The canary guard on a fake clock: it waits for minRows, rolls back on failure rate or p99
// ratio, steps through promote while healthy, and converges with decisions of other instances.
import { describe, expect, it } from 'vitest';
import type { CanarySpec, GuardPolicy } from '../../../src/model/deployment.js';
import { CanaryGuard, DurationHistogram, type GuardRecord, mergeRecords } from '../../../src/model/guard.js';

const POLICY: GuardPolicy = { maxFailureRate: 0.01, maxP99Ratio: 2, minRows: 1000, promote: [25, 50, 100], promoteAfterRows: 2000 };

/** policy null: a canary without a guard. */
function setup(policy: GuardPolicy | null = POLICY, opts: { record?: GuardRecord; instance?: string } = {}) {
  let now = 1_700_000_000_000;
  const canary: CanarySpec = policy === null ? { version: '1.1.0', percent: 10 } : { version: '1.1.0', percent: 10, guard: policy };
  const guard = new CanaryGuard({ key: 'k1', stable: '1.0.0', canary, instance: opts.instance ?? 'pod-a', now: () => now, minLatencySamples: 10, ...(opts.record ? { record: opts.record } : {}) });
  return { guard, tick: (ms: number) => (now += ms), now: () => now };
}

/** n batches of each side with these durations. */
function latencies(guard: CanaryGuard, canaryMs: number, stableMs: number, n = 20): void {
  for (let i = 0; i < n; i++) {
    guard.observeBatch('canary', canaryMs);
    guard.observeBatch('stable', stableMs);
  }
}

describe('CanaryGuard', () => {
  it('observes until minRows, whatever fails before', () => {
    const { guard } = setup();
    expect(guard.state).toBe('observing');
    expect(guard.observeRows(999, 999)).toBeUndefined();
    expect(guard.state).toBe('observing');
    expect(guard.percent).toBe(10);
    expect(guard.record).toBeUndefined();
  });

  it('rolls back at once when the failure rate is above maxFailureRate, and stays rolled back', () => {
    const { guard, tick, now } = setup();
    tick(5_000);
    expect(guard.observeRows(990, 9)).toBeUndefined(); // 0.91 %
    const decision = guard.observeRows(10, 2); // 11 of 1000 = 1.10 %
    expect(decision).toEqual({ action: 'rollback', at: now(), fromPercent: 10, toPercent: 0, reason: 'failure rate 1.10% (11 of 1000 rows) above maxFailureRate 1.00%' });
    expect(guard.state).toBe('rolled_back');
    expect(guard.percent).toBe(0);
    expect(guard.record).toEqual({ key: 'k1', stable: '1.0.0', canary: '1.1.0', state: 'rolled_back', step: 0, percent: 0, decision, by: 'pod-a' });
    expect(guard.observeRows(100_000, 0)).toBeUndefined();
    expect(guard.canaryUnusable('gone')).toBeUndefined();
    expect(guard.status()).toMatchObject({ state: 'rolled_back', percent: 0, lastDecision: decision });
  });

  it('a failure rate equal to the limit is healthy', () => {
    const { guard } = setup();
    expect(guard.observeRows(1000, 10)).toBeUndefined();
    expect(guard.state).toBe('healthy');
  });

  it('rolls back on a p99 ratio above maxP99Ratio', () => {
    const { guard } = setup();
    latencies(guard, 12, 4); // ratio 3
    const decision = guard.observeRows(1000, 0);
    expect(decision?.action).toBe('rollback');
    expect(decision?.reason).toMatch(/^p99 inference 12\.\d ms vs stable 4\.\d ms, ratio 3\.\d\d above maxP99Ratio 2$/);
  });

  it('does not read a ratio into sub-millisecond noise (p99s under 1 ms count as 1 ms)', () => {
    const { guard } = setup();
    latencies(guard, 0.09, 0.02); // "4.5x", but 90 µs
    expect(guard.observeRows(1000, 0)).toBeUndefined();
    expect(guard.state).toBe('healthy');
  });

  it('promotes through every step while healthy, each step judged on a fresh window, and is stable at 100', () => {
    const { guard, tick } = setup();
    latencies(guard, 3, 2.5);
    expect(guard.observeRows(1999, 0)).toBeUndefined();
    expect(guard.state).toBe('healthy');
    tick(60_000);
    const first = guard.observeRows(1, 0);
    expect(first).toMatchObject({ action: 'promote', fromPercent: 10, toPercent: 25 });
    expect(first?.reason).toMatch(/^healthy for 2000 rows \(failure rate 0\.00%, p99 inference 3\.\d ms vs stable 2\.\d ms, ratio 1\.\d\d\): 10% -> 25%$/);
    expect(guard.status()).toMatchObject({ state: 'observing', percent: 25, step: 1, rows: 0, canaryP99Ms: undefined });
    expect(guard.record).toMatchObject({ state: 'promoting', step: 1, percent: 25 });

    // Step 2 needs its own rows and its own latency samples.
    expect(guard.observeRows(2000, 0)).toBeUndefined();
    latencies(guard, 3, 2.5);
    expect(guard.observeRows(1, 0)).toMatchObject({ action: 'promote', fromPercent: 25, toPercent: 50 });
    latencies(guard, 3, 2.5);
    const last = guard.observeRows(5000, 0);
    expect(last).toMatchObject({ action: 'promote', fromPercent: 50, toPercent: 100 });
    expect(guard.state).toBe('promoted');
    expect(guard.record).toMatchObject({ state: 'promoted', step: 3, percent: 100 });
    expect(guard.observeRows(1000, 1000)).toBeUndefined();
  });

  it('rolls back after a promotion if the next step breaches', () => {
    const { guard } = setup();
    latencies(guard, 2, 2);
    guard.observeRows(2000, 0);
    expect(guard.percent).toBe(25);
    expect(guard.observeRows(1000, 50)).toMatchObject({ action: 'rollback', fromPercent: 25, toPercent: 0 });
    expect(guard.record).toMatchObject({ state: 'rolled_back', step: 1, percent: 0 });
  });

  it('does not promote before latency can be judged', () => {
    const { guard } = setup();
    expect(guard.observeRows(50_000, 0)).toBeUndefined();
    expect(guard.state).toBe('healthy');
    latencies(guard, 2, 2);
    expect(guard.observeRows(1, 0)).toMatchObject({ action: 'promote', toPercent: 25 });
  });

  it('without promote steps stays healthy at its percent', () => {
    const { guard } = setup({ ...POLICY, promote: [] });
    latencies(guard, 2, 2);
    expect(guard.observeRows(1_000_000, 0)).toBeUndefined();
    expect(guard.state).toBe('healthy');
    expect(guard.percent).toBe(10);
  });

  it('an unguarded canary is never judged on rates, but one that cannot score is rolled back', () => {
    const { guard } = setup(null);
    expect(guard.state).toBe('unguarded');
    expect(guard.observeRows(100_000, 100_000)).toBeUndefined();
    expect(guard.canaryUnusable('5 consecutive batches failed on every row')).toMatchObject({ action: 'rollback', toPercent: 0, reason: 'the canary cannot score: 5 consecutive batches failed on every row' });
    expect(guard.state).toBe('rolled_back');
  });

  it('a guarded canary that cannot score is rolled back before minRows', () => {
    const { guard } = setup();
    expect(guard.canaryUnusable('every inference worker died')?.action).toBe('rollback');
  });
});

describe('decisions across instances and restarts', () => {
  it('another instance adopts a rollback and a promotion, and ignores what it already passed', () => {
    const a = setup(POLICY, { instance: 'pod-a' });
    const b = setup(POLICY, { instance: 'pod-b' });
    latencies(a.guard, 2, 2);
    a.guard.observeRows(2000, 0);
    const promoted = a.guard.record as GuardRecord;
    expect(b.guard.adopt(promoted)).toBe(true);
    expect(b.guard.status()).toMatchObject({ state: 'observing', percent: 25, step: 1, lastDecision: promoted.decision });
    expect(b.guard.adopt(promoted)).toBe(false);
    b.guard.observeRows(1000, 100);
    const rollback = b.guard.record as GuardRecord;
    expect(rollback.by).toBe('pod-b');
    expect(a.guard.adopt(rollback)).toBe(true);
    expect(a.guard.percent).toBe(0);
    expect(a.guard.adopt(promoted)).toBe(false); // older than what it knows
    expect(a.guard.adopt({ ...rollback, key: 'other' })).toBe(false);
  });

  it('a restarted guard resumes from its record with a fresh window', () => {
    const first = setup();
    latencies(first.guard, 2, 2);
    first.guard.observeRows(2000, 0);
    const restarted = setup(POLICY, { record: first.guard.record as GuardRecord });
    expect(restarted.guard.status()).toMatchObject({ state: 'observing', percent: 25, step: 1, rows: 0 });
  });

  it('mergeRecords picks the furthest decision in any order: rollback > promoted > later step', () => {
    const base = setup().guard;
    const rec = (state: GuardRecord['state'], step: number, at: number): GuardRecord => ({
      key: 'k1', stable: '1.0.0', canary: '1.1.0', state, step, percent: 0, by: 'x',
      decision: { action: state === 'rolled_back' ? 'rollback' : 'promote', at, reason: '', fromPercent: 0, toPercent: 0 },
    });
    const records = [rec('promoting', 1, 1), rec('promoting', 2, 2), rec('promoted', 3, 3), rec('rolled_back', 1, 4)];
    const orders = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]];
    for (const order of orders) expect(order.map((i) => records[i]).reduce(mergeRecords, undefined)).toBe(records[3]);
    expect(mergeRecords(records[0], records[2])).toBe(records[2]);
    expect(mergeRecords(records[1], records[0])).toBe(records[1]);
    expect(base.percent).toBe(10);
  });
});

describe('DurationHistogram', () => {
  it('estimates p99 within one 5 % bucket', () => {
    const h = new DurationHistogram();
    expect(h.quantile(0.99)).toBeUndefined();
    for (let ms = 1; ms <= 1000; ms++) h.add(ms);
    const p99 = h.quantile(0.99) as number;
    expect(p99).toBeGreaterThanOrEqual(990);
    expect(p99).toBeLessThanOrEqual(990 * 1.05);
    h.add(0);
    h.add(1e9); // clamped to the last bucket, not lost
    expect(h.count).toBe(1002);
  });
});
