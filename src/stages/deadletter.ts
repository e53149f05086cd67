/**
 * Dead letters: a record that can never be scored goes to DLQ_TOPIC inside the same transaction
 * as the scored events and the input offsets, so every input offset ends up in exactly one of
 * the two topics. The original key, value and headers are kept byte for byte; `dlq.*` headers
 * say where it came from and why (codes: src/errors.ts, README "Dead letters").
 */
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { type ScorerError, describeError } from '../errors.js';

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

export interface DeadLetterContext {
  scorerVersion: string;
  modelName: string;
  modelVersion: string;
}

export function deadLetter(message: KafkaMessage, source: { topic: string; partition: number }, error: ScorerError, ctx: DeadLetterContext, now = Date.now()): Message {
  const headers: IHeaders = { ...(message.headers ?? {}) };
  headers[DLQ_HEADERS.sourceTopic] = source.topic;
  headers[DLQ_HEADERS.sourcePartition] = String(source.partition);
  headers[DLQ_HEADERS.sourceOffset] = message.offset;
  headers[DLQ_HEADERS.sourceTimestamp] = message.timestamp;
  headers[DLQ_HEADERS.errorCode] = error.code;
  headers[DLQ_HEADERS.errorMessage] = describeError(error).slice(0, 2000);
  headers[DLQ_HEADERS.errorStage] = error.stage;
  headers[DLQ_HEADERS.scorerVersion] = ctx.scorerVersion;
  headers[DLQ_HEADERS.modelName] = ctx.modelName;
  headers[DLQ_HEADERS.modelVersion] = ctx.modelVersion;
  headers[DLQ_HEADERS.failedAt] = String(now);
  return { key: message.key, value: message.value, headers };
}
