// The committed reference models (models/*.onnx), run with onnxruntime-node, must agree with
// the sklearn models they were exported from: test/fixtures/<name>-expected.json holds
// float32-exact input rows and sklearn's predict_proba[:, 1] for them (models/train.py).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import * as ort from 'onnxruntime-node';

interface Manifest {
  name: string;
  version: string;
  description: string;
  framework: string;
  input: { name: string; dtype: 'float32'; width: number };
  features: string[];
  outputs: {
    probabilities: { name: string; dtype: 'float32'; shape: [number, number]; classes: [string, string] };
    label: { name: string; dtype: 'int64' };
  };
  score: { output: 'probabilities'; column: number; meaning: string };
  threshold: number;
  labels: { below: string; atOrAbove: string };
  eventSchema: string;
  training: { rows: number; seed: number; holdout_auc: number };
}

interface Fixture {
  model: string;
  tolerance: number;
  threshold: number;
  features: string[];
  rows: number[][];
  sklearnProbability: number[];
  onnxruntimeProbability: number[];
  onnxruntimeLabel: number[];
}

const TOLERANCE = 1e-5;

const MANIFEST_KEYS = [
  'name',
  'version',
  'description',
  'framework',
  'input',
  'features',
  'outputs',
  'score',
  'threshold',
  'labels',
  'eventSchema',
  'training',
].sort();

function path(rel: string): string {
  return fileURLToPath(new URL(rel, import.meta.url));
}

function readJson<T>(rel: string): T {
  return JSON.parse(readFileSync(path(rel), 'utf8')) as T;
}

interface AvroField {
  name: string;
  type: unknown;
}

/** Field names of the `features` record of an event schema, in declaration order. */
function schemaFeatureNames(schemaRel: string): string[] {
  const schema = readJson<{ fields: AvroField[] }>(`../../../${schemaRel}`);
  const features = schema.fields.find((f) => f.name === 'features');
  const record = features?.type as { type: string; fields: AvroField[] } | undefined;
  expect(record?.type).toBe('record');
  return (record?.fields ?? []).map((f) => f.name);
}

const cases = [
  { name: 'churn', width: 14, classes: ['stay', 'churn'], eventSchema: 'schemas/feature-event.avsc' },
  { name: 'mlp', width: 256, classes: ['negative', 'positive'], eventSchema: 'schemas/wide-feature-event.avsc' },
] as const;

describe.each(cases)('reference model $name', ({ name, width, classes, eventSchema }) => {
  const manifest = readJson<Manifest>(`../../../models/${name}.manifest.json`);
  const fixture = readJson<Fixture>(`../../fixtures/${name}-expected.json`);

  it('has a manifest of the agreed shape', () => {
    expect(Object.keys(manifest).sort()).toEqual(MANIFEST_KEYS);
    expect(manifest.name).toBe(name);
    expect(manifest.input).toEqual({ name: 'features', dtype: 'float32', width });
    expect(manifest.features).toHaveLength(width);
    expect(new Set(manifest.features).size).toBe(width);
    expect(manifest.outputs).toEqual({
      probabilities: { name: 'probabilities', dtype: 'float32', shape: [-1, 2], classes },
      label: { name: 'label', dtype: 'int64' },
    });
    expect(manifest.score.output).toBe('probabilities');
    expect(manifest.score.column).toBe(1);
    expect(manifest.threshold).toBe(0.5);
    expect(manifest.labels).toEqual({ below: classes[0], atOrAbove: classes[1] });
    expect(manifest.eventSchema).toBe(eventSchema);
    expect(manifest.training.holdout_auc).toBeGreaterThan(0.7);
  });

  it('lists the features of its event schema in input-column order', () => {
    expect(manifest.features).toEqual(schemaFeatureNames(manifest.eventSchema));
    expect(fixture.features).toEqual(manifest.features);
  });

  it('runs in onnxruntime-node and matches sklearn within 1e-5', async () => {
    const session = await ort.InferenceSession.create(path(`../../../models/${name}.onnx`));
    try {
      expect(session.inputNames).toEqual([manifest.input.name]);
      expect([...session.outputNames].sort()).toEqual(
        [manifest.outputs.label.name, manifest.outputs.probabilities.name].sort(),
      );

      const n = fixture.rows.length;
      expect(n).toBeGreaterThan(0);
      expect(fixture.sklearnProbability).toHaveLength(n);
      const data = new Float32Array(n * width);
      fixture.rows.forEach((row, r) => {
        expect(row).toHaveLength(width);
        // Fixture values are float32-exact, so the tensor holds exactly what sklearn saw.
        row.forEach((v) => expect(Math.fround(v)).toBe(v));
        data.set(row, r * width);
      });
      const feeds = { [manifest.input.name]: new ort.Tensor('float32', data, [n, width]) };
      const out = await session.run(feeds);

      const probs = out[manifest.outputs.probabilities.name];
      const labels = out[manifest.outputs.label.name];
      expect(probs?.type).toBe('float32');
      expect(probs?.dims).toEqual([n, 2]);
      expect(labels?.type).toBe('int64');
      expect(labels?.dims).toEqual([n]);
      const p = probs?.data as Float32Array;
      const l = labels?.data as BigInt64Array;

      for (let r = 0; r < n; r++) {
        const p0 = p[2 * r] ?? Number.NaN;
        const p1 = p[2 * r + manifest.score.column] ?? Number.NaN;
        const expected = fixture.sklearnProbability[r] ?? Number.NaN;
        expect(Math.abs(p1 - expected), `row ${r}: p=${p1} sklearn=${expected}`).toBeLessThanOrEqual(TOLERANCE);
        expect(Math.abs(p0 + p1 - 1), `row ${r}: rows sum to 1`).toBeLessThanOrEqual(TOLERANCE);
        expect(l[r], `row ${r}: label`).toBe(p1 >= manifest.threshold ? 1n : 0n);
      }
      // The fixture exercises both sides of the threshold.
      const above = fixture.sklearnProbability.filter((v) => v >= manifest.threshold).length;
      expect(above).toBeGreaterThan(0);
      expect(above).toBeLessThan(n);
    } finally {
      await session.release();
    }
  });
});
