/**
 * Consume stage: the kafkajs consumer group and the per-partition loop around the pipeline.
 *
 * - read_committed, no auto-commit, eachBatch with several partitions in parallel;
 * - a partition is used only after its transactional producer fenced the previous owner; records
 *   below the committed offset read then are skipped (kafkajs cannot ask for stable offsets);
 * - each fetched batch is cut into chunks; one transaction per chunk, then resolveOffset;
 * - a transient failure pauses the partition, seeks back to the first uncommitted record and
 *   resumes after a jittered backoff: never dead-lettered, never skipped, never committed past.
 */
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import { ScorerError, describe as describeError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import type { ChunkResult, Pipeline } from './chunk.js';
import type { PartitionProducers } from './produce.js';
import { backoffDelay } from '../retry.js';

export interface ConsumeOptions {
  kafka: Kafka;
  groupId: string;
  topic: string;
  pipeline: Pipeline;
  producers: PartitionProducers;
  metrics: Metrics;
  logger: Logger;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  partitionsConsumedConcurrently: number;
  fetch: { maxBytesPerPartition: number; maxBytes: number; minBytes: number; maxWaitTimeMs: number };
  /** Records per transaction at most (a fetched batch larger than this is committed in several). */
  chunkMaxRecords?: number;
  /** Backoff of a paused partition (ms): first and largest delay. */
  retry?: { initialDelayMs: number; maxDelayMs: number };
  /** Pause after BATCH_INFERENCE_FAILED (the model, not a record, failed), ms. */
  circuitCooldownMs?: number;
  /** Backpressure: with more than `max` rows in flight, new chunks wait until at most `resume` remain. */
  inFlight?: { max: number; resume: number };
  /** Called after each committed chunk (metrics, progress). */
  onChunk?: (partition: number, result: ChunkResult) => void;
  /** Called when the consumer crashed for good (kafkajs gave up); the process should exit. */
  onCrash?: (err: unknown) => void;
}

interface PartitionState {
  /** Next offset to process: everything below is committed. undefined = nothing committed yet. */
  next: bigint | undefined;
  failures: number;
  resumeTimer?: NodeJS.Timeout;
}

/** What the lag poller needs from the consumer, per partition. */
export interface PartitionProgress {
  /** Timestamp (ms) of the oldest record fetched and not yet committed; undefined when none. */
  oldestPendingAt: number | undefined;
  paused: boolean;
}

export class ConsumeStage {
  readonly #o: ConsumeOptions;
  readonly #consumer: Consumer;
  readonly #log: Logger;
  readonly #partitions = new Map<number, PartitionState>();
  readonly #pendingSince = new Map<number, number>();
  readonly #paused = new Set<number>();
  /** Rows admitted into the pipeline and not yet committed or failed (all partitions). */
  #inFlight = 0;
  #inFlightDrained: (() => void)[] = [];
  #assigned: number[] = [];
  #joined = false;
  #state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';

  constructor(opts: ConsumeOptions) {
    this.#o = opts;
    this.#log = opts.logger;
    this.#consumer = opts.kafka.consumer({
      groupId: opts.groupId,
      readUncommitted: false,
      sessionTimeout: opts.sessionTimeoutMs,
      heartbeatInterval: opts.heartbeatIntervalMs,
      rebalanceTimeout: Math.max(60_000, opts.sessionTimeoutMs * 2),
      maxBytesPerPartition: opts.fetch.maxBytesPerPartition,
      maxBytes: opts.fetch.maxBytes,
      minBytes: opts.fetch.minBytes,
      maxWaitTimeInMs: opts.fetch.maxWaitTimeMs,
      // kafkajs restarts the consumer on retriable failures; a crash it cannot recover from ends the process.
      retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 30_000 },
    });
    const { GROUP_JOIN, CRASH, REBALANCING } = this.#consumer.events;
    this.#consumer.on(REBALANCING, () => {
      this.#o.metrics.rebalances.inc();
      this.#log.info('rebalance started');
    });
    this.#consumer.on(GROUP_JOIN, ({ payload }) => this.#onAssignment(payload.memberAssignment[opts.topic] ?? [], payload.memberId));
    this.#consumer.on(CRASH, ({ payload }) => {
      this.#log.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
      if (!payload.restart) opts.onCrash?.(payload.error);
    });
  }

  get consumer(): Consumer {
    return this.#consumer;
  }

  /** True once the consumer has joined the group (readiness). */
  get joined(): boolean {
    return this.#joined;
  }

  get assignedPartitions(): readonly number[] {
    return this.#assigned;
  }

  progress(partition: number): PartitionProgress {
    return { oldestPendingAt: this.#pendingSince.get(partition), paused: this.#paused.has(partition) };
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: [this.#o.topic], fromBeginning: true });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#o.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
  }

  /** Stop fetching; the batch being processed finishes (and commits) first. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    for (const s of this.#partitions.values()) clearTimeout(s.resumeTimer);
    await this.#consumer.disconnect();
    await this.#o.producers.releaseAll();
    this.#state = 'stopped';
  }

  #onAssignment(partitions: number[], memberId: string): void {
    this.#joined = true;
    const kept = new Set(partitions);
    for (const [partition, state] of this.#partitions) {
      if (kept.has(partition)) continue;
      clearTimeout(state.resumeTimer);
      this.#partitions.delete(partition);
      void this.#o.producers.release(partition);
    }
    for (const p of [...this.#paused, ...this.#pendingSince.keys()]) {
      if (kept.has(p)) continue;
      this.#paused.delete(p);
      this.#pendingSince.delete(p);
    }
    this.#o.metrics.partitionsPaused.set(this.#paused.size);
    this.#assigned = [...partitions].sort((a, b) => a - b);
    this.#o.metrics.partitionsAssigned.set(partitions.length);
    this.#log.info({ memberId, partitions: this.#assigned }, 'partitions assigned');
  }

  async #eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    if (batch.messages.length === 0) return;
    let state = this.#partitions.get(partition);
    try {
      if (state === undefined || !this.#o.producers.has(partition)) {
        const lease = await this.#o.producers.acquire(partition);
        state = { next: lease.committedOffset, failures: state?.failures ?? 0 };
        this.#partitions.set(partition, state);
      }
      const current = state;
      const pending = current.next === undefined ? batch.messages : batch.messages.filter((m) => BigInt(m.offset) >= (current.next as bigint));
      const skipped = batch.messages.length - pending.length;
      if (skipped > 0) {
        // Already committed by a previous owner (or by us before a rebalance): never process twice.
        this.#log.info({ partition, skipped, committed: current.next?.toString() }, 'skipping records below the committed offset');
        resolveOffset((current.next as bigint) > BigInt(batch.lastOffset()) ? batch.lastOffset() : ((current.next as bigint) - 1n).toString());
      }
      this.#o.metrics.fetchLag.set({ topic, partition }, Number(batch.offsetLag()));
      const chunkMax = this.#o.chunkMaxRecords ?? 5_000;
      for (let start = 0; start < pending.length; start += chunkMax) {
        if (!isRunning() || isStale()) return;
        const messages = pending.slice(start, start + chunkMax);
        this.#o.metrics.recordsConsumed.inc({ topic }, messages.length);
        if (!this.#pendingSince.has(partition)) this.#pendingSince.set(partition, Number(messages[0]?.timestamp));
        await this.#admit(messages.length, heartbeat);
        let result: ChunkResult;
        try {
          result = await this.#o.pipeline.process({ topic, partition, messages });
        } finally {
          this.#release(messages.length);
        }
        current.next = result.nextOffset;
        current.failures = 0;
        resolveOffset((result.nextOffset - 1n).toString());
        const following = pending[start + chunkMax];
        if (following === undefined) this.#pendingSince.delete(partition);
        else this.#pendingSince.set(partition, Number(following.timestamp));
        this.#o.onChunk?.(partition, result);
        await heartbeat();
      }
    } catch (err) {
      // Only our own transient/fatal errors are retried; anything else is a bug: let kafkajs
      // crash the consumer (the process exits non-zero) rather than hide it as a retry.
      // A lost model (every inference worker gone) is fatal too: exit and let the orchestrator restart us.
      if (!(err instanceof ScorerError) || err.kind === 'permanent' || err.code === 'MODEL_UNAVAILABLE') throw err;
      this.#pauseAfterFailure(topic, partition, state, err);
    }
  }

  /**
   * Backpressure: while the rows in inference exceed the high-water mark, hold this chunk back
   * (heartbeating) until they fall to the low-water mark. Every partition's handler waits here, so
   * the next fetch — which kafkajs issues only when all handlers returned — waits too: memory is
   * bounded by in-flight rows plus one fetch. A chunk is always admitted when nothing is in flight,
   * so a chunk larger than the mark cannot wait forever.
   */
  async #admit(rows: number, heartbeat: () => Promise<void>): Promise<void> {
    const gate = this.#o.inFlight;
    while (gate !== undefined && this.#inFlight > 0 && this.#inFlight + rows > gate.max && this.#state === 'running') {
      this.#log.debug({ inFlight: this.#inFlight, rows }, 'backpressure: holding a chunk');
      // Woken when in-flight rows fall to the low-water mark; heartbeat meanwhile so a long wait is not a session timeout.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        this.#inFlightDrained.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await heartbeat();
    }
    this.#inFlight += rows;
    this.#o.metrics.inFlightRows.set(this.#inFlight);
  }

  #release(rows: number): void {
    this.#inFlight -= rows;
    this.#o.metrics.inFlightRows.set(this.#inFlight);
    const gate = this.#o.inFlight;
    if (gate === undefined || this.#inFlight <= gate.resume) for (const wake of this.#inFlightDrained.splice(0)) wake();
  }

  /** Pause, seek back to the first uncommitted record, resume after backoff. */
  #pauseAfterFailure(topic: string, partition: number, state: PartitionState | undefined, err: ScorerError): void {
    const s = state ?? { next: undefined, failures: 0 };
    this.#partitions.set(partition, s);
    s.failures += 1;
    const { initialDelayMs, maxDelayMs } = this.#o.retry ?? { initialDelayMs: 200, maxDelayMs: 10_000 };
    const delay =
      err.code === 'BATCH_INFERENCE_FAILED' ? (this.#o.circuitCooldownMs ?? 30_000) : backoffDelay(s.failures, { initialDelayMs, maxDelayMs });
    const code = err.code;
    this.#o.metrics.retries.inc({ stage: err.stage, code });
    this.#log.warn({ partition, code, attempt: s.failures, retryInMs: delay, err: describeError(err) }, 'partition paused after a transient failure; will read the chunk again');
    if (code === 'PRODUCER_FENCED') {
      // Another instance may own the partition now: re-acquire (fence) and re-read the committed offset.
      s.next = undefined;
      this.#partitions.delete(partition);
    }
    const tp = [{ topic, partitions: [partition] }];
    this.#consumer.pause(tp);
    this.#paused.add(partition);
    this.#o.metrics.partitionsPaused.set(this.#paused.size);
    if (s.next !== undefined) this.#consumer.seek({ topic, partition, offset: s.next.toString() });
    clearTimeout(s.resumeTimer);
    s.resumeTimer = setTimeout(() => {
      this.#paused.delete(partition);
      this.#o.metrics.partitionsPaused.set(this.#paused.size);
      this.#log.info({ partition }, 'partition resumed');
      if (this.#state === 'running') this.#consumer.resume(tp);
    }, delay);
  }
}
