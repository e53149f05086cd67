// Lag status rules (src/ops/lag-status.ts) on synthetic windows: each rule, the cases that must not
// trip it, the order in which rules win, and the decoding of a group's assignment.
import '../../../src/kafka/kafkajs-fix.js'; // before kafkajs: see the module
import { AssignerProtocol, type GroupDescription } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { CAUGHT_UP_LAG, LAG_STATUS_WINDOW, type LagObservation, LagStatusTracker, evaluateLagStatus, ownedPartitions } from '../../../src/ops/lag-status.js';

/** One sample: committed offset and log end; lag = end - committed (or end - low when nothing is committed). */
const obs = (committed: number, high: number, { low = 0, owned = true } = {}): LagObservation => ({
  committed: BigInt(committed),
  low: BigInt(low),
  high: BigInt(high),
  lag: committed < 0 ? high - low : high - committed,
  owned,
});

/** A full window from (committed, high) pairs given per step. */
const windowOf = (steps: (i: number) => LagObservation): LagObservation[] => Array.from({ length: LAG_STATUS_WINDOW }, (_, i) => steps(i));

describe('evaluateLagStatus', () => {
  it('OK while the window is not full yet, whatever the samples say (not enough history)', () => {
    const stuck = windowOf(() => obs(100, 500)).slice(1);
    expect(evaluateLagStatus(stuck)).toBe('OK');
    expect(evaluateLagStatus([])).toBe('OK');
  });

  it('OK when lag reached 0 at some point of the window, even if it grows afterwards (Burrow rule 1)', () => {
    expect(evaluateLagStatus(windowOf((i) => obs(100, i === 0 ? 100 : 100 + i * 10)))).toBe('OK');
  });

  it(`OK for an idle partition whose lag reads ${CAUGHT_UP_LAG} (a transactional topic's commit marker), committed offset not moving`, () => {
    expect(evaluateLagStatus(windowOf(() => obs(500, 501)))).toBe('OK');
  });

  it('OK when the committed offset moves and lag decreases somewhere, though it never reached 0', () => {
    const lags = [50, 60, 70, 65, 80, 90, 100, 110, 120, 130];
    expect(evaluateLagStatus(windowOf((i) => obs(i * 100, i * 100 + lags[i]!)))).toBe('OK');
  });

  it('WARN when the committed offset moves but lag never decreases (lag growing while committing)', () => {
    expect(evaluateLagStatus(windowOf((i) => obs(i * 100, i * 150 + 10)))).toBe('WARN');
    // Flat lag counts as not decreasing, as in Burrow.
    expect(evaluateLagStatus(windowOf((i) => obs(i * 100, i * 100 + 10)))).toBe('WARN');
  });

  it('STALL when the committed offset does not move while lag > 0 and a member holds the partition', () => {
    expect(evaluateLagStatus(windowOf((i) => obs(100, 200 + i)))).toBe('STALL');
    expect(evaluateLagStatus(windowOf(() => obs(100, 200)))).toBe('STALL');
  });

  it('STOP when the committed offset does not move while lag > 0 and nobody holds the partition', () => {
    expect(evaluateLagStatus(windowOf((i) => obs(100, 200 + i, { owned: false })))).toBe('STOP');
    // Never committed, records waiting, nobody consuming: stopped as well.
    expect(evaluateLagStatus(windowOf(() => obs(-1, 40, { owned: false })))).toBe('STOP');
  });

  it('STOP only when nobody held the partition in any poll of the window: a rebalance in between stays STALL', () => {
    const rebalancing = windowOf((i) => obs(100, 200, { owned: i < LAG_STATUS_WINDOW - 2 })); // the last two polls caught a rebalance
    expect(evaluateLagStatus(rebalancing)).toBe('STALL');
    const joined = windowOf((i) => obs(100, 200, { owned: i === LAG_STATUS_WINDOW - 1 }));
    expect(evaluateLagStatus(joined)).toBe('STALL');
  });

  it('an owner that left becomes STOP once a whole window passed without one', () => {
    const t = new LagStatusTracker();
    for (let i = 0; i < LAG_STATUS_WINDOW; i++) t.observe(0, obs(100, 200));
    for (let i = 0; i < LAG_STATUS_WINDOW - 1; i++) expect(t.observe(0, obs(100, 200, { owned: false }))).toBe('STALL');
    expect(t.observe(0, obs(100, 200, { owned: false }))).toBe('STOP');
  });

  it('a partition that is not held but whose offset moved (its owner just left) is not STOP', () => {
    expect(evaluateLagStatus(windowOf((i) => obs(Math.min(i, 5) * 10, 1_000, { owned: false })))).toBe('OK');
  });

  it('ERR when the committed offset went back (offsets reset), at any window length', () => {
    expect(evaluateLagStatus([obs(100, 300), obs(50, 300)])).toBe('ERR');
    expect(evaluateLagStatus(windowOf((i) => obs(i === 4 ? 10 : 100 + i, 300)))).toBe('ERR');
  });

  it('ERR when retention deleted records before they were scored (committed < log start)', () => {
    expect(evaluateLagStatus([obs(100, 300, { low: 150 })])).toBe('ERR');
  });

  it('ERR when the committed offset is beyond the log end (topic recreated or truncated), even with lag 0 elsewhere', () => {
    expect(evaluateLagStatus(windowOf((i) => (i === 3 ? obs(900, 100) : obs(100, 100))))).toBe('ERR');
  });

  it('not ERR: nothing committed yet with records deleted by retention (lag counts from the log start)', () => {
    expect(evaluateLagStatus([obs(-1, 300, { low: 150 })])).toBe('OK');
  });

  it('not ERR: the first commit after none (-1 to an offset)', () => {
    expect(evaluateLagStatus([obs(-1, 300), obs(20, 300)])).toBe('OK');
  });
});

describe('LagStatusTracker', () => {
  it('judges each partition on its own last window and forgets older samples', () => {
    const t = new LagStatusTracker();
    let status = 'OK';
    // Partition 0 stalls at 100; partition 1 keeps up.
    for (let i = 0; i < LAG_STATUS_WINDOW; i++) {
      status = t.observe(0, obs(100, 200));
      expect(t.observe(1, obs(i * 10, i * 10))).toBe('OK');
      if (i < LAG_STATUS_WINDOW - 1) expect(status).toBe('OK');
    }
    expect(status).toBe('STALL');
    // It moves again and lag drops: OK at once.
    expect(t.observe(0, obs(150, 200))).toBe('OK');
    // A rewind (150 -> 120) is ERR for as long as both of its samples are in the window.
    expect(t.observe(0, obs(120, 200))).toBe('ERR');
    for (let i = 0; i < LAG_STATUS_WINDOW - 2; i++) expect(t.observe(0, obs(120 + i, 120 + i))).toBe('ERR');
    expect(t.observe(0, obs(200, 200))).toBe('OK');
  });
});

describe('ownedPartitions', () => {
  const member = (id: string, assignment: Record<string, number[]>) => ({
    memberId: id,
    clientId: 'c',
    clientHost: '/127.0.0.1',
    memberMetadata: Buffer.alloc(0),
    memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) }),
  });
  const group = (state: GroupDescription['state'], members: GroupDescription['members'], protocolType = 'consumer'): GroupDescription => ({ groupId: 'g', members, protocol: 'RoundRobinAssigner', protocolType, state });

  it("collects the topic's partitions over all members of a stable group", () => {
    const g = group('Stable', [member('a', { features: [0, 2], other: [1] }), member('b', { features: [1] })]);
    expect([...ownedPartitions(g, 'features')].sort()).toEqual([0, 1, 2]);
    expect([...ownedPartitions(g, 'other')]).toEqual([1]);
  });

  it('nobody owns anything while the group rebalances, is empty, or is unknown', () => {
    expect(ownedPartitions(group('PreparingRebalance', [member('a', { features: [0] })]), 'features').size).toBe(0);
    expect(ownedPartitions(group('Empty', []), 'features').size).toBe(0);
    expect(ownedPartitions(group('Dead', []), 'features').size).toBe(0);
    expect(ownedPartitions(undefined, 'features').size).toBe(0);
  });

  it('a member with an empty assignment (joined, nothing assigned yet) owns nothing', () => {
    const g = group('Stable', [{ ...member('a', {}), memberAssignment: Buffer.alloc(0) }, member('b', { features: [3] })]);
    expect([...ownedPartitions(g, 'features')]).toEqual([3]);
  });

  it('does not decode members of another protocol type (e.g. connect)', () => {
    expect(ownedPartitions(group('Stable', [member('a', { features: [0] })], 'connect'), 'features').size).toBe(0);
  });
});
