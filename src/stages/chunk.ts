/**
 * The chunk processor: one chunk of one partition through every stage, in order:
 *   route -> decode + vectorize -> (batch + infer, shared with the other partitions) -> encode -> produce.
 * A chunk is scored by one model generation (src/model/): acquired before its transaction and
 * released after its commit or abort, so a deployment change lands at a transaction boundary and
 * each record is scored by exactly one version. Stable and canary split the records by key hash
 * (route.ts); the shadow scores its share as well, into its own topic, in the same transaction.
 * A record that fails permanently at any stage becomes a dead letter on its own; the rest of the
 * chunk goes on. Transient and fatal errors are thrown to the caller (consume.ts), which pauses
 * the partition and reads the chunk again: nothing of a failed chunk is committed. A shadow never
 * fails, dead-letters or retries the chunk: its failures are only counted.
 */
import type { KafkaMessage, Message } from 'kafkajs';
import type { Logger } from 'pino';
import { type ErrorCode, ScorerError } from '../errors.js';
import { type ChunkTrace, type ChunkTracer, NO_TRACING } from '../ops/tracing.js';
import type { Lease, Served } from '../model/generation.js';
import type { Role } from '../model/served.js';
import { deadLetter } from './deadletter.js';
import type { DecodedChunk } from './decode/row-decoder.js';
import type { RowOutcome } from './infer/infer.js';
import type { ChunkCommit, ChunkCommitter } from './produce.js';
import { routeChunk } from './route.js';
import type { StagesFor, VersionStages } from './version-stages.js';

export interface Chunk {
  topic: string;
  partition: number;
  /** Consecutive records of the partition, in offset order, none already committed. */
  messages: KafkaMessage[];
  /**
   * The partition's chunk before this one, still on its way (consume.ts hands a chunk over while
   * the one before commits): true once it committed, false if it failed. This chunk commits only
   * after a true, and never after a false (it would commit offsets past records not committed).
   */
  after?: Promise<boolean>;
}

/** A chunk not committed because the partition's chunk before it failed: it is read again with that one. */
export class ChunkSuperseded extends Error {
  override name = 'ChunkSuperseded';
  constructor(partition: number) {
    super(`partition ${partition}: the chunk before this one failed; this one is read again after it`);
  }
}

/** What one version did with a committed chunk. */
export interface VersionCount {
  version: string;
  role: Role;
  /** Scored events committed (for the shadow: to its topic). */
  scored: number;
  /** Records routed to it that were dead-lettered (shadow: shadowed records without a shadow event). */
  failed: number;
}

export interface ChunkResult {
  scored: number;
  deadLettered: Partial<Record<ErrorCode, number>>;
  /** Event times (ms) of the scored records, for the end-to-end latency histogram. */
  eventTimes: number[];
  nextOffset: bigint;
  /** Per version of the generation that scored the chunk (stable first, shadow last). */
  versions: VersionCount[];
}

/** What the consume stage hands each chunk to. */
export interface ChunkHandler {
  /** Processes and commits one chunk; rejects (nothing committed) with a transient or fatal ScorerError, or a bug. */
  process(chunk: Chunk): Promise<ChunkResult>;
}

/** The model set as the chunk processor needs it: one generation per chunk. */
export interface Generations {
  acquire(): Lease;
}

export interface ChunkProcessorOptions {
  models: Generations;
  /** The decoder, encoder and dead-letter context of a version. */
  stages: StagesFor;
  committer: ChunkCommitter;
  outputTopic: string;
  dlqTopic: string;
  logger: Logger;
  /** Wall clock in ms (scored_time, dead-letter time); injectable for tests. */
  now: () => number;
  /** Traces (src/ops/tracing.ts); NO_TRACING when absent. */
  tracer?: ChunkTracer;
}

/** A key of its own: kafkajs's is a view into the whole fetch response, which it would keep alive until the commit. */
const copyOf = (key: Buffer | null): Buffer | null => (key === null ? null : Buffer.from(key));

/** One version's records of a chunk, decoded and scored. */
interface Scored {
  decoded: DecodedChunk;
  outcomes: RowOutcome[];
}

export class ChunkProcessor implements ChunkHandler {
  readonly #opts: ChunkProcessorOptions;

  constructor(opts: ChunkProcessorOptions) {
    this.#opts = opts;
  }

  /**
   * Not async, and nothing waiting for the commit refers to the chunk: once its records are
   * encoded, the fetched records (and the fetch response their keys and values are views into)
   * can be collected while the transaction runs; the scored events carry copies of the keys.
   */
  process(chunk: Chunk): Promise<ChunkResult> {
    const lease = this.#opts.models.acquire();
    const trace = (this.#opts.tracer ?? NO_TRACING).startChunk(chunk);
    const { partition, after } = chunk;
    const debug = this.#opts.logger.isLevelEnabled('debug');
    return this.#encode(chunk, lease, trace)
      .then(async ({ commit, result }) => {
        // produce: outputs + dead letters (+ shadow events) + the input offset in one transaction.
        if (after !== undefined && !(await after)) throw new ChunkSuperseded(partition);
        await this.#opts.committer.commit(commit);
        if (debug) this.#opts.logger.debug({ partition, nextOffset: commit.nextOffset.toString() }, 'chunk: committed');
        return result;
      })
      .then(
        (result) => {
          trace.end(result);
          return result;
        },
        (err: unknown) => {
          trace.fail(err);
          throw err;
        },
      )
      .finally(() => lease.release());
  }

  /** The chunk scored and encoded: what to commit, and what to report once it is. */
  async #encode({ topic, partition, messages }: Chunk, models: Lease, trace: ChunkTrace): Promise<{ commit: ChunkCommit; result: ChunkResult }> {
    const { logger: log } = this.#opts;
    const last = messages[messages.length - 1];
    if (last === undefined) throw new Error('bug: empty chunk');
    const debug = log.isLevelEnabled('debug');

    // route, then decode + vectorize + batch + infer per version; rows from every partition share micro-batches.
    const { groups, groupOf, posOf, shadowed } = routeChunk(models, messages, partition);
    const [shadow, ...scored] = await Promise.all([
      shadowed !== undefined && shadowed.length > 0 && models.shadow !== undefined ? this.#scoreShadow(models.shadow, shadowed, messages) : undefined,
      ...groups.map((g) => this.#score(g.served, g.indices, messages)),
    ]);
    if (debug) log.debug({ topic, partition, records: messages.length, generation: models.generation, versions: groups.map((g) => `${g.served.version}:${g.indices?.length ?? messages.length}`) }, 'chunk: scored');

    // encode: one scored event or one dead letter per input record, in input order.
    const scoredTime = this.#opts.now();
    const scoredMessages: Message[] = [];
    const deadLetters: Message[] = [];
    const deadLettered: Partial<Record<ErrorCode, number>> = {};
    const eventTimes: number[] = [];
    const versions: VersionCount[] = groups.map((g) => ({ version: g.served.version, role: g.role, scored: 0, failed: 0 }));
    const stagesOf = groups.map((g) => this.#opts.stages(g.served.model));
    const source = { topic, partition };
    messages.forEach((m, i) => {
      const g = groupOf === undefined ? 0 : (groupOf[i] as number);
      const j = posOf === undefined ? i : (posOf[i] as number);
      const { decoded, outcomes } = scored[g] as Scored;
      const stages = stagesOf[g] as VersionStages;
      const row = decoded.rowOf[j] as number;
      const outcome = row >= 0 ? outcomes[row] : undefined;
      const envelope = decoded.envelopes[j];
      const count = versions[g] as VersionCount;
      if (outcome?.ok === true && envelope !== undefined) {
        scoredMessages.push(trace.withContext(i, this.#opts.outputTopic, { key: copyOf(m.key), value: stages.encoder.encode(stages.encoder.scoredEvent(envelope, { topic, partition, offset: m.offset }, outcome, scoredTime)) }));
        eventTimes.push(envelope.event_time);
        count.scored++;
        return;
      }
      const error = decoded.failures.get(j) ?? (outcome?.ok === false ? outcome.error : new ScorerError('INFERENCE_FAILED', 'no inference result for this row'));
      deadLettered[error.code] = (deadLettered[error.code] ?? 0) + 1;
      deadLetters.push(trace.withContext(i, this.#opts.dlqTopic, deadLetter(m, source, error, stages.deadLetterContext, scoredTime), error));
      count.failed++;
    });
    if (deadLetters.length > 0) {
      log.warn({ topic, partition, firstOffset: messages[0]?.offset, lastOffset: last.offset, deadLettered }, 'records dead-lettered');
    }
    const outputs = [
      { topic: this.#opts.outputTopic, messages: scoredMessages },
      { topic: this.#opts.dlqTopic, messages: deadLetters },
    ];
    if (models.shadow !== undefined && shadowed !== undefined) {
      const shadowMessages = shadow === undefined ? [] : this.#encodeShadow(models.shadow, shadowed, shadow, messages, source, scoredTime, trace);
      outputs.push({ topic: models.shadow.topic, messages: shadowMessages });
      versions.push({ version: models.shadow.version, role: 'shadow', scored: shadowMessages.length, failed: shadowed.length - shadowMessages.length });
    }

    const nextOffset = BigInt(last.offset) + 1n;
    return { commit: { partition, outputs, nextOffset }, result: { scored: scoredMessages.length, deadLettered, eventTimes, nextOffset, versions } };
  }

  /** One version's records (`indices`, or all) decoded and scored. */
  async #score(served: Served, indices: number[] | undefined, messages: readonly KafkaMessage[]): Promise<Scored> {
    const values = indices === undefined ? messages.map((m) => m.value) : indices.map((i) => (messages[i] as KafkaMessage).value);
    const decoded = await this.#opts.stages(served.model).decoder.decodeChunk(values);
    const outcomes = decoded.rows > 0 ? await served.scorer.score(decoded.features, decoded.rows) : [];
    return { decoded, outcomes };
  }

  /** The shadow's records scored; undefined when it could not even decode them (the registry: counted, not retried). */
  async #scoreShadow(served: Served, indices: number[], messages: readonly KafkaMessage[]): Promise<Scored | undefined> {
    try {
      return await this.#score(served, indices, messages);
    } catch (err) {
      if (!(err instanceof ScorerError)) throw err;
      this.#opts.logger.warn({ version: served.version, err: err.message }, 'shadow could not score a chunk; the main output goes on');
      return undefined;
    }
  }

  /** Scored events of the shadow for its rows that scored; failures are only counted (never dead letters). */
  #encodeShadow(served: Served & { topic: string }, indices: number[], { decoded, outcomes }: Scored, messages: readonly KafkaMessage[], source: { topic: string; partition: number }, scoredTime: number, trace: ChunkTrace): Message[] {
    const { encoder } = this.#opts.stages(served.model);
    const out: Message[] = [];
    indices.forEach((i, j) => {
      const row = decoded.rowOf[j] as number;
      const outcome = row >= 0 ? outcomes[row] : undefined;
      const envelope = decoded.envelopes[j];
      if (outcome?.ok !== true || envelope === undefined) return;
      const m = messages[i] as KafkaMessage;
      out.push(trace.withContext(i, served.topic, { key: copyOf(m.key), value: encoder.encode(encoder.scoredEvent(envelope, { ...source, offset: m.offset }, outcome, scoredTime)) }));
    });
    return out;
  }
}
