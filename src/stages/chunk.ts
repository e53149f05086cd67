/**
 * One chunk of one partition through every stage, in order:
 *   decode -> vectorize -> (batch + infer, shared with the other partitions) -> encode -> produce.
 * A record that fails permanently at any stage becomes a dead letter on its own; the rest of the
 * chunk goes on. Transient and fatal errors are thrown to the caller (consume.ts), which pauses
 * the partition and reads the chunk again: nothing of a failed chunk is committed.
 */
import type { KafkaMessage, Message } from 'kafkajs';
import type { Logger } from 'pino';
import type { Decoder } from './decode/decoder.js';
import { type DeadLetterContext, deadLetter } from './deadletter.js';
import type { Encoder } from './encode.js';
import { type ErrorCode, ScorerError, isPermanent } from '../errors.js';
import { type FastDecoder, buildFastDecoder } from './decode/fast.js';
import type { RowScorer } from './infer/infer.js';
import type { PartitionProducers } from './produce.js';
import type { EventEnvelope, FeatureEvent, Vectorizer } from './vectorize.js';

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

export interface PipelineDeps {
  decoder: Decoder;
  vectorizer: Vectorizer;
  scorer: RowScorer;
  encoder: Encoder;
  producers: PartitionProducers;
  outputTopic: string;
  dlqTopic: string;
  deadLetterContext: DeadLetterContext;
  logger: Logger;
  now?: () => number;
}

export class Pipeline {
  readonly #d: PipelineDeps;
  readonly #now: () => number;
  /** Fused decode+vectorize per resolved writer schema id; null: that schema takes the generic path. */
  readonly #fast = new Map<number, FastDecoder | null>();

  constructor(deps: PipelineDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** The fast decoder of a framed value's writer schema, if it has one. Call after decoder.prepare(). */
  #fastFor(value: Buffer | null): FastDecoder | null {
    if (value === null || value.length < 5 || value[0] !== 0) return null;
    const id = value.readInt32BE(1);
    let fast = this.#fast.get(id);
    if (fast === undefined) {
      const writer = this.#d.decoder.writerType(id);
      if (writer === undefined) return null; // unknown or incompatible: the generic decoder throws why
      fast = buildFastDecoder(writer, this.#d.decoder.readerType, this.#d.vectorizer.features) ?? null;
      this.#fast.set(id, fast);
    }
    return fast;
  }

  async process({ topic, partition, messages }: Chunk): Promise<ChunkResult> {
    const { decoder, vectorizer, scorer, encoder } = this.#d;
    const last = messages[messages.length - 1];
    if (last === undefined) throw new Error('bug: empty chunk');
    const failures = new Map<number, ScorerError>(); // message index -> why it cannot be scored

    // decode: fetch/resolve every writer schema of the chunk first (the only async step).
    const ids: number[] = [];
    for (const m of messages) {
      const value = m.value;
      if (value !== null && value.length >= 5 && value[0] === 0) ids.push(value.readInt32BE(1));
    }
    await decoder.prepare(ids);
    const log = this.#d.logger;
    const debug = log.isLevelEnabled('debug');
    if (debug) log.debug({ topic, partition, records: messages.length, schemaIds: [...new Set(ids)] }, 'chunk: writer schemas ready');

    // decode + vectorize into one row-major buffer; rowOf[i] = row of message i, or -1.
    const width = vectorizer.width;
    const features = new Float32Array(messages.length * width);
    // Only the envelope is kept after vectorizing: the decoded features (256 doubles for a wide
    // event) would otherwise stay alive until the transaction commits.
    const events: (EventEnvelope | undefined)[] = new Array(messages.length);
    const rowOf = new Int32Array(messages.length).fill(-1);
    let rows = 0;
    messages.forEach((m, i) => {
      try {
        // The fast path declines (undefined) any record it cannot score; the generic path then says why.
        let envelope = this.#fastFor(m.value)?.decode(m.value as Buffer, features, rows);
        if (envelope === undefined) {
          const event = decoder.decode(m.value) as FeatureEvent;
          vectorizer.write(event, features, rows);
          envelope = { event_id: event.event_id, entity_id: event.entity_id, event_time: event.event_time };
        }
        events[i] = envelope;
        rowOf[i] = rows++;
      } catch (err) {
        if (!isPermanent(err)) throw err;
        failures.set(i, err);
      }
    });

    // batch + infer: rows from every partition share micro-batches.
    const outcomes = rows > 0 ? await scorer.score(features.subarray(0, rows * width), rows) : [];
    if (debug) log.debug({ topic, partition, rows, failed: failures.size }, 'chunk: scored');

    // encode: one scored event or one dead letter per input record, in input order.
    const scoredTime = this.#now();
    const scoredMessages: Message[] = [];
    const deadLetters: Message[] = [];
    const deadLettered: Partial<Record<ErrorCode, number>> = {};
    const eventTimes: number[] = [];
    const source = { topic, partition };
    messages.forEach((m, i) => {
      const row = rowOf[i] as number;
      const outcome = row >= 0 ? outcomes[row] : undefined;
      const event = events[i];
      if (outcome?.ok === true && event !== undefined) {
        const value = encoder.encode(encoder.scoredEvent(event, { topic, partition, offset: m.offset }, outcome, scoredTime));
        scoredMessages.push({ key: m.key, value });
        eventTimes.push(event.event_time);
        return;
      }
      const error = failures.get(i) ?? (outcome?.ok === false ? outcome.error : new ScorerError('INFERENCE_FAILED', 'no inference result for this row'));
      deadLettered[error.code] = (deadLettered[error.code] ?? 0) + 1;
      deadLetters.push(deadLetter(m, source, error, this.#d.deadLetterContext, scoredTime));
    });
    if (deadLetters.length > 0) {
      this.#d.logger.warn({ topic, partition, firstOffset: messages[0]?.offset, lastOffset: last.offset, deadLettered }, 'records dead-lettered');
    }

    // produce: outputs + dead letters + the input offset in one transaction.
    const nextOffset = BigInt(last.offset) + 1n;
    await this.#d.producers.commit({
      partition,
      outputs: [
        { topic: this.#d.outputTopic, messages: scoredMessages },
        { topic: this.#d.dlqTopic, messages: deadLetters },
      ],
      nextOffset,
    });
    if (debug) log.debug({ topic, partition, nextOffset: nextOffset.toString() }, 'chunk: committed');
    return { scored: scoredMessages.length, deadLettered, eventTimes, nextOffset };
  }
}
