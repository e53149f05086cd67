/**
 * `kafka-onnx-scorer backfill` against the real broker: a time range of the input is scored
 * exactly once (read_committed read-back), a SIGKILLed run resumes without duplicates when the
 * same command runs again, and each run ends by itself; a run of a finished backfill writes nothing.
 */
import { describe, expect, inject, it } from 'vitest';
import { EventFactory } from '../../scripts/lib/feature-events.js';
import { createTopics, drainTopic, randomName, testKafka, waitFor } from '../helpers/kafka.js';
import { spawnJob } from '../helpers/scorer.js';
import { RegistryRest } from '../../src/kafka/registry.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

describe('backfill', () => {
  it('scores exactly the records of a time range once, resumes after SIGKILL, and ends by itself', async () => {
    const t = { input: randomName('bf-in'), output: randomName('bf-out'), dlq: randomName('bf-dlq'), group: randomName('bf-group') };
    // The events are stamped in January 2026, far beyond the stack's retention (24 h): without
    // retention.ms -1 the broker's retention check (every 5 min) may delete them all between
    // producing and planning, and the plan, finding no record at either time, is empty.
    await createTopics([{ topic: t.input, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '-1' }] }, { topic: t.output, numPartitions: 3 }, { topic: t.dlq }]);
    const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 5 });
    // Three hours of events with explicit timestamps: the backfill takes only the middle one.
    const hour = 3_600_000;
    const phases = [0, 1, 2].map((h) =>
      Array.from({ length: h === 1 ? 9_000 : 1_000 }, (_, i) => {
        const m = i % 500 === 499 ? factory.poison('null-feature', h * 100_000 + i) : factory.good(h * 100_000 + i);
        return { ...m, timestamp: String(T0 + h * hour + i) };
      }),
    );
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (const phase of phases) for (let i = 0; i < phase.length; i += 1000) await producer.send({ topic: t.input, messages: phase.slice(i, i + 1000) });
    await producer.disconnect();

    const args = ['backfill', '--from', iso(T0 + hour), '--to', iso(T0 + 2 * hour), '--output-topic', t.output, '--dlq-topic', t.dlq, '--group', t.group];
    // Small fetches make many small transactions, so the first run is still going when it is killed.
    const env = { INPUT_TOPIC: t.input, OUTPUT_TOPIC: 'unused', DLQ_TOPIC: 'unused-dlq', FETCH_MAX_BYTES_PER_PARTITION: '8192', PARTITIONS_CONSUMED_CONCURRENTLY: '1' };
    const first = spawnJob('backfill-1', args, env);
    const admin = testKafka().admin();
    await admin.connect();
    await waitFor('the first run to commit part of the range', async () => {
      const [offsets] = await admin.fetchOffsets({ groupId: t.group, topics: [t.input] });
      const ends = await admin.fetchTopicOffsetsByTimestamp(t.input, T0 + hour);
      return offsets?.partitions.some((p) => Number(p.offset) > Number(ends.find((e) => e.partition === p.partition)?.offset ?? 0) + 100);
    }, 120_000, 50);
    first.child.kill('SIGKILL');
    expect((await first.exited).code).toBe(null); // killed, not finished

    const second = await spawnJob('backfill-2', args, env).exited;
    expect(second.code).toBe(0);
    const summary = JSON.parse(second.stdout) as { backfill: string; resumed: boolean; offsets: number; scored: number };
    expect(summary).toMatchObject({ backfill: 'done', resumed: true, offsets: 9_000 });
    expect(summary.scored).toBeLessThan(9_000 - 18); // part was done by the killed run

    const expected = phases[1] as { key: string }[];
    const bad = new Set(expected.filter((_, i) => i % 500 === 499).map((m) => m.key));
    const outputs = await drainTopic(t.output);
    const deadLetters = await drainTopic(t.dlq);
    const outKeys = outputs.map((m) => m.key?.toString() as string);
    const dlqKeys = deadLetters.map((m) => m.key?.toString() as string);
    expect(new Set(outKeys).size).toBe(outKeys.length); // no duplicates
    expect(new Set(dlqKeys).size).toBe(dlqKeys.length);
    expect(new Set([...outKeys, ...dlqKeys])).toEqual(new Set(expected.map((m) => m.key))); // exactly the range
    expect(new Set(dlqKeys)).toEqual(bad);

    // The same command once more: the plan in the group says it is done; nothing is written.
    const third = await spawnJob('backfill-3', args, env).exited;
    expect(third.code).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ backfill: 'done', resumed: true, scored: 0 });
    expect(await drainTopic(t.output)).toHaveLength(outputs.length);
    await admin.disconnect();
  });

  it('exits 2 naming the flag for a bad range, before connecting', async () => {
    const r = await spawnJob('backfill-usage', ['backfill', '--from', 'yesterday', '--to', 'now', '--output-topic', 'x'], { INPUT_TOPIC: 'in', OUTPUT_TOPIC: 'out', DLQ_TOPIC: 'dlq', KAFKA_BROKERS: '127.0.0.1:1' }).exited;
    expect(r.code).toBe(2);
  });
});
