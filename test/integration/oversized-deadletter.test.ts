/**
 * A record whose dead letter (original bytes plus dlq.* headers) is larger than the dead-letter
 * topic accepts: once retried forever (MESSAGE_TOO_LARGE on every transaction, the partition
 * stalled), now sent cut with code RECORD_TOO_LARGE, its size and sha256 recorded, and the
 * records after it scored (README "Dead letters").
 */
import { createHash } from 'node:crypto';
import { RegistryRest } from '../../src/kafka/registry.js';
import { describe, expect, inject, it } from 'vitest';
import { DLQ_CUT_HEADERS, DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { EventFactory } from '../../scripts/lib/feature-events.js';
import { createTopics, drainTopic, randomName, testKafka, waitForCommittedToEnd } from '../helpers/kafka.js';
import { startTestScorer } from '../helpers/scorer.js';

describe('oversized dead letters', () => {
  it('a dead letter over the broker limit is sent cut (RECORD_TOO_LARGE, size and sha256), and the partition goes on', async () => {
    const t = { input: randomName('big-in'), output: randomName('big-out'), dlq: randomName('big-dlq'), group: randomName('big-group') };
    // The input topic takes records up to 3 MB; the dead-letter topic keeps the broker default (1 MiB).
    await createTopics([
      { topic: t.input, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '3000000' }] },
      { topic: t.output, numPartitions: 1 },
      { topic: t.dlq, numPartitions: 1 },
    ]);
    const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 11, variants: false });
    const big = Buffer.alloc(1_500_000, 0x42);
    big.writeUInt8(1, 0); // not the Confluent magic byte: BAD_MAGIC_BYTE
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: t.input, messages: [factory.good(0), { key: 'too-big', value: big, headers: { origin: 'test' } }, factory.good(1), factory.good(2)] });
    await producer.disconnect();

    // Fetches of 4 MB so the consumer takes the record at all (FETCH_MAX_BYTES_PER_PARTITION).
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, FETCH_MAX_BYTES_PER_PARTITION: '4000000' });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);

    expect((await drainTopic(t.output)).map((m) => m.key?.toString()).sort()).toEqual([factory.good(0).key, factory.good(1).key, factory.good(2).key].sort());
    const [dead, ...more] = await drainTopic(t.dlq);
    expect(more).toHaveLength(0);
    const h = (name: string) => dead?.headers?.[name]?.toString();
    expect(dead?.key?.toString()).toBe('too-big');
    expect(h(DLQ_HEADERS.errorCode)).toBe('RECORD_TOO_LARGE');
    expect(h(DLQ_CUT_HEADERS.originalErrorCode)).toBe('BAD_MAGIC_BYTE');
    expect(h(DLQ_CUT_HEADERS.valueBytes)).toBe(String(big.length));
    expect(h(DLQ_CUT_HEADERS.valueSha256)).toBe(createHash('sha256').update(big).digest('hex'));
    expect(h(DLQ_HEADERS.sourceOffset)).toBe('1');
    expect(h('origin')).toBe('test');
    const value = dead?.value as Buffer;
    expect(value.length).toBeGreaterThan(900_000);
    expect(value.equals(big.subarray(0, value.length))).toBe(true);
  });
});
