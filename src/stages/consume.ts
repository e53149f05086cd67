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
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { Logger } from 'pino';
import { ScorerError, describeError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import { backoffDelay } from '../retry.js';
import type { ChunkHandler, ChunkResult } from './chunk.js';
import type { CircuitBreaker } from './infer/circuit.js';
import type { PartitionLeases } from './produce.js';

/** The parts of a kafkajs consumer this stage uses (created by src/kafka/clients.ts; a test passes a fake). */
export type GroupConsumer = Pick<Consumer, 'connect' | 'subscribe' | 'run' | 'disconnect' | 'pause' | 'resume' | 'seek' | 'on' | 'events'>;

export interface ConsumeOptions {
  /** A consumer of the group, read_committed, not yet connected. */
  consumer: GroupConsumer;
  topic: string;
  /** Processes and commits each chunk (the chunk processor). */
  handler: ChunkHandler;
  /** The per-partition transactional producers: fence on assignment, committed offsets. */
  leases: PartitionLeases;
  /** Its cool-down is the pause after a whole-batch inference failure. */
  circuit: Pick<CircuitBreaker, 'cooldownMs'>;
  metrics: Metrics;
  logger: Logger;
  partitionsConsumedConcurrently: number;
  /** Records per transaction at most (a fetched batch larger than this is committed in several). */
  chunkMaxRecords: number;
  /** Backoff of a paused partition (ms): first and largest delay. */
  retry: { initialDelayMs: number; maxDelayMs: number };
  /** Backpressure: with more than `max` rows in flight, new chunks wait until at most `resume` remain. */
  inFlight: { max: number; resume: number };
  /** Called after each committed chunk (metrics, progress). */
  onChunk(partition: number, result: ChunkResult): void;
  /** Called when the consumer crashed for good (kafkajs gave up); the process should exit. */
  onCrash(err: unknown): void;
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
  readonly #opts: ConsumeOptions;
  readonly #consumer: GroupConsumer;
  readonly #log: Logger;
  readonly #partitions = new Map<number, PartitionState>();
  readonly #pendingSince = new Map<number, number>();
  readonly #paused = new Set<number>();
  /** Rows admitted into the pipeline and not yet committed or failed (all partitions). */
  #inFlight = 0;
  #inFlightDrained: (() => void)[] = [];
  #joined = false;
  /** A missing ACL this stage rethrew: what the crash reports (kafkajs wraps it and keeps only its cause). */
  #denied: ScorerError | undefined;
  #state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';

  constructor(opts: ConsumeOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#consumer = opts.consumer;
    const { GROUP_JOIN, CRASH, REBALANCING } = this.#consumer.events;
    this.#consumer.on(REBALANCING, () => {
      this.#opts.metrics.rebalances.inc();
      this.#log.info('rebalance started');
    });
    this.#consumer.on(GROUP_JOIN, ({ payload }) => {
      // generationId: added by src/kafka/kafkajs-kip447.ts (kafkajs's own payload lacks it).
      const { generationId } = payload as typeof payload & { generationId: number };
      this.#onAssignment(payload.memberAssignment[opts.topic] ?? [], payload.memberId, generationId);
    });
    this.#consumer.on(CRASH, ({ payload }) => {
      this.#log.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
      if (!payload.restart) opts.onCrash(this.#denied ?? payload.error);
    });
  }

  /** True once the consumer has joined the group (readiness). */
  get joined(): boolean {
    return this.#joined;
  }

  progress(partition: number): PartitionProgress {
    return { oldestPendingAt: this.#pendingSince.get(partition), paused: this.#paused.has(partition) };
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: [this.#opts.topic], fromBeginning: true });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#opts.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
  }

  /** Stop fetching; the batch being processed finishes (and commits) first. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    for (const s of this.#partitions.values()) clearTimeout(s.resumeTimer);
    await this.#consumer.disconnect();
    await this.#opts.leases.releaseAll();
    this.#state = 'stopped';
  }

  #onAssignment(partitions: number[], memberId: string, generationId: number): void {
    this.#joined = true;
    this.#opts.leases.assigned?.({ generationId, memberId, partitions });
    const kept = new Set(partitions);
    for (const [partition, state] of this.#partitions) {
      if (kept.has(partition)) continue;
      clearTimeout(state.resumeTimer);
      this.#partitions.delete(partition);
      void this.#opts.leases.release(partition);
    }
    for (const p of [...this.#paused, ...this.#pendingSince.keys()]) {
      if (kept.has(p)) continue;
      this.#paused.delete(p);
      this.#pendingSince.delete(p);
    }
    this.#opts.metrics.partitionsPaused.set(this.#paused.size);
    this.#opts.metrics.partitionsAssigned.set(partitions.length);
    this.#log.info({ memberId, generationId, partitions: [...partitions].sort((a, b) => a - b) }, 'partitions assigned');
  }

  async #eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    if (batch.messages.length === 0) return;
    let state = this.#partitions.get(partition);
    try {
      if (state === undefined || !this.#opts.leases.has(partition)) {
        const lease = await this.#opts.leases.acquire(partition);
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
      this.#opts.metrics.fetchLag.set({ topic, partition }, Number(batch.offsetLag()));
      const chunkMax = this.#opts.chunkMaxRecords;
      for (let start = 0; start < pending.length; start += chunkMax) {
        if (!isRunning() || isStale()) return;
        const messages = pending.slice(start, start + chunkMax);
        this.#opts.metrics.recordsConsumed.inc({ topic }, messages.length);
        if (!this.#pendingSince.has(partition)) this.#pendingSince.set(partition, Number(messages[0]?.timestamp));
        // Stopping while held at the gate: leave the chunk uncommitted (the next owner reads it) rather than drain it too.
        if (!(await this.#admit(messages.length, heartbeat))) return;
        let result: ChunkResult;
        try {
          result = await this.#opts.handler.process({ topic, partition, messages });
        } finally {
          this.#release(messages.length);
        }
        current.next = result.nextOffset;
        current.failures = 0;
        resolveOffset((result.nextOffset - 1n).toString());
        const following = pending[start + chunkMax];
        if (following === undefined) this.#pendingSince.delete(partition);
        else this.#pendingSince.set(partition, Number(following.timestamp));
        this.#opts.onChunk(partition, result);
        await heartbeat();
      }
    } catch (err) {
      // Only our own transient/fatal errors are retried; anything else is a bug: let kafkajs
      // crash the consumer (the process exits non-zero) rather than hide it as a retry.
      // A lost model (every inference worker gone) is fatal too: exit and let the orchestrator restart us.
      // So is a missing ACL: retrying cannot grant it, and a silent stall would hide it.
      if (err instanceof ScorerError && err.code === 'KAFKA_NOT_AUTHORIZED') {
        // kafkajs retries any eachBatch error whose `retriable` is not false (its retry/index.js): crash now instead.
        this.#denied = err;
        throw Object.assign(err, { retriable: false });
      }
      if (!(err instanceof ScorerError) || err.kind === 'permanent' || err.code === 'MODEL_UNAVAILABLE') throw err;
      this.#pauseAfterFailure(topic, partition, state, err);
    }
  }

  /**
   * Backpressure: while the rows in inference exceed the high-water mark, hold this chunk back
   * (heartbeating) until they fall to the low-water mark. Every partition's handler waits here, so
   * the next fetch — which kafkajs issues only when all handlers returned — waits too: memory is
   * bounded by in-flight rows plus one fetch. A chunk is always admitted when nothing is in flight,
   * so a chunk larger than the mark cannot wait forever. Returns false (not admitted) once the
   * stage is stopping: shutdown drains what is in flight, not what waits behind it.
   */
  async #admit(rows: number, heartbeat: () => Promise<void>): Promise<boolean> {
    const gate = this.#opts.inFlight;
    while (this.#inFlight > 0 && this.#inFlight + rows > gate.max && this.#state === 'running') {
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
    if (this.#state !== 'running') return false;
    this.#inFlight += rows;
    this.#opts.metrics.inFlightRows.set(this.#inFlight);
    return true;
  }

  #release(rows: number): void {
    this.#inFlight -= rows;
    this.#opts.metrics.inFlightRows.set(this.#inFlight);
    if (this.#inFlight <= this.#opts.inFlight.resume) for (const wake of this.#inFlightDrained.splice(0)) wake();
  }

  /** Pause, seek back to the first uncommitted record, resume after backoff. */
  #pauseAfterFailure(topic: string, partition: number, state: PartitionState | undefined, err: ScorerError): void {
    const s = state ?? { next: undefined, failures: 0 };
    this.#partitions.set(partition, s);
    s.failures += 1;
    const delay = err.code === 'BATCH_INFERENCE_FAILED' ? this.#opts.circuit.cooldownMs : backoffDelay(s.failures, this.#opts.retry);
    const code = err.code;
    this.#opts.metrics.retries.inc({ stage: err.stage, code });
    this.#log.warn({ partition, code, attempt: s.failures, retryInMs: delay, err: describeError(err) }, 'partition paused after a transient failure; will read the chunk again');
    if (code === 'PRODUCER_FENCED') {
      // Another instance may own the partition now: re-acquire (fence) and re-read the committed offset.
      s.next = undefined;
      this.#partitions.delete(partition);
    }
    const tp = [{ topic, partitions: [partition] }];
    this.#onConsumer('pause', () => this.#consumer.pause(tp));
    this.#paused.add(partition);
    this.#opts.metrics.partitionsPaused.set(this.#paused.size);
    const next = s.next;
    if (next !== undefined) this.#onConsumer('seek', () => this.#consumer.seek({ topic, partition, offset: next.toString() }));
    clearTimeout(s.resumeTimer);
    s.resumeTimer = setTimeout(() => {
      this.#paused.delete(partition);
      this.#opts.metrics.partitionsPaused.set(this.#paused.size);
      this.#log.info({ partition }, 'partition resumed');
      if (this.#state === 'running') this.#onConsumer('resume', () => this.#consumer.resume(tp));
    }, delay);
  }

  /**
   * pause, seek or resume, which kafkajs refuses ("Consumer group was not initialized") while it
   * restarts its consumer after a crash it retries (a broker lost for a while). Such a restart
   * rejoins the group and fetches every assigned partition from its committed offset, unpaused:
   * what the call was for, so the refusal is logged, not thrown (from a timer it would end the
   * process).
   */
  #onConsumer(what: 'pause' | 'seek' | 'resume', call: () => void): void {
    try {
      call();
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, `consumer ${what} refused (the consumer is restarting; it rejoins and reads from the committed offsets)`);
    }
  }
}
