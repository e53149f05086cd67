// The vectorize stage with the real churn manifest and the real reader schema (schemas/feature-event.avsc).
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/model/manifest.js';
import { Vectorizer } from '../../../src/stages/vectorize.js';
import type { FeatureEvent } from '../../../src/stages/vectorize.js';
import { CHURN_FEATURES, churnEvent, thrown, readRepoJson } from '../../helpers/fixtures.js';

const manifest = readRepoJson<Manifest>('models/churn.manifest.json');
const schema = readRepoJson<avro.schema.RecordType>('schemas/feature-event.avsc');
const readerType = avro.Type.forSchema(schema);

const ROW = [24, 79.5, 1908, 12, 3, 1, 2, 1, 41, 12.25, 5, 7.75, 10, 8];



/** The reader schema with the features record edited by `edit`. */
function schemaWith(edit: (fields: { name: string; type: unknown; default?: unknown }[]) => void): avro.Type {
  const copy = JSON.parse(JSON.stringify(schema)) as { fields: { name: string; type: { fields: { name: string; type: unknown; default?: unknown }[] } }[] };
  const features = copy.fields.find((f) => f.name === 'features');
  if (features === undefined) throw new Error('fixture: no features field');
  edit(features.type.fields);
  return avro.Type.forSchema(copy as unknown as avro.Schema);
}

describe('Vectorizer', () => {
  const v = new Vectorizer(manifest, readerType);

  it('has the width of the manifest', () => {
    expect(v.width).toBe(14);
  });

  it('writes the 14 features in manifest order, booleans as 1/0', () => {
    const out = new Float32Array(14);
    v.write(churnEvent(), out, 0);
    expect(Array.from(out)).toEqual(ROW);
    v.write(churnEvent({ has_autopay: false }), out, 0);
    expect(out[5]).toBe(0);
  });

  it('follows the manifest order, not the order of the event object', () => {
    const reversed = Object.fromEntries(Object.entries(CHURN_FEATURES).reverse());
    const out = new Float32Array(14);
    v.write({ ...churnEvent(), features: reversed }, out, 0);
    expect(Array.from(out)).toEqual(ROW);
  });

  it('writes row r at offset r * width and leaves the other rows alone', () => {
    const out = new Float32Array(3 * 14).fill(-7);
    v.write(churnEvent(), out, 2);
    expect(Array.from(out.subarray(0, 28))).toEqual(new Array(28).fill(-7));
    expect(Array.from(out.subarray(28, 42))).toEqual(ROW);
    v.write(churnEvent({ tenure_months: 99 }), out, 1);
    expect(out[14]).toBe(99);
    expect(Array.from(out.subarray(28, 42))).toEqual(ROW);
  });

  it('writes a value decoded with the reader schema', () => {
    const decoded = readerType.fromBuffer(readerType.toBuffer(churnEvent())) as FeatureEvent;
    const out = new Float32Array(14);
    v.write(decoded, out, 0);
    expect(Array.from(out)).toEqual(ROW);
  });

  it('ignores fields the model does not read', () => {
    const out = new Float32Array(14);
    v.write(churnEvent({ shoe_size: 'large' }), out, 0);
    expect(Array.from(out)).toEqual(ROW);
  });

  it('stores float32, rounding values float32 cannot hold exactly', () => {
    const out = new Float32Array(14);
    v.write(churnEvent({ monthly_charges: 0.1 }), out, 0);
    expect(out[1]).toBe(Math.fround(0.1));
  });

  it('accepts zero, negatives and the float32 extremes', () => {
    const out = new Float32Array(14);
    v.write(churnEvent({ tenure_months: 0, monthly_charges: -3.5, total_charges: 3.4028234663852886e38, data_usage_gb: -3.4028234663852886e38 }), out, 0);
    expect(out[0]).toBe(0);
    expect(out[1]).toBe(-3.5);
    expect(out[2]).toBe(3.4028234663852886e38);
    expect(out[11]).toBe(-3.4028234663852886e38);
  });

  const bad: [string, string, unknown, RegExp][] = [
    ['null', 'avg_session_minutes', null, /^features\.avg_session_minutes is null$/],
    ['missing', 'nps_score', undefined, /^features\.nps_score is missing$/],
    ['NaN', 'monthly_charges', Number.NaN, /^features\.monthly_charges is NaN$/],
    ['+Infinity', 'total_charges', Number.POSITIVE_INFINITY, /^features\.total_charges is Infinity$/],
    ['-Infinity', 'data_usage_gb', Number.NEGATIVE_INFINITY, /^features\.data_usage_gb is -Infinity$/],
    ['a string', 'tenure_months', '24', /^features\.tenure_months has type string, expected a number$/],
    ['an object', 'discount_pct', { double: 10 }, /^features\.discount_pct has type object/],
    ['beyond float32 range', 'total_charges', 1e39, /^features\.total_charges = 1e\+39 overflows float32$/],
    ['beyond float32 range, negative', 'monthly_charges', -1e300, /^features\.monthly_charges = -1e\+300 overflows float32$/],
  ];

  it.each(bad)('rejects %s (%s) with INVALID_FEATURE naming the field', (_what, field, value, message) => {
    const features = { ...CHURN_FEATURES, [field]: value };
    if (value === undefined) delete features[field];
    const err = thrown(() => v.write({ ...churnEvent(), features }, new Float32Array(14), 0));
    expect(err.code).toBe('INVALID_FEATURE');
    expect(err.kind).toBe('permanent');
    expect(err.stage).toBe('vectorize');
    expect(err.message).toMatch(message);
  });

  it('names the first bad field in manifest order', () => {
    const err = thrown(() => v.write(churnEvent({ nps_score: null, tenure_months: Number.NaN }), new Float32Array(14), 0));
    expect(err.message).toBe('features.tenure_months is NaN');
  });

  it('rejects a feature that is present as undefined like a missing one', () => {
    const err = thrown(() => v.write(churnEvent({ sessions_30d: undefined }), new Float32Array(14), 0));
    expect(err.message).toBe('features.sessions_30d is missing');
  });
});

describe('Vectorizer constructor', () => {
  it('accepts every numeric, boolean and nullable-numeric type', () => {
    const type = schemaWith((fields) => {
      const types: unknown[] = ['int', 'long', 'float', 'double', 'boolean', ['null', 'double'], { type: 'long', logicalType: 'timestamp-millis' }];
      fields.forEach((f, i) => {
        f.type = types[i % types.length];
        delete f.default;
      });
    });
    expect(() => new Vectorizer(manifest, type)).not.toThrow();
  });

  it('rejects a manifest naming a field the schema does not have (CONFIG_INVALID)', () => {
    const m: Manifest = { ...manifest, features: [...manifest.features.slice(0, 13), 'lifetime_value'] };
    const err = thrown(() => new Vectorizer(m, readerType));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe('MODEL_PATH: model churn reads features.lifetime_value, which the reader schema does not have');
  });

  it.each<[string, unknown]>([
    ['string', 'string'],
    ['nullable string', ['null', 'string']],
    ['bytes', 'bytes'],
    ['enum', { type: 'enum', name: 'Plan', symbols: ['A', 'B'] }],
    ['array', { type: 'array', items: 'double' }],
  ])('rejects a %s feature type (CONFIG_INVALID)', (_what, fieldType) => {
    const type = schemaWith((fields) => {
      const f = fields.find((x) => x.name === 'contract_months');
      if (f === undefined) throw new Error('fixture: no contract_months');
      f.type = fieldType;
    });
    const err = thrown(() => new Vectorizer(manifest, type));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/^MODEL_PATH: features\.contract_months has type .*; only numbers and booleans can be model inputs$/);
  });

  it("rejects a reader schema without a 'features' record", () => {
    const type = avro.Type.forSchema({ type: 'record', name: 'Other', fields: [{ name: 'event_id', type: 'string' }] });
    const err = thrown(() => new Vectorizer(manifest, type));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/no 'features' record/);
  });
});
