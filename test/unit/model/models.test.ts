// The committed reference models (models/*.onnx and the versions of the models/churn/
// repository), run with onnxruntime-node, must agree with the sklearn models they were exported
// from: test/fixtures/<name>[-<version>]-expected.json holds float32-exact input rows and
// sklearn's predict_proba[:, 1] for them (models/train.py).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, vi } from 'vitest';
import * as ort from 'onnxruntime-node';

// Genuinely slow, not racy: each case opens an onnxruntime session (the mlp's is 14.7 MB),
// ~0.3 s for the file on a quiet machine, past 5 s with the machine loaded. 30 s for this file only.
vi.setConfig({ testTimeout: 30_000 });

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
  eventSchema?: string;
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

const churn = { name: 'churn', width: 14, classes: ['stay', 'churn'] } as const;
/** Repository versions name no eventSchema: they read the default reader schema. */
const repoVersion = (version: string, fixture: string) =>
  ({ ...churn, label: `churn ${version} (models/churn/)`, onnx: `churn/${version}/model.onnx`, manifest: `churn/${version}/manifest.json`, fixture, eventSchema: undefined }) as const;
const cases = [
  { ...churn, label: 'churn', onnx: 'churn.onnx', manifest: 'churn.manifest.json', fixture: 'churn-expected.json', eventSchema: 'schemas/feature-event.avsc' },
  repoVersion('1.0.0', 'churn-expected.json'),
  repoVersion('1.1.0', 'churn-1.1.0-expected.json'),
  { name: 'mlp', label: 'mlp', width: 256, classes: ['negative', 'positive'], onnx: 'mlp.onnx', manifest: 'mlp.manifest.json', fixture: 'mlp-expected.json', eventSchema: 'schemas/wide-feature-event.avsc' },
] as const;

describe.each(cases)('reference model $label', ({ name, width, classes, eventSchema, ...files }) => {
  const manifest = readJson<Manifest>(`../../../models/${files.manifest}`);
  const fixture = readJson<Fixture>(`../../fixtures/${files.fixture}`);

  it('has a manifest of the agreed shape', () => {
    expect(Object.keys(manifest).sort()).toEqual(MANIFEST_KEYS.filter((k) => eventSchema !== undefined || k !== 'eventSchema'));
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
    expect(manifest.features).toEqual(schemaFeatureNames(manifest.eventSchema ?? 'schemas/feature-event.avsc'));
    expect(fixture.features).toEqual(manifest.features);
  });

  it('runs in onnxruntime-node and matches sklearn within 1e-5', async () => {
    const session = await ort.InferenceSession.create(path(`../../../models/${files.onnx}`));
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

describe('the churn repository (models/churn/)', () => {
  const bytes = (rel: string): Buffer => readFileSync(path(`../../../models/${rel}`));

  it('1.0.0 is models/churn.onnx byte for byte, with the same manifest but for eventSchema', () => {
    expect(bytes('churn/1.0.0/model.onnx').equals(bytes('churn.onnx'))).toBe(true);
    const { eventSchema, ...rest } = readJson<Manifest>('../../../models/churn.manifest.json');
    expect(eventSchema).toBe('schemas/feature-event.avsc');
    expect(readJson<Manifest>('../../../models/churn/1.0.0/manifest.json')).toEqual(rest);
  });

  it('1.1.0 is a different model of the same input: its scores differ from 1.0.0 on the same rows', async () => {
    const v1 = readJson<Fixture>('../../fixtures/churn-expected.json');
    const v11 = readJson<Fixture>('../../fixtures/churn-1.1.0-expected.json');
    expect(bytes('churn/1.1.0/model.onnx').equals(bytes('churn.onnx'))).toBe(false);
    const session = await ort.InferenceSession.create(path('../../../models/churn/1.0.0/model.onnx'));
    try {
      const data = new Float32Array(v11.rows.flat());
      const out = await session.run({ features: new ort.Tensor('float32', data, [v11.rows.length, 14]) });
      const p10 = out.probabilities?.data as Float32Array;
      const meanDiff = v11.onnxruntimeProbability.reduce((sum, p, r) => sum + Math.abs(p - (p10[2 * r + 1] ?? Number.NaN)), 0) / v11.rows.length;
      expect(meanDiff).toBeGreaterThan(0.05);
    } finally {
      await session.release();
    }
    expect(v1.features).toEqual(v11.features);
  });
});
