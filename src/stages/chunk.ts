/**
 * The chunk processor: one chunk of one partition through every stage, in order:
 *   decode + vectorize -> (batch + infer, shared with the other partitions) -> encode -> produce.
 * A record that fails permanently at any stage becomes a dead letter on its own; the rest of the
 * chunk goes on. Transient and fatal errors are thrown to the caller (consume.ts), which pauses
 * the partition and reads the chunk again: nothing of a failed chunk is committed.
 */
import type { KafkaMessage, Message } from 'kafkajs';
import type { Logger } from 'pino';
import { type DeadLetterContext, deadLetter } from './deadletter.js';
import type { ChunkDecoder } from './decode/row-decoder.js';
import type { ScoredEventEncoder } from './encode.js';
import { type ErrorCode, ScorerError } from '../errors.js';
import { type ChunkTrace, type ChunkTracer, NO_TRACING } from '../ops/tracing.js';
import type { RowScorer } from './infer/infer.js';
import type { ChunkCommitter } from './produce.js';

export interface Chunk {
  topic: string;
  partition: number;
  /** Consecutive records of the partition, in offset order, none already committed. */
  messages: KafkaMessage[];
}

export interface ChunkResult {
  scored: number;
  deadLettered: Partial<Record<ErrorCode, number>>;
  /** Event times (ms) of the scored records, for the end-to-end latency histogram. */
  eventTimes: number[];
  nextOffset: bigint;
}

/** What the consume stage hands each chunk to. */
export interface ChunkHandler {
  /** Processes and commits one chunk; rejects (nothing committed) with a transient or fatal ScorerError, or a bug. */
  process(chunk: Chunk): Promise<ChunkResult>;
}

export interface ChunkProcessorOptions {
  decoder: ChunkDecoder;
  scorer: Pick<RowScorer, 'score'>;
  encoder: ScoredEventEncoder;
  committer: ChunkCommitter;
  outputTopic: string;
  dlqTopic: string;
  deadLetterContext: DeadLetterContext;
  logger: Logger;
  /** Wall clock in ms (scored_time, dead-letter time); injectable for tests. */
  now: () => number;
  /** Traces (src/ops/tracing.ts); NO_TRACING when absent. */
  tracer?: ChunkTracer;
}

export class ChunkProcessor implements ChunkHandler {
  readonly #opts: ChunkProcessorOptions;

  constructor(opts: ChunkProcessorOptions) {
    this.#opts = opts;
  }

  async process(chunk: Chunk): Promise<ChunkResult> {
    const trace = (this.#opts.tracer ?? NO_TRACING).startChunk(chunk);
    try {
      const result = await this.#process(chunk, trace);
      trace.end(result);
      return result;
    } catch (err) {
      trace.fail(err);
      throw err;
    }
  }

  async #process({ topic, partition, messages }: Chunk, trace: ChunkTrace): Promise<ChunkResult> {
    const { decoder, scorer, encoder, committer, logger: log } = this.#opts;
    const last = messages[messages.length - 1];
    if (last === undefined) throw new Error('bug: empty chunk');
    const debug = log.isLevelEnabled('debug');

    // decode + vectorize: one row per decodable record.
    const { features, rows, rowOf, envelopes, failures, schemaIds } = await decoder.decodeChunk(messages.map((m) => m.value));
    if (debug) log.debug({ topic, partition, records: messages.length, schemaIds }, 'chunk: decoded');

    // batch + infer: rows from every partition share micro-batches.
    const outcomes = rows > 0 ? await scorer.score(features, rows) : [];
    if (debug) log.debug({ topic, partition, rows, failed: failures.size }, 'chunk: scored');

    // encode: one scored event or one dead letter per input record, in input order.
    const scoredTime = this.#opts.now();
    const scoredMessages: Message[] = [];
    const deadLetters: Message[] = [];
    const deadLettered: Partial<Record<ErrorCode, number>> = {};
    const eventTimes: number[] = [];
    const source = { topic, partition };
    messages.forEach((m, i) => {
      const row = rowOf[i] as number;
      const outcome = row >= 0 ? outcomes[row] : undefined;
      const envelope = envelopes[i];
      if (outcome?.ok === true && envelope !== undefined) {
        const value = encoder.encode(encoder.scoredEvent(envelope, { topic, partition, offset: m.offset }, outcome, scoredTime));
        scoredMessages.push({ key: m.key, value, headers: trace.headersFor(i, this.#opts.outputTopic) });
        eventTimes.push(envelope.event_time);
        return;
      }
      const error = failures.get(i) ?? (outcome?.ok === false ? outcome.error : new ScorerError('INFERENCE_FAILED', 'no inference result for this row'));
      deadLettered[error.code] = (deadLettered[error.code] ?? 0) + 1;
      deadLetters.push(deadLetter(m, source, error, this.#opts.deadLetterContext, scoredTime, trace.headersFor(i, this.#opts.dlqTopic, error)));
    });
    if (deadLetters.length > 0) {
      log.warn({ topic, partition, firstOffset: messages[0]?.offset, lastOffset: last.offset, deadLettered }, 'records dead-lettered');
    }

    // produce: outputs + dead letters + the input offset in one transaction.
    const nextOffset = BigInt(last.offset) + 1n;
    await committer.commit({
      partition,
      outputs: [
        { topic: this.#opts.outputTopic, messages: scoredMessages },
        { topic: this.#opts.dlqTopic, messages: deadLetters },
      ],
      nextOffset,
    });
    if (debug) log.debug({ topic, partition, nextOffset: nextOffset.toString() }, 'chunk: committed');
    return { scored: scoredMessages.length, deadLettered, eventTimes, nextOffset };
  }
}
