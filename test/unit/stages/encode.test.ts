// The encode stage with the real output schema (schemas/scored-event.avsc) and schema id 42.
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, schemaIdOf } from '../../../src/stages/decode/wire.js';
import { Encoder } from '../../../src/stages/encode.js';
import type { ScoredEvent, Source } from '../../../src/stages/encode.js';
import type { Manifest } from '../../../src/model/manifest.js';
import type { FeatureEvent } from '../../../src/stages/vectorize.js';
import { readRepoJson } from '../../helpers/fixtures.js';

const schema = readRepoJson<avro.Schema>('schemas/scored-event.avsc');
/** A framed scored event read back with the output schema (what a downstream consumer does). */
const decodeScored = (buf: Buffer): ScoredEvent => avro.Type.forSchema(schema).fromBuffer(buf.subarray(HEADER_BYTES)) as ScoredEvent;
const manifest = readRepoJson<Manifest>('models/churn.manifest.json');
const SCHEMA_ID = 42;

const event: FeatureEvent = { event_id: 'e-7', event_time: 1_700_000_000_123, entity_id: 'cust-9', features: { tenure_months: 3 } };
const source: Source = { topic: 'features', partition: 3, offset: '1234567890123' };
const outcome = (score: number) => ({ ok: true as const, score, scores: { stay: 1 - score, churn: score } });

describe('Encoder', () => {
  const encoder = new Encoder({ schema, schemaId: SCHEMA_ID, manifest });

  it('builds the scored event from the input event, its source and the outcome', () => {
    const scored = encoder.scoredEvent(event, source, outcome(0.75), 1_700_000_000_500);
    expect(scored).toEqual<ScoredEvent>({
      event_id: 'e-7',
      entity_id: 'cust-9',
      source: { topic: 'features', partition: 3, offset: 1_234_567_890_123 },
      event_time: 1_700_000_000_123,
      scored_time: 1_700_000_000_500,
      model: { name: 'churn', version: '1.0.0' },
      score: 0.75,
      scores: { stay: 0.25, churn: 0.75 },
      label: 'churn',
    });
  });

  it('turns the string offset into a number', () => {
    const scored = encoder.scoredEvent(event, { ...source, offset: '0' }, outcome(0.1), 0);
    expect(scored.source.offset).toBe(0);
    expect(typeof encoder.scoredEvent(event, source, outcome(0.1), 0).source.offset).toBe('number');
  });

  it.each([
    [0.5, 'churn'],
    [0.9999, 'churn'],
    [1, 'churn'],
    [0.49999, 'stay'],
    [0, 'stay'],
  ])('labels score %f as %s (threshold 0.5, at or above -> atOrAbove)', (score, label) => {
    expect(encoder.scoredEvent(event, source, outcome(score), 0).label).toBe(label);
  });

  it('gives a null label when the manifest has no threshold', () => {
    const { threshold: _t, labels: _l, ...unlabelled } = manifest;
    const e = new Encoder({ schema, schemaId: SCHEMA_ID, manifest: unlabelled });
    const scored = e.scoredEvent(event, source, outcome(0.99), 0);
    expect(scored.label).toBeNull();
    expect(decodeScored(e.encode(scored)).label).toBeNull();
  });

  it('uses the threshold of its manifest', () => {
    const strict = new Encoder({ schema, schemaId: SCHEMA_ID, manifest: { ...manifest, threshold: 0.8, labels: { below: 'keep', atOrAbove: 'call' } } });
    expect(strict.scoredEvent(event, source, outcome(0.79), 0).label).toBe('keep');
    expect(strict.scoredEvent(event, source, outcome(0.8), 0).label).toBe('call');
  });

  it('frames the value with magic byte 0 and schema id 42 big-endian', () => {
    const buf = encoder.encode(encoder.scoredEvent(event, source, outcome(0.3), 1));
    expect(Array.from(buf.subarray(0, 5))).toEqual([0, 0, 0, 0, 42]);
    expect(schemaIdOf(buf)).toBe(42);
  });

  it('writes a multi-byte schema id big-endian', () => {
    const e = new Encoder({ schema, schemaId: 0x01020304, manifest });
    const buf = e.encode(e.scoredEvent(event, source, outcome(0.3), 1));
    expect(Array.from(buf.subarray(0, 5))).toEqual([0, 1, 2, 3, 4]);
  });

  it('the body after the header is plain Avro of the scored-event schema', () => {
    const scored = encoder.scoredEvent(event, source, outcome(0.3), 1);
    const buf = encoder.encode(scored);
    const type = avro.Type.forSchema(schema);
    expect(buf.subarray(5).equals(type.toBuffer(scored))).toBe(true);
    expect(type.fromBuffer(buf.subarray(5))).toEqual(scored);
  });

  it('round-trips decode(encode(x))', () => {
    const scored = encoder.scoredEvent(event, source, outcome(0.625), 1_700_000_000_999);
    const back = decodeScored(encoder.encode(scored));
    expect(back).toEqual(scored);
    expect(back.label).toBe('churn');
    expect(back.source.offset).toBe(1_234_567_890_123);
  });

  it('encodes each event independently (the shared header is not mutated)', () => {
    const a = encoder.encode(encoder.scoredEvent(event, source, outcome(0.1), 1));
    const b = encoder.encode(encoder.scoredEvent({ ...event, event_id: 'e-8' }, source, outcome(0.9), 2));
    a[1] = 0xff;
    expect(Array.from(b.subarray(0, 5))).toEqual([0, 0, 0, 0, 42]);
    expect(decodeScored(b).event_id).toBe('e-8');
  });

  it('keeps every value intact across slabs, values larger than a slab included', () => {
    const e = new Encoder({ schema, schemaId: SCHEMA_ID, manifest });
    const type = avro.Type.forSchema(schema);
    const events = Array.from({ length: 1_000 }, (_, i) => e.scoredEvent({ ...event, event_id: i % 400 === 7 ? 'x'.repeat(70_000 + i) : `e-${i}` }, source, outcome(i / 1_000), i));
    const values = events.map((scored) => e.encode(scored));
    values.forEach((buf, i) => expect(buf.equals(Buffer.concat([Buffer.from([0, 0, 0, 0, SCHEMA_ID]), type.toBuffer(events[i])]))).toBe(true));
  });

  it('refuses a value the schema cannot hold', () => {
    const scored = encoder.scoredEvent(event, source, outcome(0.5), 1);
    expect(() => encoder.encode({ ...scored, score: 'high' as unknown as number })).toThrow();
  });
});
