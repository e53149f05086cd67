/**
 * Exactly once, end to end, with real processes: the scorer runs as child processes over a live
 * stream; it is SIGKILLed at random moments and restarted, and another instance joins and leaves.
 * At the end, a read_committed reader of the output and dead-letter topics must find every input
 * key exactly once: no loss, no duplicate — dead letters included, since they share the transaction.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { describe, expect, inject, it, onTestFinished } from 'vitest';
import { EventFactory, POISON_KINDS, type OutMessage } from '../../scripts/lib/feature-events.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { ROOT } from '../../scripts/lib/feature-events.js';
import { type ReadMessage, createTopics, drainTopic, randomName, testKafka, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { type ScorerProcess, spawnScorer } from '../helpers/scorer.js';

const scoredType = avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as avro.Schema);
const RATE = 1_000; // events/s
const MAX_EVENTS = 180_000; // a bound, not a target: the test stops the stream long before (3 min at RATE)

interface Stream {
  sent: OutMessage[];
  /** Stops producing after the batch in flight and resolves once the producer is disconnected. */
  stop: () => Promise<void>;
}

/**
 * Produces records at RATE, ~1% of them bad (every kind), in the background, until stopped. It
 * runs until the test has seen what it waits for (instances killed, joined, left): a stream of
 * fixed length could end before a slow-starting instance joins on a busy machine, leaving that
 * instance nothing to do.
 */
function startStream(factory: EventFactory, topic: string): Stream {
  const sent: OutMessage[] = [];
  const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  let stopping = false;
  const done = (async () => {
    await producer.connect();
    const started = Date.now();
    for (let i = 0; i < MAX_EVENTS && !stopping; i += 200) {
      const batch = Array.from({ length: 200 }, (_, j) => {
        const n = i + j;
        return n % 97 === 0 ? factory.poison(POISON_KINDS[(n / 97) % POISON_KINDS.length] as (typeof POISON_KINDS)[number], n) : factory.good(n);
      });
      await producer.send({ topic, messages: batch });
      sent.push(...batch);
      const ahead = started + ((i + 200) / RATE) * 1000 - Date.now();
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead)); // pacing the load, not waiting for a result
    }
    await producer.disconnect();
  })();
  // A test that fails before stopping the stream stops it too.
  onTestFinished(async () => {
    stopping = true;
    await done.catch(() => undefined);
  });
  return {
    sent,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

/** Records this instance has committed (scored or dead-lettered) since it started. */
async function scoredSoFar(p: ScorerProcess): Promise<number> {
  return (await scrape(p.port, 'scorer_records_scored_total')) + (await scrape(p.port, 'scorer_records_dead_lettered_total'));
}

/** Asserts every produced key is in exactly one of the two topics, exactly once. */
async function expectExactlyOnce(sent: OutMessage[], output: string, dlq: string): Promise<void> {
  const outputs = await drainTopic(output);
  const dead = await drainTopic(dlq);
  const seen = new Map<string, number>();
  for (const m of [...outputs, ...dead]) {
    const k = m.key?.toString() as string;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  if (duplicates.length > 0) {
    // Say where each copy came from, so a failure can be diagnosed from the test output alone.
    const where = (m: ReadMessage) => {
      const scored = m.topic === output ? (scoredType.fromBuffer((m.value as Buffer).subarray(5)) as { source: unknown; scored_time: number }) : undefined;
      return { topic: m.topic === output ? 'output' : 'dlq', partition: m.partition, offset: m.offset, source: scored?.source ?? `${m.headers?.['dlq.source.partition']?.toString()}/${m.headers?.['dlq.source.offset']?.toString()}`, at: scored?.scored_time ?? Number(m.headers?.['dlq.failed.at']?.toString()), ts: m.timestamp };
    };
    const copies = [...outputs, ...dead].filter((m) => duplicates.slice(0, 3).includes(m.key?.toString() as string));
    console.error('duplicates:', JSON.stringify(copies.map((m) => ({ key: m.key?.toString(), ...where(m) })), null, 1));
  }
  const missing = sent.filter((m) => !seen.has(m.key)).map((m) => m.key);
  expect({ duplicates: duplicates.slice(0, 5), duplicateCount: duplicates.length }).toEqual({ duplicates: [], duplicateCount: 0 });
  expect({ missing: missing.slice(0, 5), missingCount: missing.length }).toEqual({ missing: [], missingCount: 0 });
  expect(seen.size).toBe(sent.length);
  expect(dead.length).toBe(sent.filter((_, i) => i % 97 === 0).length);
}

async function setup(name: string) {
  const t = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
  await createTopics([
    { topic: t.input, numPartitions: 6 },
    { topic: t.output, numPartitions: 6 },
    { topic: t.dlq, numPartitions: 2 },
  ]);
  const factory = await EventFactory.create(new SchemaRegistry({ host: inject('schemaRegistryUrl') }), t.input, { seed: 3 });
  const env = { INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, BATCH_MAX_SIZE: '256' };
  return { t, factory, env };
}

describe('exactly once', () => {
  it('survives SIGKILL of the scorer at random moments, three times, with no loss and no duplicate', { timeout: 300_000 }, async () => {
    const { t, factory, env } = await setup('crash');
    const stream = startStream(factory, t.input);
    let proc = await spawnScorer('crash-0', env);
    for (let kill = 1; kill <= 3; kill++) {
      // Kill once this instance has committed a random amount of work: mid-stream, mid-flight.
      const threshold = 300 + Math.floor(Math.random() * 2_500);
      const current = proc;
      await waitFor(`instance ${kill - 1} to process ${threshold} records`, async () => (await scoredSoFar(current)) >= threshold, 90_000, 50);
      current.child.kill('SIGKILL');
      expect(await current.exited).toBe(null); // killed by the signal, no exit code
      proc = await spawnScorer(`crash-${kill}`, env);
    }
    // The last instance joined a flowing stream: every kill landed mid-stream.
    await waitFor('the last instance to process records', async () => (await scoredSoFar(proc)) > 0, 90_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0); // graceful drain exits 0
    await expectExactlyOnce(stream.sent, t.output, t.dlq);
  });

  it('stays exactly once while a second instance joins and later leaves mid-stream', { timeout: 300_000 }, async () => {
    const { t, factory, env } = await setup('rebalance');
    const stream = startStream(factory, t.input);
    const a = await spawnScorer('rebalance-a', env);
    await waitFor('instance A to make progress', async () => (await scoredSoFar(a)) >= 2_000, 90_000, 50);
    const b = await spawnScorer('rebalance-b', env);
    await waitFor('instance B to take over some partitions and score', async () => (await scoredSoFar(b)) >= 1_000, 90_000, 50);
    b.child.kill('SIGTERM'); // leaves the group gracefully mid-stream
    expect(await b.exited).toBe(0);
    // B left mid-stream: A goes on scoring (B's partitions included) while the stream flows.
    const before = await scoredSoFar(a);
    await waitFor('instance A to go on scoring after B left', async () => (await scoredSoFar(a)) > before, 90_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    await expectExactlyOnce(stream.sent, t.output, t.dlq);
  });
});
