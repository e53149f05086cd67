/**
 * Lag *status* per partition: one word an SRE can act on instead of a number to interpret. The
 * states and rules follow Burrow's evaluator (linkedin/Burrow core/internal/evaluator/caching.go),
 * adapted to what the lag poller sees: Burrow reads every offset commit from __consumer_offsets,
 * the poller samples the group's committed offset, the log start and end offsets, and the group's
 * assignment every LAG_POLL_INTERVAL_MS. Pure: the poller feeds samples, the gauge shows the result.
 *
 * Evaluated on the last LAG_STATUS_WINDOW samples of a partition, first match wins:
 *   ERR   in some sample the committed offset is behind the log start (retention deleted records
 *         before they were scored), ahead of the log end (the topic was recreated or truncated), or
 *         lower than in the sample before (offsets were reset, Burrow's REWIND);
 *   OK    fewer than LAG_STATUS_WINDOW samples yet (not enough history to judge), or lag was at most
 *         CAUGHT_UP_LAG in some sample (caught up at some point: Burrow's rule 1);
 *   STOP  the committed offset did not move over the window, and in none of its samples did a member
 *         of a stable group hold the partition: nobody is consuming it (a rebalance in between, when
 *         nobody holds anything for a moment, does not turn a stall into a stop);
 *   STALL the committed offset did not move over the window, and a member held the partition in
 *         some sample: it is consumed but makes no progress (paused, retrying, circuit open, stuck);
 *   WARN  the committed offset moves, but lag never decreased from one sample to the next: the
 *         consumer is slower than the producers;
 *   OK    otherwise.
 */
import '../kafka/kafkajs-fix.js'; // before kafkajs: see the module
import { AssignerProtocol, type GroupDescription } from 'kafkajs';

export const LAG_STATUSES = ['OK', 'WARN', 'STALL', 'STOP', 'ERR'] as const;
export type LagStatus = (typeof LAG_STATUSES)[number];

/** Samples judged per partition (Burrow's default `intervals`): 50 s at the default 5 s poll. */
export const LAG_STATUS_WINDOW = 10;

/**
 * Lag that still counts as caught up. A transactional input topic ends with a commit marker the
 * consumer never commits past, so an idle, fully scored partition reads lag 1 (DESIGN.md).
 */
export const CAUGHT_UP_LAG = 1;

export interface LagObservation {
  /** The group's committed offset (next offset to read); -1n when nothing is committed. */
  committed: bigint;
  /** Log start offset. */
  low: bigint;
  /** Log end offset (high watermark). */
  high: bigint;
  /** What the poller reports as kafka_consumergroup_lag. */
  lag: number;
  /** A member of the (stable) group holds the partition. */
  owned: boolean;
}

/** The status of the newest `window` (oldest first); see the rules at the top of this file. */
export function evaluateLagStatus(window: readonly LagObservation[]): LagStatus {
  if (window.some((o, i) => isError(o, window[i - 1]))) return 'ERR';
  const newest = window.at(-1);
  if (newest === undefined || window.length < LAG_STATUS_WINDOW) return 'OK';
  if (window.some((o) => o.lag <= CAUGHT_UP_LAG)) return 'OK';
  if (window.every((o) => o.committed === newest.committed)) return window.some((o) => o.owned) ? 'STALL' : 'STOP';
  if (window.every((o, i) => i === 0 || o.lag >= window[i - 1]!.lag)) return 'WARN';
  return 'OK';
}

function isError(o: LagObservation, previous: LagObservation | undefined): boolean {
  if (o.committed < 0n) return false; // nothing committed: lag is counted from the log start
  return o.committed < o.low || o.committed > o.high || (previous !== undefined && previous.committed >= 0n && o.committed < previous.committed);
}

/** Keeps each partition's last LAG_STATUS_WINDOW observations and evaluates them. */
export class LagStatusTracker {
  readonly #windows = new Map<number, LagObservation[]>();

  observe(partition: number, observation: LagObservation): LagStatus {
    let window = this.#windows.get(partition);
    if (window === undefined) this.#windows.set(partition, (window = []));
    window.push(observation);
    if (window.length > LAG_STATUS_WINDOW) window.shift();
    return evaluateLagStatus(window);
  }
}

/**
 * Partitions of `topic` held by a member of the group, from DescribeGroups. Only a Stable group's
 * assignment counts: while it rebalances, nobody consumes. Members of a group that is not a plain
 * consumer group (another protocol type) are not decoded.
 */
export function ownedPartitions(group: GroupDescription | undefined, topic: string): Set<number> {
  const owned = new Set<number>();
  if (group === undefined || group.state !== 'Stable' || group.protocolType !== 'consumer') return owned;
  for (const member of group.members) {
    const assignment = member.memberAssignment.length > 0 ? AssignerProtocol.MemberAssignment.decode(member.memberAssignment) : null;
    for (const p of assignment?.assignment[topic] ?? []) owned.add(p);
  }
  return owned;
}
