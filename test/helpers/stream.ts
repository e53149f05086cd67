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
  const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  let stopping = false;
  let burstLeft = 0;
  let bursted = 0;
  const done = (async () => {
    await producer.connect();
    const started = Date.now();
    for (let i = 0; i < maxEvents && !stopping; i += SEND) {
      const batch = Array.from({ length: SEND }, (_, j) => streamEvent(factory, i + j, poisonEvery));
      await producer.send({ topic, messages: batch });
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
