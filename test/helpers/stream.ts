/**
 * A live stream for integration tests: feature events produced at a steady rate in the
 * background while the test kills, swaps or rebalances the scorer; and the exactly-once check of
 * what came out: every produced key in exactly one of the output and dead-letter topics, once.
 */
import { expect, onTestFinished } from 'vitest';
import { type EventFactory, type OutMessage, POISON_KINDS } from '../../scripts/lib/feature-events.js';
import { type ReadMessage, drainTopic, testKafka } from './kafka.js';
import { decodeScored } from './scored.js';

export interface StreamOptions {
  /** Events per second. */
  rate?: number;
  /** Every n-th event is a bad record (every kind in turn); 0: none. */
  poisonEvery?: number;
  /** A bound, not a target: the test stops the stream long before. */
  maxEvents?: number;
}

export interface Stream {
  /** What was produced (acknowledged by the broker) so far, in order. */
  sent: OutMessage[];
  /** Sends the next `events` as fast as the broker takes them, then goes on at the rate (a backlog: the scorer busy, chunks in flight). */
  burst: (events: number) => void;
  /**
   * Sends retried by a fresh producer after the first one failed (a broker failover). The first
   * attempt may have landed, so the input can then hold a key twice: check by input position
   * (expectEachInputOnce), not by key.
   */
  resent: () => number;
  /** Stops producing after the batch in flight and resolves once the producer is disconnected. */
  stop: () => Promise<void>;
}

const SEND = 200;

/** The stream's n-th event: a bad record (every kind in turn) every `poisonEvery`-th, else a good one. */
export function streamEvent(factory: EventFactory, n: number, poisonEvery = 97): OutMessage {
  return poisonEvery > 0 && n % poisonEvery === 0 ? factory.poison(POISON_KINDS[(n / poisonEvery) % POISON_KINDS.length] as (typeof POISON_KINDS)[number], n) : factory.good(n);
}

/**
 * Produces events at `rate` in the background until stopped. It runs until the test has seen
 * what it waits for: a stream of fixed length could end before a slow-starting instance joins on
 * a busy machine, leaving it nothing to do. A test that fails before stopping it stops it too.
 */
export function startStream(factory: EventFactory, topic: string, { rate = 1_000, poisonEvery = 97, maxEvents = 180_000 }: StreamOptions = {}): Stream {
  const sent: OutMessage[] = [];
  const kafka = testKafka();
  // Retries long enough to ride out a broker failover (the cluster tests); a send that still
  // fails is made again by a fresh producer, up to 10 times, then the stream fails.
  const newProducer = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 } });
  let producer = newProducer();
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
  let stopping = false;
  let burstLeft = 0;
  let bursted = 0;
  const done = (async () => {
    await producer.connect();
    const started = Date.now();
    for (let i = 0; i < maxEvents && !stopping; i += SEND) {
      const batch = Array.from({ length: SEND }, (_, j) => streamEvent(factory, i + j, poisonEvery));
      await send(batch);
      sent.push(...batch);
      if (burstLeft > 0) {
        burstLeft -= SEND;
        bursted += SEND;
        continue;
      }
      const ahead = started + ((i + SEND - bursted) / rate) * 1000 - Date.now();
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead)); // pacing the load, not waiting for a result
    }
    await producer.disconnect();
  })();
  onTestFinished(async () => {
    stopping = true;
    await done.catch(() => undefined);
  });
  return {
    sent,
    burst: (events) => void (burstLeft += events),
    resent: () => resent,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

/** The bad records among what a stream sent (startStream's poisonEvery). */
export const poisonCount = (sent: readonly unknown[], poisonEvery = 97): number => (poisonEvery > 0 ? Math.ceil(sent.length / poisonEvery) : 0);

/**
 * Asserts every sent key is in exactly one of the output and dead-letter topics, exactly once
 * (read_committed), and returns both topics' records for further checks.
 */
export async function expectExactlyOnce(sent: readonly OutMessage[], output: string, dlq: string): Promise<{ outputs: ReadMessage[]; dead: ReadMessage[] }> {
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
      const scored = m.topic === output ? decodeScored(m.value) : undefined;
      return { topic: m.topic === output ? 'output' : 'dlq', partition: m.partition, offset: m.offset, source: scored?.source ?? `${m.headers?.['dlq.source.partition']?.toString()}/${m.headers?.['dlq.source.offset']?.toString()}`, at: scored?.scored_time ?? Number(m.headers?.['dlq.failed.at']?.toString()), version: scored?.model.version ?? m.headers?.['dlq.model.version']?.toString(), ts: m.timestamp };
    };
    const copies = [...outputs, ...dead].filter((m) => duplicates.slice(0, 3).includes(m.key?.toString() as string));
    console.error('duplicates:', JSON.stringify(copies.map((m) => ({ key: m.key?.toString(), ...where(m) })), null, 1));
  }
  const missing = sent.filter((m) => !seen.has(m.key)).map((m) => m.key);
  expect({ duplicates: duplicates.slice(0, 5), duplicateCount: duplicates.length }).toEqual({ duplicates: [], duplicateCount: 0 });
  expect({ missing: missing.slice(0, 5), missingCount: missing.length }).toEqual({ missing: [], missingCount: 0 });
  expect(seen.size).toBe(sent.length);
  return { outputs, dead };
}

type Position = `${number}/${string}`;

const positionOf = (m: ReadMessage, output: string): Position => {
  if (m.topic !== output) return `${Number(m.headers?.['dlq.source.partition']?.toString())}/${m.headers?.['dlq.source.offset']?.toString() ?? ''}`;
  const { source } = decodeScored(m.value);
  return `${source.partition}/${String(source.offset)}`;
};

/**
 * Says where the copies of each doubled input position are (topic, partition, offsets, scored
 * time), so a failure can be diagnosed from the test output alone: copies sharing a scored time
 * come from one chunk, i.e. one transaction; copies at different times from two.
 */
function reportDuplicatePositions(duplicates: Set<Position>, outputs: ReadMessage[], dead: ReadMessage[], output: string): void {
  const runs = new Map<string, { first: number; last: number; count: number; positions: Position[] }>();
  for (const m of [...outputs, ...dead]) {
    const position = positionOf(m, output);
    if (!duplicates.has(position)) continue;
    const at = m.topic === output ? decodeScored(m.value).scored_time : Number(m.headers?.['dlq.failed.at']?.toString());
    const k = `${m.topic === output ? 'output' : 'dlq'}-${m.partition} scored_time ${at}`;
    const r = runs.get(k) ?? { first: Number(m.offset), last: Number(m.offset), count: 0, positions: [] };
    r.first = Math.min(r.first, Number(m.offset));
    r.last = Math.max(r.last, Number(m.offset));
    r.count += 1;
    if (r.positions.length < 2) r.positions.push(position);
    runs.set(k, r);
  }
  console.error(`${duplicates.size} input positions doubled; their copies:\n${[...runs].map(([k, r]) => `  ${k}: offsets ${r.first}..${r.last} (${r.count} copies; e.g. input ${r.positions.join(', ')})`).join('\n')}`);
}

/**
 * Exactly once by input position: every record of the input topic (read back) is in exactly one
 * of output and dead letters, exactly once, and nothing else is; and every record the stream had
 * acknowledged is in the input. Unlike expectExactlyOnce it holds when the stream had to send a
 * batch twice (Stream.resent). Bad records: every `poisonEvery`-th sent.
 */
export async function expectEachInputOnce(sent: readonly OutMessage[], input: string, output: string, dlq: string, poisonEvery = 97): Promise<void> {
  const inputs = await drainTopic(input);
  const outputs = await drainTopic(output);
  const dead = await drainTopic(dlq);
  const seen = new Map<Position, number>();
  for (const m of [...outputs, ...dead]) seen.set(positionOf(m, output), (seen.get(positionOf(m, output)) ?? 0) + 1);
  const positions = new Set(inputs.map((m): Position => `${m.partition}/${m.offset}`));
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([p]) => p);
  if (duplicates.length > 0) reportDuplicatePositions(new Set(duplicates), outputs, dead, output);
  const missing = [...positions].filter((p) => !seen.has(p));
  const extra = [...seen.keys()].filter((p) => !positions.has(p));
  const inputKeys = new Set(inputs.map((m) => m.key?.toString()));
  // Acknowledged by the cluster (acks all, min ISR 2), so in the input: kafkajs 2.2.4's send retry
  // could report a batch written that it never sent (src/kafka/kafkajs-send.ts fixes it).
  const lost = sent.filter((m) => !inputKeys.has(m.key)).map((m) => m.key);
  expect({ lost: lost.slice(0, 5), lostCount: lost.length }).toEqual({ lost: [], lostCount: 0 });
  expect({ duplicates: duplicates.slice(0, 5), duplicateCount: duplicates.length }).toEqual({ duplicates: [], duplicateCount: 0 });
  expect({ missing: missing.slice(0, 5), missingCount: missing.length }).toEqual({ missing: [], missingCount: 0 });
  expect({ extra: extra.slice(0, 5), extraCount: extra.length }).toEqual({ extra: [], extraCount: 0 });
  const poisonKeys = new Set(sent.filter((_, i) => poisonEvery > 0 && i % poisonEvery === 0).map((m) => m.key));
  expect(dead.length).toBe(inputs.filter((m) => poisonKeys.has(m.key?.toString() as string)).length);
}
