/**
 * The exactly-once check of the compose test, from outside the stack: reads the output and
 * dead-letter topics back read_committed through the host port and accounts for every input
 * offset: each one must appear exactly once across the two (scored events name their source in
 * the value, dead letters in their dlq.source.* headers).
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { drainTopic } from '../lib/drain-topic.js'; // loads src/kafkajs-fix.ts before kafkajs
import { Kafka, logLevel } from 'kafkajs';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';

export interface Accounting {
  inputs: number;
  scored: number;
  deadLettered: number;
  /** Input offsets seen more than once (across both topics). */
  duplicates: number;
  /** Input offsets in neither topic. */
  missing: number;
  /** Outputs naming an offset that is not an input (wrong topic or past the end). */
  foreign: number;
}

export async function accountFor(o: { brokers: string; registryUrl: string; input: string; output: string; dlq: string; timeoutMs: number }): Promise<Accounting> {
  const kafka = new Kafka({ clientId: 'compose-e2e-readback', brokers: o.brokers.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  // The load generator is not transactional: offsets 0..high-1 of each partition are all records.
  const ends = new Map((await admin.fetchTopicOffsets(o.input)).map((p) => [p.partition, Number(p.high)]));
  await admin.disconnect();
  const registry = new SchemaRegistry({ host: o.registryUrl });
  const seen = new Map<string, number>();
  let foreign = 0;
  const note = (topic: string, partition: number, offset: number): void => {
    if (topic !== o.input || !(offset >= 0 && offset < (ends.get(partition) ?? 0))) foreign += 1;
    else seen.set(`${partition}:${offset}`, (seen.get(`${partition}:${offset}`) ?? 0) + 1);
  };
  const scored = await drainTopic(kafka, o.output, { timeoutMs: o.timeoutMs });
  for (const m of scored) {
    const v = (await registry.decode(m.value as Buffer)) as { source: { topic: string; partition: number; offset: number | bigint } };
    note(v.source.topic, v.source.partition, Number(v.source.offset));
  }
  const dead = await drainTopic(kafka, o.dlq, { timeoutMs: o.timeoutMs });
  for (const m of dead) {
    const h = (k: string): string => m.headers?.[k]?.toString() ?? '';
    note(h(DLQ_HEADERS.sourceTopic), Number(h(DLQ_HEADERS.sourcePartition)), Number(h(DLQ_HEADERS.sourceOffset)));
  }
  const inputs = [...ends.values()].reduce((a, b) => a + b, 0);
  return {
    inputs,
    scored: scored.length,
    deadLettered: dead.length,
    duplicates: [...seen.values()].filter((n) => n > 1).length,
    missing: inputs - seen.size,
    foreign,
  };
}
