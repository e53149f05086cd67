/**
 * Traces on the SDK's in-memory exporter: the transaction span (attributes, links, bounded),
 * the per-record create spans (same trace as the input, sampled inputs only), dead letters,
 * failed chunks, and the off path (one shared no-op object). Through the real ChunkProcessor too.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import type { TracingConfig } from '../../../src/config/otel.js';
import { ScorerError } from '../../../src/errors.js';
import { createLogger } from '../../../src/ops/logger.js';
import { NO_TRACING, SCORER_ATTRS, type Tracing, startTracing } from '../../../src/ops/tracing.js';
import { ChunkProcessor } from '../../../src/stages/chunk.js';
import type { ChunkDecoder } from '../../../src/stages/decode/row-decoder.js';
import type { ChunkCommit } from '../../../src/stages/produce.js';
import { oneGeneration } from '../../helpers/fake-models.js';
import { KeptSpanExporter, parseTraceparent, upstream } from '../../helpers/spans.js';

const logger = createLogger('silent');
const ON: TracingConfig = { exporters: ['otlp'], protocol: 'http/protobuf', maxLinks: 128 };

async function tracing(config: Partial<TracingConfig> = {}): Promise<{ t: Tracing; spans: KeptSpanExporter }> {
  const spans = new KeptSpanExporter();
  const t = await startTracing({ ...ON, ...config }, { groupId: 'g1', logger, exporter: spans });
  return { t, spans };
}

const blank = (): Message => ({ value: null });
const msg = (offset: number, headers?: IHeaders): KafkaMessage =>
  ({ key: Buffer.from(`k${offset}`), value: Buffer.from(`ok:${offset}`), offset: String(offset), timestamp: '0', attributes: 0, ...(headers && { headers }) }) as KafkaMessage;

describe('tracing off', () => {
  it('is one shared no-op: no span, no header, nothing allocated per chunk', async () => {
    const t = await startTracing({ exporters: [], protocol: 'http/protobuf', maxLinks: 128 }, { groupId: 'g', logger });
    expect(t.chunks).toBe(NO_TRACING);
    const chunk = { topic: 'in', partition: 0, messages: [msg(0, { traceparent: upstream().header })] };
    const a = t.chunks.startChunk(chunk);
    expect(t.chunks.startChunk(chunk)).toBe(a);
    const out = { key: null, value: Buffer.from('scored') };
    expect(a.withContext(0, 'out', out)).toBe(out);
    expect(Object.keys(out)).toEqual(['key', 'value']); // not even a headers: undefined slot
    await t.shutdown();
  });
});

describe('tracing on', () => {
  it('makes one process span per chunk with the messaging attributes, linked to the sampled inputs only', async () => {
    const { t, spans } = await tracing();
    const [a, b, c] = [upstream(), upstream(false), upstream()];
    const messages = [msg(10, { traceparent: a.header }), msg(11), msg(12, { traceparent: Buffer.from(b.header) }), msg(13, { traceparent: c.header }), msg(14, { traceparent: 'garbage' })];
    const trace = t.chunks.startChunk({ topic: 'in', partition: 3, messages });
    trace.end({ scored: 4, deadLettered: { BAD_MAGIC_BYTE: 1 } });
    await t.shutdown();

    const [span, ...rest] = spans.getFinishedSpans();
    expect(rest).toHaveLength(0);
    expect(span?.name).toBe('process in');
    expect(span?.kind).toBe(SpanKind.CONSUMER);
    expect(span?.parentSpanContext).toBeUndefined(); // a root: the inputs belong to many traces
    expect(span?.attributes).toMatchObject({
      'messaging.system': 'kafka',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': 'in',
      'messaging.destination.partition.id': '3',
      'messaging.kafka.destination.partition': 3,
      'messaging.consumer.group.name': 'g1',
      'messaging.batch.message_count': 5,
      [SCORER_ATTRS.firstOffset]: 10,
      [SCORER_ATTRS.lastOffset]: 14,
      [SCORER_ATTRS.traced]: 2,
      [SCORER_ATTRS.linksDropped]: 0,
      [SCORER_ATTRS.scored]: 4,
      [SCORER_ATTRS.deadLettered]: 1,
    });
    expect(span?.links.map((l) => [l.context.traceId, l.context.spanId, l.attributes?.['messaging.kafka.offset']])).toEqual([
      [a.traceId, a.spanId, 10],
      [c.traceId, c.spanId, 13],
    ]);
    expect(span?.resource.attributes['service.name']).toBe('kafka-onnx-scorer');
  });

  it('bounds the links (OTEL_SPAN_LINK_COUNT_LIMIT) and counts the ones left out', async () => {
    const { t, spans } = await tracing({ maxLinks: 3 });
    const ups = Array.from({ length: 10 }, () => upstream());
    t.chunks.startChunk({ topic: 'in', partition: 0, messages: ups.map((u, i) => msg(i, { traceparent: u.header })) }).end({ scored: 10, deadLettered: {} });
    await t.shutdown();
    const [span] = spans.getFinishedSpans();
    expect(span?.links.map((l) => l.context.spanId)).toEqual(ups.slice(0, 3).map((u) => u.spanId));
    expect(span?.attributes[SCORER_ATTRS.traced]).toBe(10);
    expect(span?.attributes[SCORER_ATTRS.linksDropped]).toBe(7);
  });

  it('gives the output of a sampled input a create span in the input trace, tracestate kept, linked to the transaction', async () => {
    const { t, spans } = await tracing();
    const u = upstream();
    const trace = t.chunks.startChunk({ topic: 'in', partition: 1, messages: [msg(5, { traceparent: u.header, tracestate: 'vendor=abc' })] });
    const headers = trace.withContext(0, 'out', blank()).headers;
    trace.end({ scored: 1, deadLettered: {} });
    await t.shutdown();

    const out = parseTraceparent(headers?.traceparent as string);
    expect(out).toMatchObject({ traceId: u.traceId, sampled: true });
    expect(headers?.tracestate).toBe('vendor=abc');
    const [create] = spans.named('create');
    const [process] = spans.named('process');
    expect(create?.name).toBe('create out');
    expect(create?.kind).toBe(SpanKind.PRODUCER);
    expect(create?.spanContext().spanId).toBe(out?.spanId);
    expect(create?.parentSpanContext?.spanId).toBe(u.spanId);
    expect(create?.links.map((l) => l.context.spanId)).toEqual([process?.spanContext().spanId]);
    expect(create?.attributes).toMatchObject({ 'messaging.operation.type': 'create', 'messaging.destination.name': 'out', [SCORER_ATTRS.sourcePartition]: 1, [SCORER_ATTRS.sourceOffset]: 5 });
    expect(create?.startTime).toEqual(process?.startTime);
    expect(create?.endTime).toEqual(process?.endTime);
  });

  it('passes an unsampled context on unchanged, without a span; no context, no header (the message untouched)', async () => {
    const { t, spans } = await tracing();
    const u = upstream(false);
    const trace = t.chunks.startChunk({ topic: 'in', partition: 0, messages: [msg(0, { traceparent: Buffer.from(u.header), tracestate: Buffer.from('a=b') }), msg(1), msg(2, { traceparent: '00-zz' })] });
    expect(trace.withContext(0, 'out', blank()).headers).toEqual({ traceparent: u.header, tracestate: 'a=b' });
    const untraced = blank();
    expect(trace.withContext(1, 'out', untraced)).toBe(untraced);
    expect(Object.keys(untraced)).toEqual(['value']);
    expect(trace.withContext(2, 'out', blank()).headers).toBeUndefined();
    trace.end({ scored: 3, deadLettered: {} });
    await t.shutdown();
    expect(spans.named('create')).toHaveLength(0);
    expect(spans.named('process')).toHaveLength(1);
  });

  it('marks a dead letter create span with its error code; a failed chunk marks every span as an error', async () => {
    const { t, spans } = await tracing();
    const u = upstream();
    const ok = t.chunks.startChunk({ topic: 'in', partition: 0, messages: [msg(0, { traceparent: u.header })] });
    ok.withContext(0, 'dlq', blank(), new ScorerError('BAD_MAGIC_BYTE', 'not Confluent framing'));
    ok.end({ scored: 0, deadLettered: { BAD_MAGIC_BYTE: 1 } });
    const failed = t.chunks.startChunk({ topic: 'in', partition: 0, messages: [msg(1, { traceparent: upstream().header })] });
    failed.withContext(0, 'out', blank());
    failed.fail(new ScorerError('REGISTRY_UNAVAILABLE', 'registry did not answer'));
    failed.end({ scored: 1, deadLettered: {} }); // ignored: already ended
    await t.shutdown();

    const [dead, retried] = spans.named('create');
    expect(dead?.name).toBe('create dlq');
    expect(dead?.attributes['error.type']).toBe('BAD_MAGIC_BYTE');
    expect(dead?.status.code).toBe(SpanStatusCode.ERROR);
    expect(retried?.attributes['error.type']).toBe('REGISTRY_UNAVAILABLE');
    const [, failedProcess] = spans.named('process');
    expect(failedProcess?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'registry did not answer' });
    expect(failedProcess?.events.map((e) => e.name)).toEqual(['exception']);
    expect(failedProcess?.attributes[SCORER_ATTRS.scored]).toBeUndefined();
  });
});

describe('ChunkProcessor with tracing', () => {
  it('puts the create span context on the scored, shadow and dead-letter outputs (replacing the input traceparent), nothing on untraced records', async () => {
    const { t, spans } = await tracing();
    const commits: ChunkCommit[] = [];
    // Records 'ok:*' become rows; anything else fails to decode.
    const decoder: ChunkDecoder = {
      width: 1,
      async decodeChunk(values) {
        const rowOf = new Int32Array(values.length).fill(-1);
        const failures = new Map<number, ScorerError>();
        const envelopes = values.map((v, i) => (String(v).startsWith('ok:') ? ((rowOf[i] = i), { event_id: `e${i}`, entity_id: `c${i}`, event_time: 0 }) : (failures.set(i, new ScorerError('BAD_MAGIC_BYTE', 'bad')), undefined)));
        return { features: new Float32Array(values.length), rows: values.length, rowOf, envelopes, failures, schemaIds: [1] };
      },
    };
    const p = new ChunkProcessor({
      models: oneGeneration({ score: async (_f, rows) => Array.from({ length: rows }, () => ({ ok: true as const, score: 0.5, scores: { yes: 0.5 } })) }, { shadowTopic: 'shadow' }),
      stages: () => ({ decoder, encoder: { scoredEvent: (e) => e as never, encode: () => Buffer.from('scored') }, deadLetterContext: { scorerVersion: '0', modelName: 'm', modelVersion: '1' } }),
      committer: { commit: async (c) => void commits.push(c) },
      outputTopic: 'out',
      dlqTopic: 'dlq',
      logger,
      now: () => 0,
      tracer: t.chunks,
    });
    const [a, b] = [upstream(), upstream()];
    const poison = { ...msg(1, { traceparent: b.header, other: 'kept' }), value: Buffer.from('poison') } as KafkaMessage;
    await p.process({ topic: 'in', partition: 0, messages: [msg(0, { traceparent: a.header }), poison, msg(2)] });
    await t.shutdown();

    const of = (topic: string) => commits[0]?.outputs.find((o) => o.topic === topic)?.messages ?? [];
    const [out, dlq, shadow] = [of('out'), of('dlq'), of('shadow')];
    const ctx = (m: Message | undefined) => parseTraceparent(m?.headers?.traceparent as string);
    expect(out.map((m) => ctx(m)?.traceId)).toEqual([a.traceId, undefined]);
    expect(out[1]?.headers).toBeUndefined();
    expect(shadow.map((m) => ctx(m)?.traceId)).toEqual([a.traceId, undefined]);
    expect(ctx(dlq[0])?.traceId).toBe(b.traceId);
    expect(ctx(dlq[0])?.spanId).not.toBe(b.spanId); // the dead letter's own span, not the input's
    expect(dlq[0]?.headers?.other).toBe('kept');
    expect(spans.named('create').map((s) => [s.name, s.spanContext().spanId])).toEqual([
      ['create out', ctx(out[0])?.spanId],
      ['create dlq', ctx(dlq[0])?.spanId],
      ['create shadow', ctx(shadow[0])?.spanId],
    ]);
  });
});

describe('OTLP export', () => {
  /** A collector stand-in on a free loopback port: the requests it got. */
  async function collector(): Promise<{ url: string; requests: { path: string; type: string; body: Buffer }[]; close: () => Promise<void> }> {
    const requests: { path: string; type: string; body: Buffer }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        requests.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/json' }).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(() => r())) };
  }

  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    it(`sends the spans to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces over ${protocol}, with OTEL_SERVICE_NAME, and flushes them at shutdown`, async () => {
      const c = await collector();
      vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', c.url);
      vi.stubEnv('OTEL_SERVICE_NAME', 'scorer-under-test');
      try {
        const t = await startTracing({ exporters: ['otlp'], protocol, maxLinks: 128 }, { groupId: 'g', logger });
        t.chunks.startChunk({ topic: 'exported-topic', partition: 0, messages: [msg(0)] }).end({ scored: 1, deadLettered: {} });
        await t.shutdown();
        expect(c.requests.map((r) => [r.path, r.type])).toEqual([['/v1/traces', protocol === 'http/json' ? 'application/json' : 'application/x-protobuf']]);
        const body = c.requests[0]?.body.toString('latin1') ?? '';
        expect(body).toContain('process exported-topic');
        expect(body).toContain('scorer-under-test');
      } finally {
        vi.unstubAllEnvs();
        await c.close();
      }
    });
  }
});
