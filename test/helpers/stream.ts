/**
 * A live input stream for the exactly-once tests (scorer crashes, rebalances, broker failover)
 * and the read_committed check that every input landed exactly once across output and dead letters.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { expect, onTestFinished } from 'vitest';
import { type EventFactory, type OutMessage, POISON_KINDS, ROOT } from '../../scripts/lib/feature-events.js';
import { type ReadMessage, drainTopic, testKafka } from './kafka.js';
import { scrape } from './net.js';
import type { ScorerProcess } from './scorer.js';

const scoredType = avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as avro.Schema);
const RATE = 1_000; // events/s
const MAX_EVENTS = 180_000; // a bound, not a target: the tests stop the stream long before (3 min at RATE)
/** Every POISON_EVERY-th record is bad (every kind in turn). */
const POISON_EVERY = 97;

export interface Stream {
  sent: OutMessage[];
  /**
   * Batches sent again by a fresh producer after the first one failed (a broker failover can
   * break kafkajs's idempotent sequence: OUT_OF_ORDER_SEQUENCE_NUMBER). The first attempt may
   * have landed, so the input can then hold a key twice: check by input position
   * (expectEachInputOnce), not by key.
   */
  resent: () => number;
  /** Stops producing after the batch in flight and resolves once the producer is disconnected. */
  stop: () => Promise<void>;
}

/**
 * Produces records at `rate`, ~1% of them bad (every kind), in the background, until stopped. It
 * runs until the test has seen what it waits for (instances killed, joined, left, brokers
 * restarted): a stream of fixed length could end before a slow-starting instance joins on a busy
 * machine, leaving that instance nothing to do. The producer retries long enough to ride out a
 * broker failover (a batch is either written once, idempotently, or the test fails).
 */
export function startStream(factory: EventFactory, topic: string, rate = RATE): Stream {
  const sent: OutMessage[] = [];
  const kafka = testKafka();
  const newProducer = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 } });
  let producer = newProducer();
  let stopping = false;
  let resent = 0;
  const send = async (messages: OutMessage[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await producer.send({ topic, messages });
      } catch (err) {
        if (attempt >= 10) throw err;
        resent += 1;
        await producer.disconnect().catch(() => undefined);
        producer = newProducer();
        await producer.connect().catch(() => undefined); // send retries the connection
      }
    }
  };
  const done = (async () => {
    await producer.connect();
    const started = Date.now();
    for (let i = 0; i < MAX_EVENTS && !stopping; i += 200) {
      const batch = Array.from({ length: 200 }, (_, j) => {
        const n = i + j;
        return n % POISON_EVERY === 0 ? factory.poison(POISON_KINDS[(n / POISON_EVERY) % POISON_KINDS.length] as (typeof POISON_KINDS)[number], n) : factory.good(n);
      });
      await send(batch);
      sent.push(...batch);
      const ahead = started + ((i + 200) / rate) * 1000 - Date.now();
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
    resent: () => resent,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

/** Records this instance has committed (scored or dead-lettered) since it started. */
export async function scoredSoFar(p: ScorerProcess): Promise<number> {
  return (await scrape(p.port, 'scorer_records_scored_total')) + (await scrape(p.port, 'scorer_records_dead_lettered_total'));
}

/** Asserts every produced key is in exactly one of the two topics, exactly once. */
export async function expectExactlyOnce(sent: OutMessage[], output: string, dlq: string): Promise<void> {
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
  expect(dead.length).toBe(sent.filter((_, i) => i % POISON_EVERY === 0).length);
}

type Position = `${number}/${string}`;

const positionOf = (m: ReadMessage, output: string): Position => {
  if (m.topic !== output) return `${Number(m.headers?.['dlq.source.partition']?.toString())}/${m.headers?.['dlq.source.offset']?.toString() ?? ''}`;
  const { source } = scoredType.fromBuffer((m.value as Buffer).subarray(5)) as { source: { partition: number; offset: number } };
  return `${source.partition}/${String(source.offset)}`;
};

/**
 * Says where the copies of each doubled input position are (topic, partition, offset, scored
 * time), so a failure can be diagnosed from the test output alone: copies in one run of
 * consecutive offsets were written by one transaction, copies far apart by two.
 */
function reportDuplicatePositions(duplicates: Set<Position>, outputs: ReadMessage[], dead: ReadMessage[], output: string): void {
  const copies = [...outputs, ...dead]
    .map((m) => ({ position: positionOf(m, output), topic: m.topic === output ? 'output' : 'dlq', partition: m.partition, offset: Number(m.offset), at: m.topic === output ? (scoredType.fromBuffer((m.value as Buffer).subarray(5)) as { scored_time: number }).scored_time : Number(m.headers?.['dlq.failed.at']?.toString()) }))
    .filter((c) => duplicates.has(c.position));
  // One line per (topic, partition) and scored time: the extent of each set of copies.
  const runs = new Map<string, { first: number; last: number; count: number; positions: Position[] }>();
  for (const c of copies) {
    const k = `${c.topic}-${c.partition} scored_time ${c.at}`;
    const r = runs.get(k) ?? { first: c.offset, last: c.offset, count: 0, positions: [] };
    r.first = Math.min(r.first, c.offset);
    r.last = Math.max(r.last, c.offset);
    r.count += 1;
    if (r.positions.length < 2) r.positions.push(c.position);
    runs.set(k, r);
  }
  console.error(`${duplicates.size} input positions doubled; their copies:\n${[...runs].map(([k, r]) => `  ${k}: offsets ${r.first}..${r.last} (${r.count} copies; e.g. input ${r.positions.join(', ')})`).join('\n')}`);
}

/**
 * Exactly once by input position: every record of the input topic (read back read_committed)
 * is in exactly one of output and dead letters, exactly once, and nothing else is. Unlike expectExactlyOnce it holds when the stream had to send a batch
 * twice (Stream.resent).
 */
export async function expectEachInputOnce(sent: OutMessage[], input: string, output: string, dlq: string): Promise<void> {
  const inputs = await drainTopic(input);
  const outputs = await drainTopic(output);
  const dead = await drainTopic(dlq);
  const seen = new Map<Position, number>();
  const count = (p: Position) => seen.set(p, (seen.get(p) ?? 0) + 1);
  for (const m of [...outputs, ...dead]) count(positionOf(m, output));
  const positions = new Set(inputs.map((m): Position => `${m.partition}/${m.offset}`));
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([p]) => p);
  if (duplicates.length > 0) reportDuplicatePositions(new Set(duplicates), outputs, dead, output);
  const missing = [...positions].filter((p) => !seen.has(p));
  const extra = [...seen.keys()].filter((p) => !positions.has(p));
  const inputKeys = new Set(inputs.map((m) => m.key?.toString()));
  const lost = sent.filter((m) => !inputKeys.has(m.key)).map((m) => m.key);
  // Acknowledged by the cluster (acks all, min ISR 2), so in the input: kafkajs 2.2.4's send retry
  // could report a batch written that it never sent (src/kafka/kafkajs-send.ts fixes it).
  expect({ lost: lost.slice(0, 5), lostCount: lost.length }).toEqual({ lost: [], lostCount: 0 });
  expect({ duplicates: duplicates.slice(0, 5), duplicateCount: duplicates.length }).toEqual({ duplicates: [], duplicateCount: 0 });
  expect({ missing: missing.slice(0, 5), missingCount: missing.length }).toEqual({ missing: [], missingCount: 0 });
  expect({ extra: extra.slice(0, 5), extraCount: extra.length }).toEqual({ extra: [], extraCount: 0 });
  const poisonKeys = new Set(sent.filter((_, i) => i % POISON_EVERY === 0).map((m) => m.key));
  expect(dead.length).toBe(inputs.filter((m) => poisonKeys.has(m.key?.toString() as string)).length);
}
