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
import { type Admin, type Consumer, type Kafka } from 'kafkajs';
import { readCommitted } from '../../scripts/lib/read-committed.js';
import { type Cursor, readLong } from '../../src/stages/decode/fast.js';

interface Visible {
  partition: number;
  offset: number;
  eventTime: number;
  scoredTime: number;
  /** model.version of the scored event. */
  version: string;
}

/** The scored event's fields up to the model version, in the order ScoredDecoder reads them (schemas/scored-event.avsc). */
const LAYOUT = 'event_id:string entity_id:string source.topic:string source.partition:int source.offset:long event_time:long scored_time:long model.name:string model.version:string';

/** `name:type` of every field, nested records flattened with dots, logical types by their underlying type. */
function layoutOf(fields: { name: string; type: unknown }[], prefix = ''): string[] {
  return fields.flatMap(({ name, type }) => {
    const t = typeof type === 'object' && type !== null && !Array.isArray(type) ? (type as { type: string; fields?: { name: string; type: unknown }[] }) : undefined;
    if (t?.type === 'record' && t.fields !== undefined) return layoutOf(t.fields, `${prefix}${name}.`);
    return [`${prefix}${name}:${typeof type === 'string' ? type : (t?.type ?? JSON.stringify(type))}`];
  });
}

/**
 * Reads the few fields the benchmark needs straight from the bytes (varints and string lengths,
 * as avsc does), up to model.version, and nothing after it: the reader runs beside the scorer on
 * the same cores, so it should cost them little. The schema must start as LAYOUT says (checked
 * here); a wrong read would show as missing and duplicate offsets in the exactly-once check.
 */
export class ScoredDecoder {
  readonly #c: Cursor = { pos: 0 };

  constructor(root: string) {
    const writer = JSON.parse(readFileSync(resolve(root, 'schemas/scored-event.avsc'), 'utf8')) as { fields: { name: string; type: unknown }[] };
    const head = layoutOf(writer.fields).slice(0, LAYOUT.split(' ').length).join(' ');
    if (head !== LAYOUT) throw new Error(`bench/lib/output.ts: schemas/scored-event.avsc starts with ${head}, the decoder reads ${LAYOUT}`);
  }

  decode(value: Buffer): Visible {
    const c = this.#c;
    c.pos = 5; // Confluent header: magic 0 + schema id; the writer is always our scored-event schema.
    this.#skipString(value); // event_id
    this.#skipString(value); // entity_id
    this.#skipString(value); // source.topic
    const partition = readLong(value, c);
    const offset = readLong(value, c);
    const eventTime = readLong(value, c);
    const scoredTime = readLong(value, c);
    this.#skipString(value); // model.name
    const length = readLong(value, c);
    const version = value.toString('utf8', c.pos, c.pos + length);
    return { partition, offset, eventTime, scoredTime, version };
  }

  #skipString(value: Buffer): void {
    const length = readLong(value, this.#c);
    this.#c.pos += length;
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

/**
 * The live records a LatencyReader saw, kept in columns of typed arrays until the phase ends: a
 * million records a run as objects filled the bench's old generation, and marking it took V8's
 * helper threads a tenth of a core beside the scorer being measured (bench/README.md, phase J).
 */
export class LatencyLog {
  #length = 0;
  #partition = new Int32Array(1024);
  #offset = new Float64Array(1024);
  #eventTime = new Float64Array(1024);
  #scoredTime = new Float64Array(1024);
  #visibleAt = new Float64Array(1024);
  #version = new Uint16Array(1024);
  readonly #versions: string[] = [];
  readonly #versionIndex = new Map<string, number>();

  get length(): number {
    return this.#length;
  }

  push(r: LatencyRecord): void {
    if (this.#length === this.#partition.length) this.#grow();
    const i = this.#length++;
    let v = this.#versionIndex.get(r.version);
    if (v === undefined) {
      if (this.#versions.length > 0xffff) throw new Error(`latency log: more than ${0xffff + 1} model versions in one phase`);
      v = this.#versions.push(r.version) - 1;
      this.#versionIndex.set(r.version, v);
    }
    this.#partition[i] = r.partition;
    this.#offset[i] = r.offset;
    this.#eventTime[i] = r.eventTime;
    this.#scoredTime[i] = r.scoredTime;
    this.#visibleAt[i] = r.visibleAt;
    this.#version[i] = v;
  }

  /** The records as objects, for the numbers computed once the phase is over. */
  records(): LatencyRecord[] {
    return Array.from({ length: this.#length }, (_, i) => ({
      partition: this.#partition[i] as number,
      offset: this.#offset[i] as number,
      version: this.#versions[this.#version[i] as number] as string,
      eventTime: this.#eventTime[i] as number,
      scoredTime: this.#scoredTime[i] as number,
      visibleAt: this.#visibleAt[i] as number,
    }));
  }

  #grow(): void {
    const n = this.#partition.length * 2;
    const grown = <T extends Int32Array | Float64Array | Uint16Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(n);
      b.set(a);
      return b;
    };
    this.#partition = grown(this.#partition, Int32Array);
    this.#offset = grown(this.#offset, Float64Array);
    this.#eventTime = grown(this.#eventTime, Float64Array);
    this.#scoredTime = grown(this.#scoredTime, Float64Array);
    this.#visibleAt = grown(this.#visibleAt, Float64Array);
    this.#version = grown(this.#version, Uint16Array);
  }
}

export class LatencyReader {
  readonly log = new LatencyLog();
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
          if (v.eventTime >= since) this.log.push({ partition: v.partition, offset: v.offset, version: v.version, eventTime: v.eventTime, scoredTime: v.scoredTime, visibleAt });
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
