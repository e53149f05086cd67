/**
 * Dead letters: a record that can never be scored goes to DLQ_TOPIC inside the same transaction
 * as the scored events and the input offsets, so every input offset ends up in exactly one of
 * the two topics. The original key, value and headers are kept byte for byte; `dlq.*` headers
 * say where it came from and why (codes: src/errors.ts, README "Dead letters").
 *
 * A dead letter larger than the dead-letter topic accepts (DLQ_MAX_MESSAGE_BYTES) would fail its
 * transaction on every retry and stall the partition for good. It is sent cut instead (README
 * "Dead letters"): code RECORD_TOO_LARGE, the first error's code in dlq.original.error.code, the
 * value cut to what fits with its full size and sha256 recorded, the original headers kept when
 * they fit. The original stays readable at dlq.source.* in the input topic (while retained).
 */
import { createHash } from 'node:crypto';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { ScorerError, describeError } from '../errors.js';

export const DLQ_HEADERS = {
  sourceTopic: 'dlq.source.topic',
  sourcePartition: 'dlq.source.partition',
  sourceOffset: 'dlq.source.offset',
  sourceTimestamp: 'dlq.source.timestamp',
  errorCode: 'dlq.error.code',
  errorMessage: 'dlq.error.message',
  errorStage: 'dlq.error.stage',
  scorerVersion: 'dlq.scorer.version',
  modelName: 'dlq.model.name',
  modelVersion: 'dlq.model.version',
  failedAt: 'dlq.failed.at',
} as const;

/** The headers a cut dead letter (RECORD_TOO_LARGE) has besides DLQ_HEADERS. */
export const DLQ_CUT_HEADERS = {
  originalErrorCode: 'dlq.original.error.code',
  valueBytes: 'dlq.value.bytes',
  valueSha256: 'dlq.value.sha256',
  headersDropped: 'dlq.headers.dropped',
} as const;

export interface DeadLetterContext {
  scorerVersion: string;
  modelName: string;
  modelVersion: string;
  /** Largest dead letter sent whole (DLQ_MAX_MESSAGE_BYTES); default: sent whole, whatever its size. */
  maxMessageBytes?: number;
}

/** Per-record and per-header framing the estimate adds (varints, attributes, deltas): generous on purpose. */
const RECORD_OVERHEAD_BYTES = 64;
const HEADER_OVERHEAD_BYTES = 10;

const bytes = (v: string | Buffer | null | undefined): number => (v === null || v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);
const headerBytes = (h: IHeaders): number =>
  Object.entries(h).reduce((n, [k, v]) => n + Buffer.byteLength(k) + HEADER_OVERHEAD_BYTES + (Array.isArray(v) ? v.reduce((m: number, x) => m + bytes(x), 0) : bytes(v)), 0);

/** The record's size as the broker counts it against max.message.bytes, estimated from above. */
export const deadLetterBytes = (m: Message): number => RECORD_OVERHEAD_BYTES + bytes(m.key) + bytes(m.value) + headerBytes(m.headers ?? {});

export function deadLetter(message: KafkaMessage, source: { topic: string; partition: number }, error: ScorerError, ctx: DeadLetterContext, now = Date.now()): Message {
  const dlqHeaders = (e: ScorerError): IHeaders => ({
    [DLQ_HEADERS.sourceTopic]: source.topic,
    [DLQ_HEADERS.sourcePartition]: String(source.partition),
    [DLQ_HEADERS.sourceOffset]: message.offset,
    [DLQ_HEADERS.sourceTimestamp]: message.timestamp,
    [DLQ_HEADERS.errorCode]: e.code,
    [DLQ_HEADERS.errorMessage]: describeError(e).slice(0, 2000),
    [DLQ_HEADERS.errorStage]: e.stage,
    [DLQ_HEADERS.scorerVersion]: ctx.scorerVersion,
    [DLQ_HEADERS.modelName]: ctx.modelName,
    [DLQ_HEADERS.modelVersion]: ctx.modelVersion,
    [DLQ_HEADERS.failedAt]: String(now),
  });
  const whole: Message = { key: message.key, value: message.value, headers: { ...(message.headers ?? {}), ...dlqHeaders(error) } };
  const limit = ctx.maxMessageBytes;
  if (limit === undefined || deadLetterBytes(whole) <= limit) return whole;
  return cutDeadLetter(message, error, limit, dlqHeaders);
}

function cutDeadLetter(message: KafkaMessage, error: ScorerError, limit: number, dlqHeaders: (e: ScorerError) => IHeaders): Message {
  const value = message.value ?? Buffer.alloc(0);
  const size = bytes(message.value);
  const tooLarge = new ScorerError('RECORD_TOO_LARGE', `dead letter of ${size} value bytes exceeds DLQ_MAX_MESSAGE_BYTES=${limit}; value cut, first error: ${describeError(error)}`);
  const ours: IHeaders = {
    ...dlqHeaders(tooLarge),
    [DLQ_CUT_HEADERS.originalErrorCode]: error.code,
    [DLQ_CUT_HEADERS.valueBytes]: String(size),
    [DLQ_CUT_HEADERS.valueSha256]: createHash('sha256').update(value).digest('hex'),
  };
  const original = message.headers ?? {};
  const withOriginal: IHeaders = { ...original, ...ours };
  // Original headers stay unless they alone are what does not fit (then their count is recorded).
  const keep = RECORD_OVERHEAD_BYTES + bytes(message.key) + headerBytes(withOriginal) <= limit;
  const headers = keep ? withOriginal : { ...ours, [DLQ_CUT_HEADERS.headersDropped]: String(Object.keys(original).length) };
  // The value's head is kept (framing, schema id: enough to diagnose); the key too, as it routes replays.
  const room = Math.max(0, limit - RECORD_OVERHEAD_BYTES - bytes(message.key) - headerBytes(headers));
  return { key: message.key, value: value.subarray(0, Math.min(room, value.length)), headers };
}
