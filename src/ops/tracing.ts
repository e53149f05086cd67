/**
 * Traces: the W3C trace context of input records continued through the scorer (README "Traces").
 *   - One `process <input topic>` span (CONSUMER) per transaction, i.e. per chunk: a new root with
 *     links to the sampled input contexts, at most OTEL_SPAN_LINK_COUNT_LIMIT of them.
 *   - One `create <destination>` span (PRODUCER) per output of a record whose `traceparent` is
 *     sampled: a child of that input context (same trace), linked to the transaction span; its
 *     context is the output's `traceparent`/`tracestate`. An unsampled input context is passed on
 *     unchanged; a record without one costs a property lookup and gets no header.
 * One span per message (what @opentelemetry/instrumentation-kafkajs does) is too many at 60k
 * events/s; the OTel messaging conventions model a batch as one span with links, and "create"
 * spans give each message of a batch its own creation context.
 * Off (the default) it is NO_TRACING: no allocation per chunk or record, and none of the SDK
 * packages is loaded (@opentelemetry/core alone takes 0.1-0.8 s to import, paid by
 * every scorer and job process): the SDK-backed implementation lives in tracing-sdk.ts, imported
 * only when tracing is on. This file is all the rest of the code sees.
 */
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { KafkaMessage, Message } from 'kafkajs';
import type { Logger } from 'pino';
import type { TracingConfig } from '../config/otel.js';
import type { ErrorCode, ScorerError } from '../errors.js';

/** The chunk as the tracer sees it (src/stages/chunk.ts Chunk). */
export interface TracedChunk {
  topic: string;
  partition: number;
  messages: readonly Pick<KafkaMessage, 'offset' | 'headers'>[];
}

/** The tracing of one chunk (one transaction), from before decoding to after the commit. */
export interface ChunkTrace {
  /**
   * One output of record `index` (its scored event, or its dead letter when `error` is given) with
   * the trace headers set (traceparent/tracestate replaced); returned as is, untouched, when the
   * record has no trace context.
   */
  withContext<M extends Message>(index: number, destination: string, message: M, error?: ScorerError): M;
  /** The transaction committed. */
  end(result: { scored: number; deadLettered: Partial<Record<ErrorCode, number>> }): void;
  /** The chunk failed (nothing committed; it is read again). */
  fail(error: unknown): void;
}

/** What the chunk processor calls, once per chunk. */
export interface ChunkTracer {
  startChunk(chunk: TracedChunk): ChunkTrace;
}

const NOOP_TRACE: ChunkTrace = { withContext: (_i, _d, message) => message, end: () => undefined, fail: () => undefined };
/** Tracing off: one shared object, nothing allocated. */
export const NO_TRACING: ChunkTracer = { startChunk: () => NOOP_TRACE };

/** The scorer's own attributes (no convention covers them). */
export const SCORER_ATTRS = {
  firstOffset: 'scorer.chunk.first_offset',
  lastOffset: 'scorer.chunk.last_offset',
  traced: 'scorer.chunk.traced_records',
  linksDropped: 'scorer.chunk.links_dropped',
  scored: 'scorer.chunk.scored',
  deadLettered: 'scorer.chunk.dead_lettered',
  sourceTopic: 'scorer.source.topic',
  sourcePartition: 'scorer.source.partition',
  sourceOffset: 'scorer.source.offset',
} as const;

export interface Tracing {
  chunks: ChunkTracer;
  /** Exports what is buffered and stops the SDK (lifecycle: the last step before the logs flush). */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  groupId: string;
  logger: Logger;
  /** Replaces the configured exporters and turns tracing on (tests: the SDK's InMemorySpanExporter). */
  exporter?: SpanExporter;
}

/**
 * Starts the SDK (tracing-sdk.ts) when the configuration asks for an exporter (or one is given),
 * else NO_TRACING.
 */
export async function startTracing(config: TracingConfig, options: TracingOptions): Promise<Tracing> {
  if (options.exporter === undefined && config.exporters.length === 0) return { chunks: NO_TRACING, shutdown: async () => undefined };
  const { startSdkTracing } = await import('./tracing-sdk.js');
  return startSdkTracing(config, options);
}
