/**
 * A backfill: the plan's offset range of INPUT_TOPIC re-scored into another topic, exactly once,
 * by the stream's own stages — ConsumeStage (a consumer of the backfill's own group), the
 * ChunkProcessor (decode -> score -> encode -> one transaction per chunk) and PartitionProducers
 * (transactional ids `<prefix>-<backfill group>-<topic>-<partition>`, so it never fences, and is
 * never fenced by, the live scorer). What is its own: the range (records at or past a partition's
 * end are left alone and the partition paused), the plan in the commits' metadata (plan.ts), and
 * the end: once every partition reached its end, it stops by itself.
 *
 * A partition is at its end when its committed offset reached `to`, or when the consumer read
 * past `to - 1` a batch with nothing to process (a transaction marker at the end of the range
 * never becomes a record, so the committed offset can stop one short of `to`).
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';
import type { ErrorCode } from '../../errors.js';
import type { Metrics } from '../../ops/metrics.js';
import { type Chunk, type ChunkHandler, type ChunkResult, ChunkSuperseded } from '../../stages/chunk.js';
import { ConsumeStage } from '../../stages/consume.js';
import type { ChunkCommit, ChunkCommitter, PartitionProducers } from '../../stages/produce.js';
import type { CircuitBreaker } from '../../stages/infer/circuit.js';
import type { Config } from '../../config.js';
import { type PartitionRange, encodePlan } from './plan.js';

export interface BackfillRunOptions {
  config: Config;
  topic: string;
  plan: PartitionRange[];
  /** Committed offset per partition when this run starts (a resumed run is part way). */
  committed: Map<number, bigint>;
  consumer: Consumer;
  producers: PartitionProducers;
  /** The chunk processor, made with `committer` below as its committer. */
  processor: ChunkHandler;
  circuit: Pick<CircuitBreaker, 'cooldownMs'>;
  metrics: Metrics;
  logger: Logger;
  onProgress(p: { done: number; total: number; scored: number; deadLettered: number }): void;
}

export interface BackfillTotals {
  scored: number;
  deadLettered: Partial<Record<ErrorCode, number>>;
}

/** Every commit of a partition carries its range, so a re-run finds the plan in the group (plan.ts). */
export function planCommitter(producers: ChunkCommitter, plan: PartitionRange[]): ChunkCommitter {
  const metadata = new Map(plan.map((r) => [r.partition, encodePlan(r)]));
  return { commit: (c: ChunkCommit) => producers.commit({ ...c, metadata: metadata.get(c.partition) }) };
}

export class BackfillRun {
  readonly #opts: BackfillRunOptions;
  readonly #ranges: Map<number, PartitionRange>;
  readonly #next = new Map<number, bigint>();
  readonly #done = new Set<number>();
  readonly #totals: BackfillTotals = { scored: 0, deadLettered: {} };
  readonly #total: number;
  #finished: () => void = () => undefined;
  readonly finished: Promise<void>;
  readonly crashed: Promise<unknown>;
  #crash: (err: unknown) => void = () => undefined;
  readonly #consume: ConsumeStage;
  #joined = false;

  constructor(opts: BackfillRunOptions) {
    this.#opts = opts;
    this.#ranges = new Map(opts.plan.map((r) => [r.partition, r]));
    this.#total = opts.plan.reduce((n, r) => n + Number(r.to - r.from), 0);
    this.finished = new Promise((r) => (this.#finished = r));
    this.crashed = new Promise((r) => (this.#crash = r));
    for (const r of opts.plan) this.#next.set(r.partition, opts.committed.get(r.partition) ?? r.from);
    const handler: ChunkHandler = { process: (chunk) => this.#process(chunk) };
    const { config, consumer } = opts;
    this.#consume = new ConsumeStage({
      consumer,
      topic: opts.topic,
      handler,
      leases: opts.producers,
      circuit: opts.circuit,
      metrics: opts.metrics,
      logger: opts.logger,
      partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
      chunkMaxRecords: config.kafka.chunkMaxRecords,
      retry: config.kafka.partitionRetry,
      inFlight: { max: config.backpressure.maxInFlightRows, resume: config.backpressure.resumeInFlightRows },
      onChunk: () => undefined,
      onCrash: (err) => this.#crash(err),
    });
    // A batch of only transaction markers (or aborted records) is never handed to the handler;
    // kafkajs reports it here, with the offsets it covered.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      const { partition, batchSize, firstOffset, lastOffset } = payload as { partition: number; batchSize: number; firstOffset: string; lastOffset: string };
      const range = this.#ranges.get(partition);
      const next = this.#next.get(partition);
      if (range === undefined || next === undefined || batchSize !== 0) return;
      if (next >= BigInt(firstOffset) && BigInt(lastOffset) + 1n >= range.to) this.#markDone(partition);
    });
    // Partitions with nothing (left) to do are paused as soon as they are assigned.
    consumer.on(consumer.events.GROUP_JOIN, () => {
      this.#joined = true;
      for (const p of this.#done) this.#pause(p);
    });
    for (const r of opts.plan) if ((this.#next.get(r.partition) as bigint) >= r.to) this.#markDone(r.partition);
  }

  get totals(): BackfillTotals {
    return this.#totals;
  }

  get total(): number {
    return this.#total;
  }

  done(): number {
    let n = 0;
    for (const r of this.#ranges.values()) n += Number(((this.#done.has(r.partition) ? r.to : (this.#next.get(r.partition) as bigint)) - r.from));
    return n;
  }

  /** Starts consuming; resolves once the consumer runs (finished resolves at the end of the range). */
  async start(): Promise<void> {
    if (this.#done.size === this.#ranges.size) return;
    await this.#consume.start();
  }

  stop(): Promise<void> {
    return this.#consume.stop();
  }

  async #process(chunk: Chunk): Promise<ChunkResult> {
    const range = this.#ranges.get(chunk.partition);
    const first = chunk.messages[0];
    if (range === undefined || first === undefined) throw new Error(`bug: chunk of partition ${chunk.partition} outside the plan`);
    const inRange = chunk.messages.filter((m) => BigInt(m.offset) < range.to);
    if (inRange.length === 0) {
      // Past the range, but the partition is done only once the chunks before this one committed:
      // the range's last records may still be in their transaction (or held at the in-flight
      // gate), and stopping now would leave them out of a backfill reported done.
      if (chunk.after !== undefined && !(await chunk.after)) throw new ChunkSuperseded(chunk.partition);
      this.#markDone(chunk.partition);
      // Nothing committed: past the range, the backfill leaves records to the live scorer.
      return { scored: 0, deadLettered: {}, eventTimes: [], nextOffset: BigInt(first.offset), versions: [] };
    }
    const result = await this.#opts.processor.process({ ...chunk, messages: inRange });
    this.#next.set(chunk.partition, result.nextOffset);
    this.#totals.scored += result.scored;
    for (const [code, n] of Object.entries(result.deadLettered) as [ErrorCode, number][]) this.#totals.deadLettered[code] = (this.#totals.deadLettered[code] ?? 0) + n;
    if (inRange.length < chunk.messages.length || result.nextOffset >= range.to) this.#markDone(chunk.partition);
    this.#report();
    return result;
  }

  #report(): void {
    const dead = Object.values(this.#totals.deadLettered).reduce((a, b) => a + (b ?? 0), 0);
    this.#opts.onProgress({ done: this.done(), total: this.#total, scored: this.#totals.scored, deadLettered: dead });
  }

  /** Before the group is joined there is nothing to pause: GROUP_JOIN pauses the done partitions then. */
  #pause(partition: number): void {
    if (this.#joined) this.#opts.consumer.pause([{ topic: this.#opts.topic, partitions: [partition] }]);
  }

  #markDone(partition: number): void {
    if (this.#done.has(partition)) return;
    this.#done.add(partition);
    this.#opts.logger.info({ partition, range: this.#ranges.get(partition) && { from: String(this.#ranges.get(partition)?.from), to: String(this.#ranges.get(partition)?.to) } }, 'partition backfilled to the end of its range');
    this.#pause(partition);
    this.#report();
    if (this.#done.size === this.#ranges.size) this.#finished();
  }
}
