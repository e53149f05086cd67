/**
 * Traces through the real broker: records produced with W3C traceparent headers are scored and
 * dead-lettered by an in-process scorer whose spans go to the SDK's in-memory exporter; the
 * outputs, read back read_committed, carry a traceparent in the input's trace, of a span the
 * scorer recorded, and every committed transaction has one process span.
 */
import { SpanStatusCode } from '@opentelemetry/api';
import { describe, expect, inject, it } from 'vitest';
import { RegistryRest } from '../../src/kafka/registry.js';
import { SCORER_ATTRS } from '../../src/ops/tracing.js';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { EXPECTED_CODE, EventFactory, type OutMessage, POISON_KINDS } from '../../scripts/lib/feature-events.js';
import { createTopics, drainTopic, produce, randomName, waitForCommittedToEnd } from '../helpers/kafka.js';
import { startTestScorer } from '../helpers/scorer.js';
import { KeptSpanExporter, parseTraceparent, upstream } from '../helpers/spans.js';

type Traced = 'sampled' | 'unsampled' | 'none';

describe('traces', () => {
  it('continues the input trace on every scored event and dead letter, one process span per committed transaction', async () => {
    const t = { input: randomName('traces-in'), output: randomName('traces-out'), dlq: randomName('traces-dlq'), group: randomName('traces-group') };
    await createTopics([
      { topic: t.input, numPartitions: 2 },
      { topic: t.output, numPartitions: 2 },
      { topic: t.dlq, numPartitions: 1 },
    ]);
    const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 21 });
    const inputs: { msg: OutMessage; traced: Traced; poison?: keyof typeof EXPECTED_CODE; up?: ReturnType<typeof upstream> }[] = [];
    const kinds: Traced[] = ['sampled', 'unsampled', 'none'];
    for (let i = 0; i < 300; i++) {
      const traced = kinds[i % 3] as Traced;
      const poison = i % 25 === 0 ? POISON_KINDS[(i / 25) % POISON_KINDS.length] : undefined;
      const up = traced === 'none' ? undefined : upstream(traced === 'sampled');
      inputs.push({ msg: poison ? factory.poison(poison, i) : factory.good(i), traced, ...(poison && { poison }), ...(up && { up }) });
    }
    await produce(
      t.input,
      inputs.map(({ msg, up }, i) => ({ ...msg, partition: i % 2, ...(up && { headers: { traceparent: up.header, tracestate: 'scorer-test=1' } }) })),
    );

    const spans = new KeptSpanExporter();
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group }, { spanExporter: spans });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000); // flushes the tracer provider

    const outputs = await drainTopic(t.output);
    const dead = await drainTopic(t.dlq);
    const poisoned = inputs.filter((x) => x.poison !== undefined);
    expect(dead).toHaveLength(poisoned.length);
    expect(outputs).toHaveLength(inputs.length - poisoned.length);
    const byKey = new Map(inputs.map((x) => [x.msg.key, x]));
    const createSpans = new Map(spans.named('create').map((s) => [s.spanContext().spanId, s]));

    for (const [topic, messages] of [[t.output, outputs], [t.dlq, dead]] as const) {
      for (const m of messages) {
        const src = byKey.get(m.key?.toString() as string);
        expect(src, `${topic}: unknown key ${m.key?.toString()}`).toBeDefined();
        if (src === undefined) continue;
        const tp = parseTraceparent(m.headers?.traceparent);
        if (src.traced === 'none') {
          expect(m.headers?.traceparent, `${topic}: no trace context in, none out`).toBeUndefined();
          continue;
        }
        expect(tp?.traceId, `${topic}: same trace as the input`).toBe(src.up?.traceId);
        expect(m.headers?.tracestate?.toString()).toBe('scorer-test=1');
        if (src.traced === 'unsampled') {
          expect(tp?.spanId, 'an unsampled context passes through').toBe(src.up?.spanId);
          continue;
        }
        // Sampled: the output's parent is the scorer's create span, a child of the input's span.
        expect(tp?.sampled).toBe(true);
        const span = createSpans.get(tp?.spanId as string);
        expect(span?.name).toBe(`create ${topic}`);
        expect(span?.parentSpanContext?.spanId).toBe(src.up?.spanId);
        if (topic === t.dlq) expect(span?.attributes['error.type']).toBe(m.headers?.[DLQ_HEADERS.errorCode]?.toString());
      }
    }
    const sampled = inputs.filter((x) => x.traced === 'sampled');
    expect(createSpans.size).toBe(sampled.length);
    expect(spans.named(`create ${t.dlq}`)).toHaveLength(sampled.filter((x) => x.poison !== undefined).length);
    expect(spans.named(`create ${t.dlq}`).length).toBeGreaterThan(0);

    // Every committed transaction has one process span; together they cover every input once.
    const committed = spans.named('process').filter((s) => s.status.code !== SpanStatusCode.ERROR);
    const covered = committed.map((s) => [s.attributes['messaging.destination.partition.id'], s.attributes[SCORER_ATTRS.firstOffset], s.attributes[SCORER_ATTRS.lastOffset]] as [string, number, number]);
    for (const p of ['0', '1']) {
      const ranges = covered.filter(([q]) => q === p).sort((a, b) => a[1] - b[1]);
      expect(ranges.map(([, first, last]) => last - first + 1).reduce((a, b) => a + b, 0)).toBe(inputs.length / 2);
      ranges.forEach(([, first], i) => expect(first).toBe(i === 0 ? 0 : (ranges[i - 1]?.[2] as number) + 1));
    }
    for (const s of committed) expect(s.attributes).toMatchObject({ 'messaging.system': 'kafka', 'messaging.destination.name': t.input, 'messaging.consumer.group.name': t.group });
    const linked = new Set(committed.flatMap((s) => s.links.map((l) => l.context.spanId)));
    expect(linked).toEqual(new Set(sampled.map((x) => x.up?.spanId)));
  });
});
