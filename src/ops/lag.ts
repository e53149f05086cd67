/**
 * Consumer lag from the broker, every LAG_POLL_INTERVAL_MS (never per batch): end offset minus
 * the group's committed offset per partition, exported under the names SREs already chart
 * (kafka_consumergroup_lag{group,topic,partition}, kafka_consumergroup_lag_sum), plus lag in
 * seconds: the age of the oldest fetched-but-uncommitted event of each partition this instance owns.
 *
 * The committed offset is what every instance of the group shares, so each instance reports lag
 * for all partitions; Prometheus queries should take max() by partition, not sum(), across pods.
 * kafkajs reads end offsets as the high watermark; with a transactional input topic the last
 * record of a partition is a commit marker, so an idle partition can show lag 1 (DESIGN.md).
 * Each poll also feeds the partition's lag status (src/ops/lag-status.ts: OK/WARN/STALL/STOP/ERR).
 */
import type { Admin } from 'kafkajs';
import type { Logger } from 'pino';
import type { PartitionProgress } from '../stages/consume.js';
import { LAG_STATUSES, LagStatusTracker, ownedPartitions } from './lag-status.js';
import type { LagMetrics } from './metrics.js';

export interface LagSample {
  partition: number;
  lag: number;
  seconds: number;
}

export interface LagPollerOptions {
  admin: Admin;
  groupId: string;
  topic: string;
  metrics: LagMetrics;
  logger: Logger;
  /** This instance's view of a partition it owns (the oldest uncommitted event, for lag in seconds). */
  progress: (partition: number) => PartitionProgress | undefined;
  /** Refreshes what `progress` reads before each poll (the pipelines' progress, when they run in worker threads: src/threads/). */
  beforePoll?: () => Promise<void>;
}

export class LagPoller {
  readonly #o: LagPollerOptions;
  #timer: NodeJS.Timeout | undefined;
  #loop = 0;
  #last: LagSample[] = [];
  readonly #status = new LagStatusTracker();

  constructor(opts: LagPollerOptions) {
    this.#o = opts;
  }

  get last(): readonly LagSample[] {
    return this.#last;
  }

  start(intervalMs: number): void {
    if (this.#timer !== undefined) return;
    // Each start() owns one loop; a poll still in flight from a previous loop must not reschedule.
    const loop = ++this.#loop;
    const tick = () => {
      this.poll()
        .catch((err: unknown) => this.#o.logger.warn({ err: String(err) }, 'lag poll failed; keeping the previous values'))
        .finally(() => {
          if (this.#loop === loop && this.#timer !== undefined) this.#timer = setTimeout(tick, intervalMs);
        });
    };
    this.#timer = setTimeout(tick, 0);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#loop++;
  }

  async poll(now = Date.now()): Promise<LagSample[]> {
    await this.#o.beforePoll?.();
    const [ends, committed, described] = await Promise.all([
      this.#o.admin.fetchTopicOffsets(this.#o.topic),
      this.#o.admin.fetchOffsets({ groupId: this.#o.groupId, topics: [this.#o.topic] }),
      // Who holds each partition: tells STOP (nobody consumes it) from STALL (held, not moving).
      this.#o.admin.describeGroups([this.#o.groupId]),
    ]);
    const owned = ownedPartitions(described.groups[0], this.#o.topic);
    const committedBy = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
    const group = this.#o.groupId;
    const topic = this.#o.topic;
    let sum = 0;
    const samples = ends.map(({ partition, high, low }) => {
      const c = committedBy.get(partition) ?? -1n;
      // Nothing committed yet: everything still retained is behind.
      const lag = Number(BigInt(high) - (c < 0n ? BigInt(low) : c));
      const pendingAt = this.#o.progress(partition)?.oldestPendingAt;
      const seconds = lag > 0 && pendingAt !== undefined ? Math.max(0, (now - pendingAt) / 1000) : 0;
      sum += lag;
      this.#o.metrics.consumerGroupLag.set({ group, topic, partition: String(partition) }, lag);
      this.#o.metrics.consumerGroupLagSeconds.set({ group, topic, partition: String(partition) }, seconds);
      const status = this.#status.observe(partition, { committed: c, low: BigInt(low), high: BigInt(high), lag, owned: owned.has(partition) });
      for (const s of LAG_STATUSES) this.#o.metrics.consumerGroupLagStatus.set({ group, topic, partition: String(partition), status: s }, s === status ? 1 : 0);
      return { partition, lag, seconds };
    });
    this.#o.metrics.consumerGroupLagSum.set({ group, topic }, sum);
    this.#last = samples;
    return samples;
  }
}
