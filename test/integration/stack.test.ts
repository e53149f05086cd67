/**
 * Smoke tests: the broker and registry are real and usable the way the scorer uses them —
 * Avro schemas registered through @kafkajs/confluent-schema-registry, Confluent-framed records
 * through Kafka, and kafkajs transactions whose aborted records a read_committed reader never sees.
 */
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { describe, expect, inject, it } from 'vitest';
import { createTopics, randomName, readTopic, testKafka } from '../helpers/kafka.js';

const schema = JSON.stringify({
  type: 'record',
  name: 'Smoke',
  namespace: 'test.smoke',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'value', type: 'double' },
  ],
});

describe('local stack', () => {
  it('registers an Avro schema, carries Confluent-framed records through Kafka and decodes them back', async () => {
    const topic = randomName('smoke-avro');
    await createTopics([{ topic, numPartitions: 3 }]);
    const registry = new SchemaRegistry({ host: inject('schemaRegistryUrl') });
    // Explicit subject (topic-name strategy): Apicurio answers GET /config/{subject} with the
    // global level, which breaks the client's compatibility-setting path (see DESIGN.md).
    const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject: `${topic}-value` });
    expect(id).toBeGreaterThan(0);
    expect(await registry.getLatestSchemaId(`${topic}-value`)).toBe(id);

    const records = Array.from({ length: 20 }, (_, i) => ({ id: `k${i}`, value: i / 4 }));
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({ topic, messages: await Promise.all(records.map(async (r) => ({ key: r.id, value: await registry.encode(id, r) }))) });
    await producer.disconnect();

    const got = await readTopic(topic, records.length);
    expect(got).toHaveLength(records.length);
    for (const m of got) {
      const value = m.value as Buffer;
      expect(value[0]).toBe(0); // magic byte
      expect(value.readInt32BE(1)).toBe(id); // schema id
    }
    // A fresh client (empty cache) fetches the writer schema by id from the registry.
    const fresh = new SchemaRegistry({ host: inject('schemaRegistryUrl') });
    const decoded = await Promise.all(got.map((m) => fresh.decode(m.value as Buffer)));
    expect(decoded.sort((a, b) => a.value - b.value)).toEqual(records);
    for (const m of got) expect(m.key?.toString()).toBe((await fresh.decode(m.value as Buffer)).id);
  });

  it('commits one kafkajs transaction with sendOffsets and aborts another; read_committed sees only the committed records', async () => {
    const input = randomName('smoke-tx-in');
    const output = randomName('smoke-tx-out');
    const groupId = randomName('smoke-group');
    await createTopics([{ topic: input }, { topic: output }]);
    const kafka = testKafka();
    const producer = kafka.producer({ transactionalId: randomName('smoke-txid'), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      const committed = await producer.transaction();
      await committed.send({ topic: output, messages: ['a', 'b', 'c'].map((v) => ({ key: v, value: `committed-${v}` })) });
      await committed.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '42' }] }] });
      await committed.commit();

      const aborted = await producer.transaction();
      await aborted.send({ topic: output, messages: ['x', 'y'].map((v) => ({ key: v, value: `aborted-${v}` })) });
      await aborted.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '99' }] }] });
      await aborted.abort();
    } finally {
      await producer.disconnect();
    }

    // A marker written after both transactions: once a read_committed reader has it, it has seen
    // everything before it, so "no aborted record" is not merely "not arrived yet".
    const plain = kafka.producer();
    await plain.connect();
    await plain.send({ topic: output, messages: [{ key: 'end', value: 'end-marker' }] });
    await plain.disconnect();

    const committedView = await readTopic(output, 4);
    expect(committedView.map((m) => m.value?.toString())).toEqual(['committed-a', 'committed-b', 'committed-c', 'end-marker']);

    const uncommittedView = await readTopic(output, 6, { readUncommitted: true });
    expect(uncommittedView.map((m) => m.value?.toString())).toEqual(['committed-a', 'committed-b', 'committed-c', 'aborted-x', 'aborted-y', 'end-marker']);

    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchOffsets({ groupId, topics: [input] });
    await admin.disconnect();
    // The committed transaction's offset stands; the aborted one's (99) was discarded.
    expect(offsets[0]?.partitions).toEqual([expect.objectContaining({ partition: 0, offset: '42' })]);
  });
});
