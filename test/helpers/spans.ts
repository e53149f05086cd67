/**
 * Spans for tests: the SDK's own in-memory exporter, and W3C traceparent values to put on records.
 */
import { randomBytes } from 'node:crypto';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

/**
 * InMemorySpanExporter forgets its spans on shutdown, and the scorer shuts its tracer provider
 * down when it stops (which is what flushes the last spans): keep them for the test to read.
 */
export class KeptSpanExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return Promise.resolve();
  }

  named(prefix: string): ReadableSpan[] {
    return this.getFinishedSpans().filter((s) => s.name.startsWith(prefix));
  }
}

/** A fresh upstream context: { traceId, spanId, header }. */
export function upstream(sampled = true): { traceId: string; spanId: string; header: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-${sampled ? '01' : '00'}` };
}

/** The trace id and parent (span) id of a traceparent header. */
export function parseTraceparent(value: Buffer | string | (Buffer | string)[] | undefined): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(value));
  return m === null ? undefined : { traceId: m[1] as string, spanId: m[2] as string, sampled: (parseInt(m[3] as string, 16) & 1) === 1 };
}
