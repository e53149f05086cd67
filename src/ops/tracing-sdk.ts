/**
 * Traces with the OpenTelemetry SDK: the implementation behind src/ops/tracing.ts (its header has
 * the trace model), imported only when tracing is on.
 */
import { type Attributes, type Link, ROOT_CONTEXT, type Span, type SpanContext, SpanKind, SpanStatusCode, type TextMapGetter, TraceFlags, type Tracer, diag, DiagLogLevel, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator, hrTime } from '@opentelemetry/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR_ERROR_TYPE, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { IHeaders, Message } from 'kafkajs';
import type { TracingConfig } from '../config/otel.js';
import { type ErrorCode, ScorerError } from '../errors.js';
import { SCORER_VERSION } from '../version.js';
import { type ChunkTrace, SCORER_ATTRS, type TracedChunk, type Tracing, type TracingOptions } from './tracing.js';

// The messaging conventions are still "incubating" in @opentelemetry/semantic-conventions, whose
// README asks users to copy those names rather than import them (they may change in a minor).
const MESSAGING = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  partitionId: 'messaging.destination.partition.id',
  consumerGroup: 'messaging.consumer.group.name',
  batchCount: 'messaging.batch.message_count',
  // Deprecated names still keyed on by backends built on semconv < 1.27.
  kafkaPartition: 'messaging.kafka.destination.partition',
  kafkaConsumerGroup: 'messaging.kafka.consumer.group',
  kafkaOffset: 'messaging.kafka.offset',
} as const;
const propagator = new W3CTraceContextPropagator();
const HEADERS: TextMapGetter<IHeaders> = {
  keys: (h) => Object.keys(h),
  get: (h, key) => {
    const v = h[key];
    return v === undefined ? undefined : Array.isArray(v) ? v.map(String) : String(v);
  },
};
const setHeader = { set: (h: Record<string, string>, key: string, value: string) => void (h[key] = value) };

/** The input's trace context, or undefined when it has none or an invalid one (ignored, like the W3C spec says). */
function inputContext(headers: IHeaders | undefined): SpanContext | undefined {
  if (headers?.traceparent === undefined) return undefined;
  return trace.getSpanContext(propagator.extract(ROOT_CONTEXT, headers, HEADERS));
}

class SdkChunkTrace implements ChunkTrace {
  readonly #tracer: Tracer;
  readonly #chunk: TracedChunk;
  readonly #start = hrTime();
  readonly #span: Span;
  /** Input contexts by record index; only built when some record has one. */
  readonly #inputs: (SpanContext | undefined)[] | undefined;
  readonly #children: Span[] = [];
  #ended = false;

  constructor(tracer: Tracer, chunk: TracedChunk, groupId: string, maxLinks: number) {
    this.#tracer = tracer;
    this.#chunk = chunk;
    const { topic, partition, messages } = chunk;
    const links: Link[] = [];
    let inputs: (SpanContext | undefined)[] | undefined;
    let traced = 0;
    messages.forEach((m, i) => {
      const ctx = inputContext(m.headers);
      if (ctx === undefined) return;
      (inputs ??= [])[i] = ctx;
      if ((ctx.traceFlags & TraceFlags.SAMPLED) === 0) return;
      traced += 1;
      // The first ones: every traced record is linked to this span anyway, by its create span.
      if (links.length < maxLinks) links.push({ context: ctx, attributes: { [MESSAGING.kafkaOffset]: Number(m.offset) } });
    });
    this.#inputs = inputs;
    this.#span = tracer.startSpan(
      `process ${topic}`,
      {
        kind: SpanKind.CONSUMER,
        startTime: this.#start,
        links,
        attributes: {
          [MESSAGING.system]: 'kafka',
          [MESSAGING.operationType]: 'process',
          [MESSAGING.operationName]: 'process',
          [MESSAGING.destination]: topic,
          [MESSAGING.partitionId]: String(partition),
          [MESSAGING.kafkaPartition]: partition,
          [MESSAGING.consumerGroup]: groupId,
          [MESSAGING.kafkaConsumerGroup]: groupId,
          [MESSAGING.batchCount]: messages.length,
          [SCORER_ATTRS.firstOffset]: Number(messages[0]?.offset),
          [SCORER_ATTRS.lastOffset]: Number(messages[messages.length - 1]?.offset),
          [SCORER_ATTRS.traced]: traced,
          [SCORER_ATTRS.linksDropped]: traced - links.length,
        },
      },
      ROOT_CONTEXT,
    );
  }

  withContext<M extends Message>(index: number, destination: string, message: M, error?: ScorerError): M {
    const headers = this.#headersFor(index, destination, error);
    if (headers !== undefined) message.headers = Object.assign(message.headers ?? {}, headers);
    return message;
  }

  #headersFor(index: number, destination: string, error?: ScorerError): IHeaders | undefined {
    const input = this.#inputs?.[index];
    if (input === undefined || this.#ended) return undefined;
    const m = this.#chunk.messages[index];
    if ((input.traceFlags & TraceFlags.SAMPLED) === 0) {
      // Not recorded upstream: pass the context on as it came, so downstream stays in its trace.
      return { traceparent: String(m?.headers?.traceparent), ...(m?.headers?.tracestate !== undefined && { tracestate: String(m.headers.tracestate) }) };
    }
    const attributes: Attributes = {
      [MESSAGING.system]: 'kafka',
      [MESSAGING.operationType]: 'create',
      [MESSAGING.operationName]: 'create',
      [MESSAGING.destination]: destination,
      [SCORER_ATTRS.sourceTopic]: this.#chunk.topic,
      [SCORER_ATTRS.sourcePartition]: this.#chunk.partition,
      [SCORER_ATTRS.sourceOffset]: Number(m?.offset),
    };
    if (error !== undefined) attributes[ATTR_ERROR_TYPE] = error.code;
    const span = this.#tracer.startSpan(
      `create ${destination}`,
      { kind: SpanKind.PRODUCER, startTime: this.#start, attributes, links: [{ context: this.#span.spanContext() }] },
      trace.setSpanContext(ROOT_CONTEXT, input),
    );
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: `dead-lettered: ${error.code}` });
    this.#children.push(span);
    const headers: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, setHeader);
    return headers;
  }

  end({ scored, deadLettered }: { scored: number; deadLettered: Partial<Record<ErrorCode, number>> }): void {
    if (this.#ended) return;
    let dead = 0;
    for (const n of Object.values(deadLettered)) dead += n;
    this.#span.setAttributes({ [SCORER_ATTRS.scored]: scored, [SCORER_ATTRS.deadLettered]: dead });
    this.#finish();
  }

  fail(error: unknown): void {
    if (this.#ended) return;
    const type = error instanceof ScorerError ? error.code : error instanceof Error ? error.name : 'unknown';
    const message = error instanceof Error ? error.message : String(error);
    // The outputs these spans created were never committed: the chunk is read again.
    for (const s of [this.#span, ...this.#children]) {
      s.setAttribute(ATTR_ERROR_TYPE, type);
      s.setStatus({ code: SpanStatusCode.ERROR, message });
    }
    if (error instanceof Error) this.#span.recordException(error);
    this.#finish();
  }

  #finish(): void {
    this.#ended = true;
    const end = hrTime();
    for (const s of this.#children) s.end(end);
    this.#span.end(end);
  }
}

/**
 * The SDK: a tracer provider with a batch span processor per exporter. No global provider is
 * registered: nothing else in the process traces, and in-process scorers (tests, the demo) keep
 * their spans apart.
 */
export async function startSdkTracing(config: TracingConfig, { groupId, logger, exporter }: TracingOptions): Promise<Tracing> {
  const [{ BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
  ]);
  // Export failures (collector down) reach the OTel diag logger only: make them warnings in our logs.
  const log = logger.child({ stage: 'tracing' });
  diag.setLogger(
    { error: (msg, ...args) => log.warn({ args }, msg), warn: (msg, ...args) => log.warn({ args }, msg), info: () => undefined, debug: () => undefined, verbose: () => undefined },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const exporters: SpanExporter[] = exporter !== undefined ? [exporter] : await Promise.all(config.exporters.map(async (kind) => {
    if (kind === 'console') return new ConsoleSpanExporter();
    // Both read OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION themselves.
    const { OTLPTraceExporter } = config.protocol === 'http/json' ? await import('@opentelemetry/exporter-trace-otlp-http') : await import('@opentelemetry/exporter-trace-otlp-proto');
    return new OTLPTraceExporter();
  }));
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (envDetector) override the scorer's defaults.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'kafka-onnx-scorer', [ATTR_SERVICE_VERSION]: SCORER_VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  // The provider reads OTEL_TRACES_SAMPLER[_ARG] and OTEL_SPAN_*_LIMIT, the processor OTEL_BSP_*.
  const provider = new BasicTracerProvider({ resource, spanProcessors: exporters.map((e) => new BatchSpanProcessor(e)) });
  const tracer = provider.getTracer('kafka-onnx-scorer', SCORER_VERSION);
  log.info({ exporters: exporter !== undefined ? ['injected'] : config.exporters, protocol: config.protocol }, 'tracing on');
  return {
    chunks: { startChunk: (chunk) => new SdkChunkTrace(tracer, chunk, groupId, config.maxLinks) },
    shutdown: () => provider.shutdown(),
  };
}
