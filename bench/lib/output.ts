/**
 * Reading the scorer's output topic as a downstream service would: read_committed, Confluent
 * framing. Only the fields the benchmark needs are materialised (a reader schema with a subset of
 * the scored event's fields; avsc skips the rest), so the reader costs the machine little.
 *
 * - `LatencyReader`: joins at the end of the topic, then records, per scored event, the time it
 *   became visible here (the fetch that returned it) next to its event_time and scored_time.
 * - `readAll`: the whole topic after a run, for the exactly-once count and the scored_time span.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import avro from 'avsc';
import { type Admin, type Consumer, type Kafka } from 'kafkajs';
import { readCommitted } from '../../scripts/lib/read-committed.js';

interface Visible {
  partition: number;
  offset: number;
  eventTime: number;
  scoredTime: number;
  /** model.version of the scored event. */
  version: string;
}

export class ScoredDecoder {
  readonly #resolver: avro.Resolver;
  readonly #reader: avro.Type;

  constructor(root: string) {
    const writer = JSON.parse(readFileSync(resolve(root, 'schemas/scored-event.avsc'), 'utf8')) as { name: string; namespace: string; fields: { name: string }[] };
    const keep = new Set(['source', 'event_time', 'scored_time', 'model']);
    this.#reader = avro.Type.forSchema({ ...writer, fields: writer.fields.filter((f) => keep.has(f.name)) } as avro.Schema);
    this.#resolver = this.#reader.createResolver(avro.Type.forSchema(writer as avro.Schema));
  }

  decode(value: Buffer): Visible {
    // 5-byte Confluent header (magic 0 + schema id); the writer is always our scored-event schema.
    const v = this.#reader.decode(value, 5, this.#resolver).value as { source: { partition: number; offset: number }; event_time: number; scored_time: number; model: { version: string } };
    return { partition: v.source.partition, offset: v.source.offset, eventTime: Number(v.event_time), scoredTime: Number(v.scored_time), version: v.model.version };
  }
}

export interface LatencyRecord {
  partition: number;
  offset: number;
  version: string;
  eventTime: number;
  scoredTime: number;
  /** Date.now() when the fetch carrying it was handed to this consumer. */
  visibleAt: number;
}

export class LatencyReader {
  readonly records: LatencyRecord[] = [];
  readonly #consumer: Consumer;
  readonly #decoder: ScoredDecoder;
  readonly #topic: string;
  readonly #since: () => number;
  #joined: Promise<void>;

  /** Only events with event_time >= since() are kept (the backlog's are older). */
  constructor(kafka: Kafka, topic: string, groupId: string, decoder: ScoredDecoder, since: () => number) {
    // A short maxWait: the fetch returns as soon as committed data is there; this only bounds
    // how late an idle fetch notices it.
    this.#consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 100, minBytes: 1 });
    this.#decoder = decoder;
    this.#topic = topic;
    this.#since = since;
    this.#joined = new Promise((r) => this.#consumer.on(this.#consumer.events.GROUP_JOIN, () => r()));
  }

  /** Resolves once the group is joined and every partition is positioned at its end. */
  async start(admin: Admin): Promise<void> {
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#topic, fromBeginning: false });
    await this.#consumer.run({
      eachBatch: async ({ batch }) => {
        const visibleAt = Date.now();
        const since = this.#since();
        for (const m of batch.messages) {
          if (m.value === null) continue;
          const v = this.#decoder.decode(m.value);
          if (v.eventTime >= since) this.records.push({ partition: v.partition, offset: v.offset, version: v.version, eventTime: v.eventTime, scoredTime: v.scoredTime, visibleAt });
        }
      },
    });
    await this.#joined;
    // Position explicitly at the current end: 'latest' is otherwise resolved at the first fetch.
    for (const { partition, offset } of await admin.fetchTopicOffsets(this.#topic)) this.#consumer.seek({ topic: this.#topic, partition, offset });
    await sleep(500);
  }

  stop(): Promise<void> {
    return this.#consumer.disconnect();
  }
}

export interface OutputSummary {
  records: number;
  /** Records whose (source partition, source offset) was already seen: must be 0 (exactly once). */
  duplicates: number;
  scoredTimes: number[];
  eventTimes: number[];
}

/** Reads every committed record of `topic` until `expected` arrived and 1.5 s passed with nothing new (or `timeoutMs`). */
export async function readAll(kafka: Kafka, topic: string, groupId: string, decoder: ScoredDecoder, expected: number, timeoutMs = 90_000): Promise<OutputSummary> {
  const seen = new Set<string>();
  const out: OutputSummary = { records: 0, duplicates: 0, scoredTimes: [], eventTimes: [] };
  await readCommitted(kafka, {
    groupId,
    topics: [topic],
    maxWaitTimeInMs: 200,
    pollMs: 100,
    onBatch: (batch) => {
      for (const m of batch.messages) {
        if (m.value === null) continue;
        const v = decoder.decode(m.value);
        const key = `${v.partition}:${v.offset}`;
        if (seen.has(key)) out.duplicates++;
        seen.add(key);
        out.records++;
        out.scoredTimes.push(v.scoredTime);
        out.eventTimes.push(v.eventTime);
      }
    },
    done: (quiet) => out.records >= expected && quiet,
    quietMs: 1_500,
    timeoutMs,
  });
  return out;
}

/** Sum over partitions of the group's committed offsets on `topic` (-1 = none counts as 0). */
export async function committedTotal(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return (t?.partitions ?? []).reduce((a, p) => a + Math.max(0, Number(p.offset)), 0);
}

/** Sum over partitions of the high watermarks of `topic`. */
export async function endTotal(admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((a, p) => a + Number(p.high), 0);
}

export function percentile(sorted: number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
