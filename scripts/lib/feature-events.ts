/**
 * Reference feature events and every kind of bad record the scorer must survive, as Kafka
 * messages in Confluent wire format. Used by the load generator (`npm run produce`), the demo,
 * the benchmark and the integration tests, so they all speak about the same records.
 *
 * Writer schemas are registered under their own subjects (`<topic>-value` for the reference
 * schema, `<topic>-<variant>-value` for evolved and poison ones): schema ids are global, and a
 * registry that enforces compatibility per subject (Confluent's default BACKWARD) would refuse an
 * incompatible schema under the topic's own subject. Registration is the registry's plain REST
 * call (src/kafka/registry.ts): the registry judges compatibility at whatever level the subject
 * has, and no configuration is ever written.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { type RegistryRest, registerSchema } from '../../src/kafka/registry.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const POISON_KINDS = [
  'bad-magic',
  'empty-value',
  'truncated',
  'unknown-schema-id',
  'garbage-body',
  'incompatible-schema',
  'wrong-type',
  'missing-feature',
  'null-feature',
  'nan-feature',
  'inf-feature',
] as const;
export type PoisonKind = (typeof POISON_KINDS)[number];

/** The dead-letter code each kind must get (src/errors.ts). */
export const EXPECTED_CODE: Record<PoisonKind, string> = {
  'bad-magic': 'BAD_MAGIC_BYTE',
  'empty-value': 'BAD_MAGIC_BYTE',
  truncated: 'MALFORMED_PAYLOAD',
  'unknown-schema-id': 'UNKNOWN_SCHEMA_ID',
  'garbage-body': 'MALFORMED_PAYLOAD',
  'incompatible-schema': 'INCOMPATIBLE_SCHEMA',
  'wrong-type': 'INCOMPATIBLE_SCHEMA',
  'missing-feature': 'INVALID_FEATURE',
  'null-feature': 'INVALID_FEATURE',
  'nan-feature': 'INVALID_FEATURE',
  'inf-feature': 'INVALID_FEATURE',
};

export type ModelKind = 'churn' | 'mlp';
export const MODEL_PATHS: Record<ModelKind, string> = { churn: resolve(ROOT, 'models/churn.onnx'), mlp: resolve(ROOT, 'models/mlp.onnx') };
const SCHEMA_FILES: Record<ModelKind, string> = { churn: 'schemas/feature-event.avsc', mlp: 'schemas/wide-feature-event.avsc' };

/**
 * The feature each field-level poison kind spoils, per model. A kind missing here cannot be
 * written in that model's schema: the wide schema has no nullable feature, so a record with a
 * missing or null feature is not expressible there (dropping a field without a default is the
 * incompatible-schema kind).
 */
const POISON_FIELDS: Record<ModelKind, Partial<Record<PoisonKind, string>>> = {
  churn: { 'incompatible-schema': 'tenure_months', 'wrong-type': 'sessions_30d', 'missing-feature': 'nps_score', 'null-feature': 'avg_session_minutes', 'nan-feature': 'monthly_charges', 'inf-feature': 'data_usage_gb' },
  mlp: { 'incompatible-schema': 'f000', 'wrong-type': 'f001', 'nan-feature': 'f002', 'inf-feature': 'f003' },
};
const FIELD_KINDS: readonly PoisonKind[] = ['incompatible-schema', 'wrong-type', 'missing-feature', 'null-feature', 'nan-feature', 'inf-feature'];

/** The poison kinds a model's schema can carry, in POISON_KINDS order. */
export function poisonKindsFor(model: ModelKind): PoisonKind[] {
  return POISON_KINDS.filter((k) => !FIELD_KINDS.includes(k) || POISON_FIELDS[model][k] !== undefined);
}

interface FieldDef {
  name: string;
  type: unknown;
  default?: unknown;
  doc?: string;
}
interface RecordSchema {
  type: 'record';
  name: string;
  namespace?: string;
  fields: FieldDef[];
}

export interface OutMessage {
  key: string;
  value: Buffer;
}

/** Deterministic PRNG (mulberry32) so runs and tests are repeatable from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function churnFeatures(r: () => number): Record<string, number | boolean | null> {
  const tenure = Math.floor(r() * 73);
  const contract = [1, 12, 24][Math.floor(r() * 3)] as number;
  const monthly = Math.round((20 + r() * 100) * 100) / 100;
  return {
    tenure_months: tenure,
    monthly_charges: monthly,
    total_charges: Math.round(monthly * Math.max(tenure, 1) * 100) / 100,
    contract_months: contract,
    num_products: 1 + Math.floor(r() * 5),
    has_autopay: r() < 0.55,
    support_tickets_90d: Math.floor(r() * r() * 8),
    late_payments_12m: Math.floor(r() * r() * 6),
    sessions_30d: Math.floor(r() * 60),
    avg_session_minutes: Math.round(r() * 45 * 10) / 10,
    days_since_last_login: Math.floor(r() * r() * 90),
    data_usage_gb: Math.round(r() * 80 * 10) / 10,
    discount_pct: Math.round(r() * 30),
    nps_score: Math.floor(r() * 11),
  };
}

/** Builds events for one model's reader schema, registers writer schemas, and encodes records. */
export class EventFactory {
  readonly model: ModelKind;
  readonly schema: RecordSchema;
  readonly #type: avro.Type;
  readonly #featureFields: FieldDef[];
  readonly #ids = new Map<string, { id: number; type: avro.Type }>();
  readonly #random: () => number;
  readonly #runId = randomUUID().slice(0, 8);

  private constructor(model: ModelKind, seed: number) {
    this.model = model;
    this.schema = JSON.parse(readFileSync(resolve(ROOT, SCHEMA_FILES[model]), 'utf8')) as RecordSchema;
    this.#type = avro.Type.forSchema(this.schema as avro.Schema);
    const features = this.schema.fields.find((f) => f.name === 'features');
    this.#featureFields = (features?.type as RecordSchema).fields;
    this.#random = rng(seed);
  }

  /**
   * Registers the reference schema under `<topic>-value` (and, with variants, the evolved and
   * poison writer schemas). Throws REGISTRY_UNAVAILABLE (after a few quick retries) or
   * REGISTRY_REJECTED with a message naming the subject and its compatibility.
   */
  static async create(registry: RegistryRest, topic: string, { model = 'churn' as ModelKind, seed = 1, variants = true } = {}): Promise<EventFactory> {
    const f = new EventFactory(model, seed);
    await f.#register(registry, 'reference', `${topic}-value`, f.schema);
    if (variants) {
      for (const [name, schema] of Object.entries(f.#variantSchemas())) await f.#register(registry, name, `${topic}-${name}-value`, schema);
    }
    return f;
  }

  /** Events only (no registry): for feature files (scripts/lib/feature-files.ts); encode() needs create(). */
  static offline({ model = 'churn' as ModelKind, seed = 1 } = {}): EventFactory {
    return new EventFactory(model, seed);
  }

  async #register(registry: RegistryRest, name: string, subject: string, schema: RecordSchema): Promise<void> {
    const advice = `Produce to another topic (--topic), or register a compatible schema there.`;
    const id = await registerSchema(registry, subject, schema as avro.Schema, { advice, retry: { attempts: 3 } });
    this.#ids.set(name, { id, type: avro.Type.forSchema(schema as avro.Schema) });
  }

  /** The poison kinds this model's schema can carry. */
  get poisonKinds(): PoisonKind[] {
    return poisonKindsFor(this.model);
  }

  /** The feature a field-level poison kind spoils in this model's schema. */
  #field(kind: PoisonKind): string {
    const name = POISON_FIELDS[this.model][kind];
    if (name === undefined) throw new Error(`poison kind ${kind} cannot be written in the ${this.model} schema (see poisonKinds)`);
    return name;
  }

  /** Writer schemas that differ from the reader's, each testing one resolution rule. */
  #variantSchemas(): Record<string, RecordSchema> {
    const withFeatures = (map: (fields: FieldDef[]) => FieldDef[], extra: FieldDef[] = []): RecordSchema => ({
      ...this.schema,
      fields: [
        // Same record names as the reader's: Avro resolves named types by name.
        ...this.schema.fields.map((f) => (f.name === 'features' ? { ...f, type: { ...(f.type as RecordSchema), fields: map(this.#featureFields) } } : f)),
        ...extra,
      ],
    });
    const retype = (fields: FieldDef[], name: string, type: unknown) => fields.map((f) => (f.name === name ? { name, type } : f));
    const spoiled = POISON_FIELDS[this.model];
    const out: Record<string, RecordSchema> = {};
    if (this.model === 'churn') {
      // Compatible evolution: a new field, a field dropped that the reader defaults, int/long/float widened to double.
      out.evolved = withFeatures(
        (fields) => retype(retype(fields.filter((f) => f.name !== 'discount_pct'), 'total_charges', 'long'), 'data_usage_gb', 'float').concat([{ name: 'loyalty_tier', type: 'string', default: 'none' }]),
        [{ name: 'channel', type: 'string', default: 'web' }],
      );
    }
    const incompatible = spoiled['incompatible-schema'];
    const wrongType = spoiled['wrong-type'];
    const missing = spoiled['missing-feature'];
    // The reader needs this feature and has no default for it.
    if (incompatible !== undefined) out.incompatible = withFeatures((fields) => fields.filter((f) => f.name !== incompatible));
    // A number written as a string cannot be read as a number.
    if (wrongType !== undefined) out.wrongtype = withFeatures((fields) => retype(fields, wrongType, 'string'));
    // Absent: resolves to the reader's default null, which the model cannot use.
    if (missing !== undefined) out.missing = withFeatures((fields) => fields.filter((f) => f.name !== missing));
    return out;
  }

  #id(name: string): { id: number; type: avro.Type } {
    const entry = this.#ids.get(name);
    if (entry === undefined) throw new Error(`schema variant ${name} not registered (EventFactory.create with variants${name === 'evolved' ? ', churn model' : ''})`);
    return entry;
  }

  /** A valid reference event. */
  event(i: number, eventTime = Date.now()): Record<string, unknown> {
    const r = this.#random;
    const features =
      this.model === 'churn' ? churnFeatures(r) : Object.fromEntries(this.#featureFields.map((f) => [f.name, Math.round((r() * 4 - 2) * 1000) / 1000]));
    return { event_id: randomUUID(), event_time: eventTime, entity_id: `entity-${this.#runId}-${i}`, features };
  }

  encode(variant: string, value: Record<string, unknown>): Buffer {
    const { id, type } = this.#id(variant);
    const header = Buffer.alloc(5);
    header.writeInt32BE(id, 1);
    return Buffer.concat([header, type.toBuffer(value)]);
  }

  /** The reference schema id (registered under `<topic>-value`). */
  get schemaId(): number {
    return this.#id('reference').id;
  }

  good(i: number, eventTime?: number): OutMessage {
    const e = this.event(i, eventTime);
    return { key: e.entity_id as string, value: this.encode('reference', e) };
  }

  /** A compatible, evolved writer's record: must be scored. */
  evolved(i: number, eventTime?: number): OutMessage {
    const e = this.event(i, eventTime);
    const f = { ...(e.features as Record<string, unknown>) };
    delete f.discount_pct;
    f.total_charges = Math.round(f.total_charges as number);
    f.loyalty_tier = 'gold';
    return { key: e.entity_id as string, value: this.encode('evolved', { ...e, features: f, channel: 'app' }) };
  }

  poison(kind: PoisonKind, i: number, eventTime?: number): OutMessage {
    const e = this.event(i, eventTime);
    const key = e.entity_id as string;
    const features = e.features as Record<string, unknown>;
    const good = this.encode('reference', e);
    switch (kind) {
      case 'bad-magic':
        return { key, value: Buffer.concat([Buffer.from([1]), good.subarray(1)]) };
      case 'empty-value':
        return { key, value: Buffer.alloc(0) };
      case 'truncated':
        return { key, value: good.subarray(0, good.length - 7) };
      case 'unknown-schema-id': {
        const value = Buffer.from(good);
        value.writeInt32BE(0x7ffffff0, 1);
        return { key, value };
      }
      case 'garbage-body':
        return { key, value: Buffer.concat([good.subarray(0, 5), Buffer.from([0x85, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x13])]) };
      case 'incompatible-schema': {
        const f = { ...features };
        delete f[this.#field(kind)];
        return { key, value: this.encode('incompatible', { ...e, features: f }) };
      }
      case 'wrong-type': {
        const name = this.#field(kind);
        return { key, value: this.encode('wrongtype', { ...e, features: { ...features, [name]: String(features[name]) } }) };
      }
      case 'missing-feature': {
        const f = { ...features };
        delete f[this.#field(kind)];
        return { key, value: this.encode('missing', { ...e, features: f }) };
      }
      case 'null-feature':
        return { key, value: this.encode('reference', { ...e, features: { ...features, [this.#field(kind)]: null } }) };
      case 'nan-feature':
        return { key, value: this.encode('reference', { ...e, features: { ...features, [this.#field(kind)]: Number.NaN } }) };
      case 'inf-feature':
        return { key, value: this.encode('reference', { ...e, features: { ...features, [this.#field(kind)]: Number.POSITIVE_INFINITY } }) };
    }
  }

  /** Reference events encoded once, sent again with event_time stamped at each send (RecycledEvents). */
  recycled(count: number): RecycledEvents {
    return new RecycledEvents(this, count);
  }

  /** The feature row the model sees for a reference-schema value (tests compare against onnxruntime directly). */
  featureRow(value: Buffer, order: readonly string[]): number[] {
    const decoded = this.#type.fromBuffer(value.subarray(5)) as { features: Record<string, number | boolean> };
    return order.map((name) => Number(decoded.features[name]));
  }
}

/** Bytes of event_time in a recycled value: a zigzag varint of 6 bytes holds 2^34..2^41 ms (1970 + 0.5..70 years). */
const TIME_BYTES = 6;
const MIN_TIME_MS = 2 ** 34;
const MAX_TIME_MS = 2 ** 41 - 1;

/**
 * `count` reference events (keys, ids and features) built and Avro-encoded once, then sent again
 * and again, each time with event_time set to the moment it is handed out: the same bytes the
 * scorer would get from fresh events, for a load generator whose own cost per event is only the
 * Kafka client's. The live phase of the benchmark runs next to the scorer on the same cores, and
 * building and encoding each event took as much CPU as the scorer's whole pipeline.
 *
 * event_time is the second field (after the event_id string) and stays 6 varint bytes for any
 * time between 1970 + 0.5 years and 2039, so it is written in place. A value handed out is
 * reused `count` events later: send it (the client copies it into its request) before then.
 */
export class RecycledEvents {
  readonly #messages: OutMessage[];
  readonly #timeAt: number[];
  #next = 0;

  constructor(factory: EventFactory, count: number) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`recycled events: count must be a positive integer, got ${count}`);
    const [first, second] = factory.schema.fields;
    if (first?.name !== 'event_id' || second?.name !== 'event_time') throw new Error(`recycled events: the ${factory.model} schema must start with event_id, event_time (it starts with ${first?.name}, ${second?.name})`);
    const stringType = avro.Type.forSchema('string');
    this.#messages = [];
    this.#timeAt = [];
    const now = Date.now();
    for (let i = 0; i < count; i++) {
      const e = factory.event(i, now);
      const message = { key: e.entity_id as string, value: factory.encode('reference', e) };
      this.#messages.push(message);
      // 5 bytes of Confluent header, then the event_id string, then event_time.
      this.#timeAt.push(5 + stringType.toBuffer(e.event_id).length);
    }
    // What is written in place must be what avsc wrote: stamping the time it was built with changes nothing.
    const original = Buffer.from((this.#messages[0] as OutMessage).value);
    if (!this.next(now).value.equals(original)) throw new Error(`recycled events: event_time of the ${factory.model} schema is not where it is written in place`);
    this.#next = 0;
  }

  /** The next event, its event_time set to `eventTime` (ms since the epoch). */
  next(eventTime: number): OutMessage {
    if (!Number.isInteger(eventTime) || eventTime < MIN_TIME_MS || eventTime > MAX_TIME_MS) throw new Error(`recycled events: event_time ${eventTime} does not fit the 6 bytes written in place`);
    const i = this.#next;
    this.#next = i + 1 === this.#messages.length ? 0 : i + 1;
    const message = this.#messages[i] as OutMessage;
    const value = message.value;
    // Zigzag (2n for n >= 0), then 7 bits per byte, low bits first, the high bit set on all but the last.
    let z = eventTime * 2;
    let at = this.#timeAt[i] as number;
    for (let b = 0; b < TIME_BYTES - 1; b++) {
      value[at++] = (z % 128) | 0x80;
      z = Math.floor(z / 128);
    }
    value[at] = z;
    return message;
  }
}
