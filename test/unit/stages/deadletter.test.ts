// Dead letters: the original record byte for byte, plus dlq.* headers saying where it came from and why.
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { DLQ_CUT_HEADERS, DLQ_HEADERS, deadLetter, deadLetterBytes } from '../../../src/stages/deadletter.js';
import type { DeadLetterContext } from '../../../src/stages/deadletter.js';
import { ScorerError } from '../../../src/errors.js';

const ctx: DeadLetterContext = { scorerVersion: '0.1.0', modelName: 'churn', modelVersion: '1.0.0' };
const source = { topic: 'features', partition: 5 };
const NOW = 1_700_000_123_456;

function message(over: Partial<{ key: Buffer | null; value: Buffer | null; headers: KafkaMessage['headers']; offset: string; timestamp: string }> = {}): KafkaMessage {
  return {
    key: Buffer.from('cust-9'),
    value: Buffer.from([0, 0, 0, 0, 7, 0xde, 0xad, 0xbe, 0xef]),
    timestamp: '1700000000000',
    attributes: 0,
    offset: '8812',
    headers: { 'trace-id': Buffer.from('abc123'), 'content-type': 'avro', multi: [Buffer.from('a'), 'b'] },
    ...over,
  } as KafkaMessage;
}

const invalidFeature = new ScorerError('INVALID_FEATURE', 'features.nps_score is null');

describe('deadLetter', () => {
  it('keeps the very same key and value buffers', () => {
    const msg = message();
    const dl = deadLetter(msg, source, invalidFeature, ctx, NOW);
    expect(dl.key).toBe(msg.key);
    expect(dl.value).toBe(msg.value);
    expect(Buffer.from(dl.value as Buffer).equals(Buffer.from([0, 0, 0, 0, 7, 0xde, 0xad, 0xbe, 0xef]))).toBe(true);
  });

  it('keeps a null key and a null value (a tombstone dead-lettered for BAD_MAGIC_BYTE)', () => {
    const dl = deadLetter(message({ key: null, value: null }), source, new ScorerError('BAD_MAGIC_BYTE', 'record has no value (tombstone)'), ctx, NOW);
    expect(dl.key).toBeNull();
    expect(dl.value).toBeNull();
    expect(dl.headers?.[DLQ_HEADERS.errorCode]).toBe('BAD_MAGIC_BYTE');
  });

  it('keeps the original headers, values untouched', () => {
    const msg = message();
    const original = msg.headers ?? {};
    const dl = deadLetter(msg, source, invalidFeature, ctx, NOW);
    expect(dl.headers?.['trace-id']).toBe(original['trace-id']);
    expect(dl.headers?.['content-type']).toBe('avro');
    expect(dl.headers?.multi).toBe(original.multi);
  });

  it('does not modify the headers of the input message', () => {
    const msg = message();
    const before = { ...msg.headers };
    deadLetter(msg, source, invalidFeature, ctx, NOW);
    expect(msg.headers).toEqual(before);
    expect(Object.keys(msg.headers ?? {}).some((k) => k.startsWith('dlq.'))).toBe(false);
  });

  it('sets every dlq.* header', () => {
    const dl = deadLetter(message(), source, invalidFeature, ctx, NOW);
    expect(dl.headers).toMatchObject({
      'dlq.source.topic': 'features',
      'dlq.source.partition': '5',
      'dlq.source.offset': '8812',
      'dlq.source.timestamp': '1700000000000',
      'dlq.error.code': 'INVALID_FEATURE',
      'dlq.error.message': 'features.nps_score is null',
      'dlq.error.stage': 'vectorize',
      'dlq.scorer.version': '0.1.0',
      'dlq.model.name': 'churn',
      'dlq.model.version': '1.0.0',
      'dlq.failed.at': String(NOW),
    });
    for (const name of Object.values(DLQ_HEADERS)) expect(typeof dl.headers?.[name]).toBe('string');
  });

  it('has exactly the original headers plus the DLQ_HEADERS', () => {
    const dl = deadLetter(message(), source, invalidFeature, ctx, NOW);
    expect(Object.keys(dl.headers ?? {}).sort()).toEqual(['content-type', 'multi', 'trace-id', ...Object.values(DLQ_HEADERS)].sort());
  });

  it('uses the documented header names', () => {
    expect(DLQ_HEADERS).toEqual({
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
    });
  });

  it('works for a message without headers', () => {
    const dl = deadLetter(message({ headers: undefined }), source, invalidFeature, ctx, NOW);
    expect(Object.keys(dl.headers ?? {}).sort()).toEqual(Object.values(DLQ_HEADERS).sort());
  });

  it("takes the stage from the error's code", () => {
    const err = new ScorerError('INCOMPATIBLE_SCHEMA', 'writer schema id 9 cannot be read');
    const dl = deadLetter(message(), source, err, ctx, NOW);
    expect(dl.headers?.[DLQ_HEADERS.errorCode]).toBe('INCOMPATIBLE_SCHEMA');
    expect(dl.headers?.[DLQ_HEADERS.errorStage]).toBe('decode');
  });

  it("includes the cause's message and caps the message at 2000 characters", () => {
    const withCause = new ScorerError('INFERENCE_FAILED', 'row 3 failed', { cause: new Error('non-finite score') });
    expect(deadLetter(message(), source, withCause, ctx, NOW).headers?.[DLQ_HEADERS.errorMessage]).toBe('row 3 failed: non-finite score');
    const long = new ScorerError('MALFORMED_PAYLOAD', 'x'.repeat(5_000));
    expect(deadLetter(message(), source, long, ctx, NOW).headers?.[DLQ_HEADERS.errorMessage]).toBe('x'.repeat(2_000));
  });

  it('takes failedAt from the injected clock', () => {
    expect(deadLetter(message(), source, invalidFeature, ctx, 42).headers?.[DLQ_HEADERS.failedAt]).toBe('42');
  });

  it('a record that already carries dlq.* headers gets the new values', () => {
    const replayed = message({
      headers: {
        'trace-id': 'abc',
        'dlq.source.topic': 'older-topic',
        'dlq.source.partition': '0',
        'dlq.source.offset': '1',
        'dlq.source.timestamp': '1',
        'dlq.error.code': 'BAD_MAGIC_BYTE',
        'dlq.error.message': 'old',
        'dlq.error.stage': 'decode',
        'dlq.scorer.version': '0.0.1',
        'dlq.model.name': 'old-model',
        'dlq.model.version': '0.0.1',
        'dlq.failed.at': '1',
      },
    });
    const dl = deadLetter(replayed, source, invalidFeature, ctx, NOW);
    expect(dl.headers).toEqual({
      'trace-id': 'abc',
      'dlq.source.topic': 'features',
      'dlq.source.partition': '5',
      'dlq.source.offset': '8812',
      'dlq.source.timestamp': '1700000000000',
      'dlq.error.code': 'INVALID_FEATURE',
      'dlq.error.message': 'features.nps_score is null',
      'dlq.error.stage': 'vectorize',
      'dlq.scorer.version': '0.1.0',
      'dlq.model.name': 'churn',
      'dlq.model.version': '1.0.0',
      'dlq.failed.at': String(NOW),
    });
  });

  it('returns a producer message without partition or timestamp (the DLQ topic chooses)', () => {
    const dl = deadLetter(message(), source, invalidFeature, ctx, NOW);
    expect(Object.keys(dl).sort()).toEqual(['headers', 'key', 'value']);
  });

  describe('larger than DLQ_MAX_MESSAGE_BYTES', () => {
    const LIMIT = 10_000;
    const big = Buffer.alloc(50_000, 7);
    big.writeUInt8(0, 0);
    const limited = { ...ctx, maxMessageBytes: LIMIT };

    it('is sent whole while it fits, also with a limit', () => {
      const dl = deadLetter(message(), source, invalidFeature, limited, NOW);
      expect(dl.value).toBe(message().value === null ? null : dl.value);
      expect(dl.headers?.[DLQ_HEADERS.errorCode]).toBe('INVALID_FEATURE');
      expect(Object.keys(dl.headers ?? {})).not.toContain(DLQ_CUT_HEADERS.valueBytes);
    });

    it('is cut to fit: RECORD_TOO_LARGE, the first code, the full size and sha256, the value head, the original headers', () => {
      const dl = deadLetter(message({ value: big }), source, invalidFeature, limited, NOW);
      const h = dl.headers ?? {};
      expect(deadLetterBytes(dl)).toBeLessThanOrEqual(LIMIT);
      expect(h[DLQ_HEADERS.errorCode]).toBe('RECORD_TOO_LARGE');
      expect(h[DLQ_HEADERS.errorStage]).toBe('produce');
      expect(String(h[DLQ_HEADERS.errorMessage])).toContain('features.nps_score is null');
      expect(h[DLQ_CUT_HEADERS.originalErrorCode]).toBe('INVALID_FEATURE');
      expect(h[DLQ_CUT_HEADERS.valueBytes]).toBe('50000');
      expect(h[DLQ_CUT_HEADERS.valueSha256]).toBe(createHash('sha256').update(big).digest('hex'));
      expect(h[DLQ_HEADERS.sourceOffset]).toBe('8812');
      expect(h['trace-id']).toEqual(Buffer.from('abc123'));
      const value = dl.value as Buffer;
      expect(value.length).toBeGreaterThan(LIMIT / 2);
      expect(value.equals(big.subarray(0, value.length))).toBe(true);
      expect(dl.key).toEqual(Buffer.from('cust-9'));
    });

    it('drops the original headers when they alone do not fit, and says how many', () => {
      const headers = { huge: Buffer.alloc(20_000), small: 'x' };
      const dl = deadLetter(message({ value: big, headers }), source, invalidFeature, limited, NOW);
      expect(deadLetterBytes(dl)).toBeLessThanOrEqual(LIMIT);
      expect(Object.keys(dl.headers ?? {})).not.toContain('huge');
      expect(dl.headers?.[DLQ_CUT_HEADERS.headersDropped]).toBe('2');
    });

    it('a null value over the limit (huge headers) records 0 bytes and the empty hash', () => {
      const dl = deadLetter(message({ value: null, headers: { huge: Buffer.alloc(20_000) } }), source, invalidFeature, limited, NOW);
      expect(dl.headers?.[DLQ_CUT_HEADERS.valueBytes]).toBe('0');
      expect(dl.headers?.[DLQ_CUT_HEADERS.valueSha256]).toBe(createHash('sha256').digest('hex'));
    });
  });
});
