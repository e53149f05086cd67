// The fused decode+vectorize fast path against the generic Decoder + Vectorizer, property style:
// hundreds to thousands of seeded random events per writer schema (the real reader schemas and
// evolved ones), valid and broken, must give the same row bytes, envelope, or error code and message.
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { Decoder } from '../../../../src/stages/decode/decoder.js';
import { HEADER_BYTES } from '../../../../src/stages/decode/wire.js';
import { ScorerError } from '../../../../src/errors.js';
import { type FastDecoder, buildFastDecoder } from '../../../../src/stages/decode/fast.js';
import { rng } from '../../../../scripts/lib/feature-events.js';
import type { Manifest } from '../../../../src/model/manifest.js';
import { type EventEnvelope, type FeatureEvent, Vectorizer } from '../../../../src/stages/vectorize.js';
import { churnEvent, readRepoJson } from '../../../helpers/fixtures.js';

type Field = { name: string; type: unknown; default?: unknown };
type RecordSchema = { type: 'record'; name: string; fields: Field[] };

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;


const featuresOf = (s: RecordSchema): Field[] => (s.fields.find((f) => f.name === 'features')?.type as RecordSchema).fields;

type Outcome = { ok: true; envelope: EventEnvelope; row: Buffer } | { ok: false; code: string; message: string };

interface Harness {
  width: number;
  decoder: Decoder;
  fast: FastDecoder | undefined;
  generic(value: Buffer): Outcome;
  /** What the pipeline does: the fast path, else the generic one. */
  combined(value: Buffer): Outcome;
  /** The fast path alone: undefined when it declines. */
  fastOnly(value: Buffer): Outcome | undefined;
}

/** A Decoder (minimal registry: id 1 -> the writer Type) + Vectorizer, and the fast decoder for id 1. */
async function harness(reader: RecordSchema, manifest: Manifest, writer: RecordSchema): Promise<Harness> {
  const writerType = avro.Type.forSchema(writer as unknown as avro.Schema);
  const registry = { getSchema: async (id: number) => (id === 1 ? writerType : Promise.reject(Object.assign(new Error('not found'), { status: 404 }))) } as unknown as SchemaRegistry;
  const decoder = new Decoder({ registry, readerSchema: reader as unknown as avro.Schema, registryTimeoutMs: 10_000 });
  const vectorizer = new Vectorizer(manifest, decoder.readerType);
  await decoder.prepare([1]);
  const w = decoder.writerType(1);
  const fast = w === undefined ? undefined : buildFastDecoder(w, decoder.readerType, vectorizer.features);
  const width = vectorizer.width;
  const rowBytes = (out: Float32Array, row: number) => Buffer.from(out.buffer, row * width * 4, width * 4);
  const generic = (value: Buffer): Outcome => {
    const out = new Float32Array(2 * width).fill(-7); // row 1, so the row offset is exercised
    try {
      const e = decoder.decode(value) as FeatureEvent;
      vectorizer.write(e, out, 1);
      return { ok: true, envelope: { event_id: e.event_id, entity_id: e.entity_id, event_time: e.event_time }, row: rowBytes(out, 1) };
    } catch (err) {
      if (!(err instanceof ScorerError)) throw err;
      return { ok: false, code: err.code, message: err.message };
    }
  };
  const fastOnly = (value: Buffer): Outcome | undefined => {
    const out = new Float32Array(2 * width).fill(12345); // different fill: an unwritten column shows
    const envelope = fast?.decode(value, out, 1);
    return envelope === undefined ? undefined : { ok: true, envelope, row: rowBytes(out, 1) };
  };
  return { width, decoder, fast, generic, fastOnly, combined: (value) => fastOnly(value) ?? generic(value) };
}

const framed = (body: Buffer, id = 1): Buffer => {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
};

const STRINGS = ['', 'a', 'évènement', '事件-42', '🙂🙃', 'x'.repeat(200)];

/**
 * A random value of a (supported) writer type. `badRate` > 0 makes a bad record: each float or
 * double is then NaN, ±Infinity or beyond float32 with that probability, and nullable fields are
 * null more often.
 */
function randomValue(type: unknown, rnd: () => number, badRate: number, name: string): unknown {
  if (Array.isArray(type)) {
    if (rnd() < (badRate > 0 ? 0.3 : 0.05)) return null;
    return randomValue(type.find((t) => t !== 'null'), rnd, badRate, name);
  }
  if (typeof type === 'object' && type !== null) {
    const t = type as { type: string; fields?: Field[] };
    if (t.type === 'record') return Object.fromEntries((t.fields ?? []).map((f) => [f.name, randomValue(f.type, rnd, badRate, f.name)]));
    return randomValue(t.type, rnd, badRate, name);
  }
  const r = rnd();
  switch (type) {
    case 'null':
      return null;
    case 'boolean':
      return r < 0.5;
    case 'string':
      return STRINGS[Math.floor(r * STRINGS.length)] + String(Math.floor(rnd() * 1e6));
    case 'int':
      return r < 0.2 ? 0 : r < 0.4 ? -(2 ** 31) + Math.floor(rnd() * 100) : Math.floor((rnd() - 0.5) * 2 ** 32 * 0.999);
    case 'long':
      if (name === 'event_time') return 1_700_000_000_000 + Math.floor(rnd() * 1e10);
      return r < 0.3 ? Math.floor((rnd() - 0.5) * 2 * Number.MAX_SAFE_INTEGER) : Math.floor((rnd() - 0.5) * 1e6);
    case 'float':
    case 'double': {
      if (r < badRate) return [NaN, Infinity, -Infinity, 1e39, -1e39][Math.floor(rnd() * 5)];
      const s = rnd();
      if (s < 0.1) return [0, -0, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45, 5e-324][Math.floor(rnd() * 6)];
      if (s < 0.3) return Math.floor((rnd() - 0.5) * 1e6);
      return (rnd() - 0.5) * 10 ** Math.floor(rnd() * 20 - 8);
    }
    default:
      throw new Error(`fixture: no generator for ${JSON.stringify(type)}`);
  }
}

/** Corruptions of a valid body, each a kind of MALFORMED_PAYLOAD (or, by chance, still valid). */
function corrupt(body: Buffer, rnd: () => number): Buffer {
  const kind = Math.floor(rnd() * 5);
  if (kind === 0) return body.subarray(0, Math.floor(rnd() * body.length)); // truncated
  if (kind === 1) return Buffer.concat([body, Buffer.from([Math.floor(rnd() * 256)])]); // trailing byte(s)
  if (kind === 2) return Buffer.from(Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256))); // garbage
  const copy = Buffer.from(body);
  for (let i = 0; i < 1 + Math.floor(rnd() * 3); i++) copy[Math.floor(rnd() * copy.length)] = kind === 3 ? Math.floor(rnd() * 256) : 0xff; // flipped bytes
  return copy;
}

/**
 * The same outcome, checked without vitest: `toEqual` walks a Buffer element by element (about
 * 1 ms for a 256-feature row, three times per case), which was nearly all of the property's time.
 * Row bytes are compared with Buffer.equals and numbers with Object.is, so `same` implies `toEqual`;
 * when it says no, `toEqual` itself decides and prints the diff.
 */
const same = (a: Outcome | undefined, b: Outcome): boolean => {
  if (a === undefined || a.ok !== b.ok) return false;
  if (a.ok && b.ok) {
    const [x, y] = [a.envelope, b.envelope];
    return a.row.equals(b.row) && x.event_id === y.event_id && x.entity_id === y.entity_id && Object.is(x.event_time, y.event_time) && Object.keys(x).length === 3 && Object.keys(y).length === 3;
  }
  return !a.ok && !b.ok && a.code === b.code && a.message === b.message;
};

/** `context` goes in front of any failure message: which seed and case, and how to rerun it. */
function expectSame(h: Harness, value: Buffer, strict: boolean, context: string): Outcome {
  const g = h.generic(value);
  const f = h.fastOnly(value);
  // The fast path may decline only records the generic path rejects (strict), and never disagree.
  if (strict && (f !== undefined) !== g.ok) expect(f !== undefined, `${context}: the fast path ${f === undefined ? 'declined a valid record' : 'accepted an invalid one'}`).toBe(g.ok);
  if (f !== undefined && !same(f, g)) expect(f, context).toEqual(g);
  const c = h.combined(value);
  if (!same(c, g)) expect(c, context).toEqual(g);
  return g;
}

/**
 * Property runs use their table's seed unless PROPERTY_SEED is set, so another seed can be tried
 * and a failure, which names its seed, replays exactly.
 */
const SEED_OVERRIDE = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);

/** `n` random events of `writer` (a fraction with bad features, a fraction corrupted), compared. */
function property(h: Harness, writer: RecordSchema, seed: number, n: number, badRate: number): Record<string, number> {
  const type = avro.Type.forSchema(writer as unknown as avro.Schema);
  const rnd = rng(seed);
  const tally: Record<string, number> = {};
  const title = (expect.getState().currentTestName ?? '').split(' > ').at(-1) ?? '';
  const rerun = `PROPERTY_SEED=${seed} npx vitest run --project unit test/unit/stages/decode/fast.test.ts -t '${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`;
  for (let i = 0; i < n; i++) {
    const bad = rnd() < 0.2;
    const body = type.toBuffer(randomValue(writer, rnd, bad ? badRate : 0, ''));
    const corrupted = rnd() < 0.15;
    const context = `seed ${seed}, case ${i} of ${n} (${corrupted ? 'corrupted' : bad ? 'bad features' : 'valid'}); rerun: ${rerun}`;
    const g = expectSame(h, framed(corrupted ? corrupt(body, rnd) : body), !corrupted, context);
    const key = g.ok ? 'ok' : g.code;
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return tally;
}

const churnManifest = readRepoJson<Manifest>('models/churn.manifest.json');
const churnReader = readRepoJson<RecordSchema>('schemas/feature-event.avsc');
const mlpManifest = readRepoJson<Manifest>('models/mlp.manifest.json');
const wideReader = readRepoJson<RecordSchema>('schemas/wide-feature-event.avsc');

function evolve(reader: RecordSchema, edit: (envelope: Field[], features: Field[]) => void): RecordSchema {
  const copy = clone(reader);
  edit(copy.fields, featuresOf(copy));
  return copy;
}
const setType = (fields: Field[], name: string, type: unknown) => {
  const f = fields.find((x) => x.name === name);
  if (f === undefined) throw new Error(`fixture: no field ${name}`);
  f.type = type;
  delete f.default;
};
const remove = (fields: Field[], name: string) => fields.splice(fields.findIndex((f) => f.name === name), 1);
const EXTRA_ENVELOPE: Field[] = [
  { name: 'source_system', type: 'string' },
  { name: 'seq', type: ['null', 'long'] },
  { name: 'flag', type: 'boolean' },
  { name: 'weight', type: 'float' },
  { name: 'nothing', type: 'null' },
  { name: 'ratio', type: ['double', 'null'] },
];

const CHURN_WRITERS: Record<string, RecordSchema> = {
  'the reader schema itself': churnReader,
  'fields added (envelope and features, every wire type)': evolve(churnReader, (env, feat) => {
    env.splice(1, 0, ...EXTRA_ENVELOPE);
    feat.splice(3, 0, { name: 'extra_note', type: ['null', 'string'] }, { name: 'extra_count', type: 'long' }, { name: 'extra_x', type: 'double' });
  }),
  'discount_pct removed (reader default 0.0)': evolve(churnReader, (_, feat) => remove(feat, 'discount_pct')),
  'promotions: int->double, float->double, long->double, int->long, float feature': evolve(churnReader, (env, feat) => {
    setType(feat, 'monthly_charges', 'int');
    setType(feat, 'data_usage_gb', 'float');
    setType(feat, 'total_charges', 'long');
    setType(feat, 'avg_session_minutes', ['null', 'float']);
    feat.splice(0, 0, { name: 'extra_flag', type: ['boolean', 'null'] });
    setType(env, 'event_time', 'int');
  }),
  'fields reordered, features first': evolve(churnReader, (env, feat) => {
    feat.reverse();
    env.reverse();
  }),
  'non-null writer fields for nullable reader ones': evolve(churnReader, (_, feat) => {
    setType(feat, 'nps_score', 'int');
    setType(feat, 'avg_session_minutes', 'double');
  }),
};

const WIDE_WRITERS: Record<string, RecordSchema> = {
  'the reader schema itself': wideReader,
  'fields added, features as float, int or long, reordered': evolve(wideReader, (env, feat) => {
    env.push(...EXTRA_ENVELOPE);
    feat.reverse();
    feat.splice(100, 0, { name: 'g_extra', type: 'string' }, { name: 'g_flag', type: ['null', 'boolean'] });
    for (const [i, f] of feat.entries()) {
      if (i % 7 === 0) f.type = 'float';
      else if (i % 11 === 0) f.type = 'long';
      else if (i % 13 === 0) f.type = 'int';
    }
  }),
};

/**
 * One property run per model and writer. The churn schema (14 features) is cheap, so it gets many
 * cases. The 256-feature schema needs fewer: every valid case already checks all 256 columns, and
 * its bad cases have about two bad features (2/256 per float or double) at random columns, so
 * the fast path must decline a bad value anywhere in the row, not just in its first columns (at
 * the churn rate of 5% per field nearly every bad wide record failed within its first 40 columns).
 */
const PROPERTY_MODELS = [
  { model: 'churn', reader: churnReader, manifest: churnManifest, writers: CHURN_WRITERS, seed: 0xc0ffee, cases: 4000, badRate: 0.05, atLeast: { ok: 1500, INVALID_FEATURE: 100, MALFORMED_PAYLOAD: 100 } },
  { model: 'mlp (256 features)', reader: wideReader, manifest: mlpManifest, writers: WIDE_WRITERS, seed: 0xbeef, cases: 500, badRate: 2 / 256, atLeast: { ok: 250, INVALID_FEATURE: 30, MALFORMED_PAYLOAD: 30 } },
];
const PROPERTY_RUNS = PROPERTY_MODELS.flatMap((m) => Object.entries(m.writers).map(([writerName, writer]) => [`${m.model}, writer: ${writerName}`, { ...m, writerName, writer }] as const));

describe('fast decode vs generic decode + vectorize (property)', () => {
  // Genuinely long on a loaded machine, not racy: each case encodes, decodes twice and compares
  // (0.1-0.5 s of CPU per test quiet); with the 2 cores shared by a broker, a registry and other
  // test processes it took 5-6 s, so these get 30 s. Every other test here keeps the 5 s default.
  it.each(PROPERTY_RUNS)('%s', { timeout: 30_000 }, async (_, { reader, manifest, writer, writerName, seed, cases, badRate, atLeast }) => {
    const h = await harness(reader, manifest, writer);
    expect(h.decoder.writerType(1)).toBeDefined();
    expect(h.fast).toBeDefined();
    const tally = property(h, writer, SEED_OVERRIDE ?? seed + writerName.length, cases, badRate);
    // Each outcome is exercised, not just the easy one.
    for (const [outcome, min] of Object.entries(atLeast)) expect(tally[outcome] ?? 0, `${outcome} cases`).toBeGreaterThan(min);
  });
});

describe('fast decode: specific records', () => {
  const valid = churnEvent();
  const type = avro.Type.forSchema(churnReader as unknown as avro.Schema);
  const body = (features: Record<string, unknown> = {}): Buffer => type.toBuffer(churnEvent(features));

  it('writes the row in manifest order and keeps the envelope', async () => {
    const h = await harness(churnReader, churnManifest, churnReader);
    const out = h.fastOnly(framed(body()));
    expect(out?.ok).toBe(true);
    if (out?.ok !== true) return;
    expect(out.envelope).toEqual({ event_id: 'e-1', entity_id: 'c-1', event_time: 1_700_000_000_000 });
    expect([...new Float32Array(out.row.buffer.slice(out.row.byteOffset, out.row.byteOffset + out.row.length))]).toEqual([24, 79.5, 1908, 12, 3, 1, 2, 1, 41, 12.25, 5, 7.75, 10, 8]);
  });

  it.each([
    ['null feature', { avg_session_minutes: null }, 'INVALID_FEATURE', 'features.avg_session_minutes is null'],
    ['NaN', { monthly_charges: NaN }, 'INVALID_FEATURE', 'features.monthly_charges is NaN'],
    ['+Inf', { data_usage_gb: Infinity }, 'INVALID_FEATURE', 'features.data_usage_gb is Infinity'],
    ['-Inf', { total_charges: -Infinity }, 'INVALID_FEATURE', 'features.total_charges is -Infinity'],
    ['float32 overflow', { discount_pct: 1e39 }, 'INVALID_FEATURE', 'features.discount_pct = 1e+39 overflows float32'],
    ['first bad field in manifest order', { nps_score: null, monthly_charges: NaN }, 'INVALID_FEATURE', 'features.monthly_charges is NaN'],
  ])('%s: the same error as the generic path', async (_, features, code, message) => {
    const h = await harness(churnReader, churnManifest, churnReader);
    const value = framed(body(features));
    expect(h.fastOnly(value)).toBeUndefined();
    expect(h.combined(value)).toEqual({ ok: false, code, message });
  });

  it('the first bad field is in manifest order, not writer order', async () => {
    const reversed = evolve(churnReader, (_, feat) => feat.reverse());
    const h = await harness(churnReader, churnManifest, reversed);
    const value = framed(avro.Type.forSchema(reversed as unknown as avro.Schema).toBuffer({ ...valid, features: { ...valid.features, nps_score: null, avg_session_minutes: null } }));
    expect(h.fastOnly(value)).toBeUndefined();
    expect(h.combined(value)).toEqual({ ok: false, code: 'INVALID_FEATURE', message: 'features.avg_session_minutes is null' });
  });

  it.each([
    ['truncated body', (b: Buffer) => b.subarray(0, b.length - 3)],
    ['trailing bytes', (b: Buffer) => Buffer.concat([b, Buffer.from([0, 1])])],
    ['empty body', () => Buffer.alloc(0)],
    ['garbage', () => Buffer.from('this is not avro at all, not at all')],
    ['negative string length', (b: Buffer) => Buffer.concat([Buffer.from([0x03]), b.subarray(1)])],
    ['bad union index', (b: Buffer) => Buffer.concat([b.subarray(0, b.length - 2), Buffer.from([0x04, 0x10])])],
    ['varint running off the end', (b: Buffer) => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([0xff, 0xff])])],
    ['event_time beyond 2^53', (b: Buffer) => Buffer.concat([b.subarray(0, 6), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), b.subarray(12)])],
  ])('%s: MALFORMED_PAYLOAD exactly as the generic path', async (_, edit) => {
    const h = await harness(churnReader, churnManifest, churnReader);
    const value = framed(edit(body()));
    expect(h.fastOnly(value)).toBeUndefined();
    const out = h.combined(value);
    expect(out.ok).toBe(false);
    expect(out).toEqual(h.generic(value));
    if (!out.ok) expect(out.code).toBe('MALFORMED_PAYLOAD');
  });

  it('a manifest feature the writer lacks with a null reader default: no fast decoder, every record INVALID_FEATURE', async () => {
    const writer = evolve(churnReader, (_, feat) => remove(feat, 'nps_score'));
    const h = await harness(churnReader, churnManifest, writer);
    expect(h.decoder.writerType(1)).toBeDefined();
    expect(h.fast).toBeUndefined();
    const value = framed(avro.Type.forSchema(writer as unknown as avro.Schema).toBuffer(valid));
    expect(h.combined(value)).toEqual({ ok: false, code: 'INVALID_FEATURE', message: 'features.nps_score is null' });
  });

  it.each([
    ['an enum field', (env: Field[]) => env.push({ name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['A', 'B'] } })],
    ['an array field', (env: Field[]) => env.push({ name: 'tags', type: { type: 'array', items: 'string' } })],
    ['a map field', (env: Field[]) => env.push({ name: 'attrs', type: { type: 'map', values: 'string' } })],
    ['a bytes field', (env: Field[]) => env.push({ name: 'raw', type: 'bytes' })],
    ['a fixed field', (env: Field[]) => env.push({ name: 'hash', type: { type: 'fixed', name: 'Hash', size: 4 } })],
    ['another nested record', (env: Field[]) => env.push({ name: 'meta', type: { type: 'record', name: 'Meta', fields: [{ name: 'a', type: 'int' }] } })],
    ['a three-branch union', (env: Field[]) => env.push({ name: 'u', type: ['null', 'int', 'string'] })],
    ['an alias', (env: Field[]) => env.push({ name: 'aliased', type: 'int', aliases: ['old'] } as Field)],
  ])('a writer schema with %s: no fast decoder, the generic path still decodes it', async (_, edit) => {
    const writer = evolve(churnReader, (env) => edit(env));
    const h = await harness(churnReader, churnManifest, writer);
    expect(h.decoder.writerType(1)).toBeDefined();
    expect(h.fast).toBeUndefined();
    const rnd = rng(7);
    const wt = avro.Type.forSchema(writer as unknown as avro.Schema);
    const value = framed(wt.toBuffer({ ...(randomValue(evolve(churnReader, () => undefined), rnd, 0, '') as object), ...wt.random() as object, event_id: 'x' }));
    expect(h.combined(value)).toEqual(h.generic(value));
  });

  it('an incompatible writer schema: no writer type, no fast decoder (the generic decoder says INCOMPATIBLE_SCHEMA)', async () => {
    const writer = evolve(churnReader, (_, feat) => remove(feat, 'tenure_months'));
    const h = await harness(churnReader, churnManifest, writer);
    expect(h.decoder.writerType(1)).toBeUndefined();
    expect(h.fast).toBeUndefined();
    const out = h.combined(framed(Buffer.from([2, 0x61])));
    expect(out.ok === false && out.code).toBe('INCOMPATIBLE_SCHEMA');
  });

  it('the vectorizer exposes the manifest column order the fast decoder is built with', () => {
    const v = new Vectorizer(mlpManifest, avro.Type.forSchema(wideReader as unknown as avro.Schema));
    expect(v.features).toEqual(mlpManifest.features);
  });
});
