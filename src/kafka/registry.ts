/**
 * The scorer's own writes to the schema registry: its output schema, registered under the
 * topic-name strategy subject `<OUTPUT_TOPIC>-value` at start. Reading writer schemas by id is
 * the decode stage's (src/stages/decode).
 */
import { SchemaType, type SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type avro from 'avsc';
import type { Logger } from 'pino';
import { retry } from '../retry.js';

export interface OutputSchemaRegistration {
  subject: string;
  schemaId: number;
}

/** Registers the output schema under `<outputTopic>-value`; retried while the registry is unavailable. */
export async function registerOutputSchema(registry: SchemaRegistry, outputTopic: string, schema: avro.Schema, logger: Logger): Promise<OutputSchemaRegistration> {
  const subject = `${outputTopic}-value`;
  const { id } = await retry(() => registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject }), {
    attempts: 8,
    initialDelayMs: 250,
    maxDelayMs: 5_000,
    shouldRetry: (err) => (err as { status?: number }).status === undefined || (err as { status: number }).status >= 500 || (err as { status: number }).status === 400,
    onRetry: (err, attempt) => logger.warn({ attempt, err: String(err) }, 'registering the output schema failed; retrying'),
  });
  return { subject, schemaId: id };
}
