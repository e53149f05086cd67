/**
 * Consume stage: the kafkajs consumer group and the per-partition loop around the pipeline.
 *
 * - read_committed, no auto-commit, eachBatch with several partitions in parallel;
 * - a partition is used only after its lease is taken (the previous owner fenced, its committed
 *   offset read); records below the committed offset are skipped;
 * - each fetched batch is cut into chunks, each handed to the pipeline (scored, then committed in
 *   its own transaction or one shared with other partitions' chunks) and resolved at once, so
 *   kafkajs fetches again while the chunks commit; a partition has at most two chunks in the
 *   pipeline and they commit in offset order (`Chunk.after`);
 * - a transient failure pauses the partition, seeks back to the first uncommitted record and
 *   resumes after a jittered backoff: never dead-lettered, never skipped, never committed past;
 *   the chunks behind the failed one commit nothing and are read again with it;
 * - before a rejoin of the group and before stopping, the chunks in the pipeline settle.
 */
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import { ScorerError, describeError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import { backoffDelay } from '../retry.js';
import { type ChunkHandler, type ChunkResult, ChunkSuperseded } from './chunk.js';
import type { CircuitBreaker } from './infer/circuit.js';
import type { PartitionLeases } from './produce.js';
import { drainBeforeRejoin } from '../kafka/kafkajs-rejoin.js';

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

/** Our own transient and fatal errors (a fenced producer, a broken batch): pause the partition and read the chunk again. */
const retryable = (err: unknown): err is ScorerError => err instanceof ScorerError && err.kind !== 'permanent' && err.code !== 'MODEL_UNAVAILABLE' && err.code !== 'KAFKA_NOT_AUTHORIZED';

/** Chunks of one partition in the pipeline at once: one committing, the next being scored. */
const PIPELINE_DEPTH = 2;
const COMMITTED = Promise.resolve(true);

interface PartitionState {
  /** Everything below is committed. undefined = nothing committed yet (or not known). */
  next: bigint | undefined;
  /** Next offset to hand to the pipeline: the chunks below it are committed or on their way. undefined = `next`. */
  handed: bigint | undefined;
  /** First record timestamps of the chunks handed and not yet committed, oldest first (the lag poller's oldest pending). */
  pending: number[];
  /** Bumped by each failure: a chunk handed over before it that fails too is not handled again. */
  epoch: number;
  /**
   * The chunks handed over in this epoch and not yet settled, oldest first (true: committed). The
   * last is the next chunk's gate (`Chunk.after`); none: every chunk before it committed (one
   * that failed bumped the epoch, and the next epoch starts once they all settled).
   */
  inPipeline: Promise<boolean>[];
  failures: number;
  resumeTimer?: NodeJS.Timeout;
}

const freshState = (next: bigint | undefined, failures: number): PartitionState => ({ next, handed: undefined, pending: [], epoch: 0, inPipeline: [], failures });

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
  /** Per partition: settles once every chunk handed over so far committed or failed. */
  readonly #tails = new Map<number, Promise<void>>();
  /** An error retrying cannot mend (a bug, a missing ACL, a lost model): reported, and thrown to kafkajs from the next batch. */
  #fatal: Error | undefined;
  #reported = false;
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
      if (!payload.restart) this.#report(this.#fatal ?? payload.error);
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
      // Before kafkajs rejoins the group (a rebalance), the chunks handed over commit under the generation they were fetched in.
      eachBatch: drainBeforeRejoin((payload) => this.#eachBatch(payload), () => this.settled()),
    });
  }

  /**
   * Stop fetching; the chunks handed over finish (and commit) first, before the consumer leaves
   * the group (their offsets are committed as its member). Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    for (const s of this.#partitions.values()) clearTimeout(s.resumeTimer);
    await this.settled();
    await this.#consumer.disconnect();
    await this.settled();
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
    if (this.#fatal !== undefined) throw this.#fatal;
    // Empty, or fetched before a failure paused the partition: its seek reads the records again after the backoff.
    if (batch.messages.length === 0 || this.#paused.has(partition)) return;
    let state = this.#partitions.get(partition);
    try {
      if (state === undefined || !this.#opts.leases.has(partition)) {
        // Chunks handed over before a failure or a revocation settle first: what they committed is where to go on.
        await this.#tails.get(partition);
        const lease = await this.#opts.leases.acquire(partition);
        state = freshState(lease.committedOffset, state?.failures ?? 0);
        this.#partitions.set(partition, state);
      } else if (state.handed === undefined) {
        // The first chunk after a failure: the chunks handed before it settle first (one may still have committed).
        await this.#tails.get(partition);
        state.pending = [];
        this.#trackPending(partition, state);
      }
      const current = state;
      const epoch = current.epoch;
      const from = current.handed ?? current.next;
      const pending = from === undefined ? batch.messages : batch.messages.filter((m) => BigInt(m.offset) >= from);
      const skipped = batch.messages.length - pending.length;
      if (skipped > 0 && from !== undefined) {
        // Already committed by a previous owner (or by us before a rebalance): never process twice.
        this.#log.info({ partition, skipped, committed: from.toString() }, 'skipping records below the committed offset');
        resolveOffset(from > BigInt(batch.lastOffset()) ? batch.lastOffset() : (from - 1n).toString());
      }
      this.#opts.metrics.fetchLag.set({ topic, partition }, Number(batch.offsetLag()));
      const chunkMax = this.#opts.chunkMaxRecords;
      // A chunk handed over before failed meanwhile: the rest is read again from its seek.
      const failedMeanwhile = () => this.#partitions.get(partition) !== current || current.epoch !== epoch;
      for (let start = 0; start < pending.length; start += chunkMax) {
        if (!isRunning() || isStale()) return;
        const messages = pending.slice(start, start + chunkMax);
        this.#opts.metrics.recordsConsumed.inc({ topic }, messages.length);
        // Room in the partition's pipeline: the chunk ahead commits while this one is scored.
        while (current.inPipeline.length >= PIPELINE_DEPTH) await current.inPipeline[0];
        // Stopping while held at the gate: leave the chunk uncommitted (the next owner reads it) rather than drain it too.
        if (failedMeanwhile() || !(await this.#admit(messages.length, heartbeat))) return;
        if (failedMeanwhile() || !isRunning() || isStale()) {
          this.#release(messages.length);
          return;
        }
        this.#hand(topic, partition, current, epoch, messages);
        resolveOffset((messages[messages.length - 1] as KafkaMessage).offset);
        await heartbeat();
      }
    } catch (err) {
      // Here (the lease, the heartbeat): only our own transient errors pause the partition. The rest
      // goes to kafkajs as before: its own (a rebalance: it rejoins), a bug or a lost model (it
      // crashes the consumer), a missing ACL (for good: it retries any error whose `retriable` is
      // not false, its retry/index.js).
      if (err instanceof ScorerError && err.code === 'KAFKA_NOT_AUTHORIZED') {
        this.#fatal = Object.assign(err, { retriable: false });
        throw err;
      }
      if (!retryable(err)) throw err;
      this.#pauseAfterFailure(topic, partition, state, err);
    }
  }

  /**
   * Hands a chunk to the pipeline and returns: kafkajs fetches again while it is scored and
   * committed (a fetch no longer waits for the transactions of the one before). A partition's
   * chunks still commit in order: each waits for the one before (`Chunk.after`), and after a
   * failure the ones behind it commit nothing and are read again with it.
   */
  #hand(topic: string, partition: number, state: PartitionState, epoch: number, messages: KafkaMessage[]): void {
    // Nothing committed yet: the records below the first one fetched do not exist for this group (fetched from the beginning).
    if (state.next === undefined) state.next = BigInt((messages[0] as KafkaMessage).offset);
    state.handed = BigInt((messages[messages.length - 1] as KafkaMessage).offset) + 1n;
    state.pending.push(Number(messages[0]?.timestamp));
    this.#trackPending(partition, state);
    const task = this.#opts.handler
      .process({ topic, partition, messages, after: state.inPipeline.at(-1) ?? COMMITTED })
      .then(
        (result) => {
          if (state.next === undefined || result.nextOffset > state.next) state.next = result.nextOffset;
          state.failures = 0;
          state.pending.shift();
          this.#trackPending(partition, state);
          this.#opts.onChunk(partition, result);
          return true;
        },
        (err: unknown) => {
          // Behind a chunk that failed (already handled), or of an epoch before the last failure: nothing more to do.
          if (!(err instanceof ChunkSuperseded) && this.#partitions.get(partition) === state && state.epoch === epoch) this.#onFailure(topic, partition, state, err);
          return false;
        },
      )
      .catch((bug: unknown) => {
        this.#onFailure(topic, partition, state, bug);
        return false;
      });
    state.inPipeline.push(task);
    void task.then(() => state.inPipeline.splice(state.inPipeline.indexOf(task), 1));
    const rows = messages.length; // not the records: they can go once the chunk is encoded (chunk.ts)
    const tail = Promise.all([this.#tails.get(partition), task]).then(() => this.#release(rows));
    this.#tails.set(partition, tail);
    void tail.finally(() => {
      if (this.#tails.get(partition) === tail) this.#tails.delete(partition);
    });
  }

  #trackPending(partition: number, state: PartitionState): void {
    if (this.#partitions.get(partition) !== state) return;
    const oldest = state.pending[0];
    if (oldest === undefined) this.#pendingSince.delete(partition);
    else this.#pendingSince.set(partition, oldest);
  }

  /** Resolves once every chunk handed over so far committed or failed. */
  async settled(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all(this.#tails.values());
  }

  /**
   * A chunk in the pipeline failed. Only our own transient/fatal errors are retried; anything
   * else is a bug: the consumer stops and the process exits non-zero rather than hide it as a
   * retry. A lost model (every inference worker gone) is fatal too: exit and let the orchestrator
   * restart us. So is a missing ACL: retrying cannot grant it, and a silent stall would hide it.
   */
  #onFailure(topic: string, partition: number, state: PartitionState, err: unknown): void {
    if (retryable(err)) {
      this.#pauseAfterFailure(topic, partition, state, err);
      return;
    }
    if (this.#fatal !== undefined) return;
    // Thrown to kafkajs from the next batch, for good (kafkajs retries any error whose `retriable` is not false).
    this.#fatal = Object.assign(err instanceof Error ? err : new Error(String(err)), { retriable: false });
    this.#log.error({ partition, err: describeError(err) }, 'consumer stopping: an error retrying cannot mend');
    this.#report(err);
  }

  /** The consumer stopped for good: once, whichever way it is noticed first (a chunk here, or kafkajs's crash). */
  #report(err: unknown): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#opts.onCrash(err);
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
    const s = state ?? freshState(undefined, 0);
    this.#partitions.set(partition, s);
    s.failures += 1;
    // The chunks handed over behind the failed one commit nothing; the next batch starts at the committed offset.
    s.epoch += 1;
    s.handed = undefined;
    const delay = err.code === 'BATCH_INFERENCE_FAILED' ? this.#opts.circuit.cooldownMs : backoffDelay(s.failures, this.#opts.retry);
    const code = err.code;
    this.#opts.metrics.retries.inc({ stage: err.stage, code });
    this.#log.warn({ partition, code, attempt: s.failures, retryInMs: delay, err: describeError(err) }, 'partition paused after a transient failure; will read the chunk again');
    // Where to read again: the partition's committed offset once the chunks ahead of the failed one settled (one may still commit).
    const ahead = this.#tails.get(partition) ?? Promise.resolve();
    if (code === 'PRODUCER_FENCED') {
      // Another instance may own the partition now: re-acquire (fence) and re-read the committed offset
      // (the records from ours up to it are skipped then).
      this.#partitions.delete(partition);
    }
    const tp = [{ topic, partitions: [partition] }];
    this.#onConsumer('pause', () => this.#consumer.pause(tp));
    this.#paused.add(partition);
    this.#opts.metrics.partitionsPaused.set(this.#paused.size);
    // kafkajs was told each handed-over chunk was done (so it fetched on): seek it back to the first record not committed.
    const sought = ahead.then(() => {
      const next = s.next;
      if (next !== undefined) this.#onConsumer('seek', () => this.#consumer.seek({ topic, partition, offset: next.toString() }));
    });
    clearTimeout(s.resumeTimer);
    s.resumeTimer = setTimeout(() => {
      void sought.then(() => {
        this.#paused.delete(partition);
        this.#opts.metrics.partitionsPaused.set(this.#paused.size);
        this.#log.info({ partition }, 'partition resumed');
        if (this.#state === 'running') this.#onConsumer('resume', () => this.#consumer.resume(tp));
      });
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
