// The model manifest: validation of the shipped manifests and of broken variants, and loadModel on real files.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, manifestPathFor, validateManifest } from '../../../src/model/manifest.js';
import { thrown } from '../../helpers/fixtures.js';

const repoFile = (rel: string): string => fileURLToPath(new URL(`../../../${rel}`, import.meta.url));
const MODELS = repoFile('models');
const CHURN_ONNX = join(MODELS, 'churn.onnx');
const CHURN_MANIFEST = join(MODELS, 'churn.manifest.json');
const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
/** A fresh deep copy of the churn manifest to break one field of. */
const churn = (): Record<string, unknown> => readJson(CHURN_MANIFEST);


describe('validateManifest', () => {
  it('accepts models/churn.manifest.json', () => {
    const m = validateManifest(churn(), CHURN_MANIFEST);
    expect(m.name).toBe('churn');
    expect(m.input).toEqual({ name: 'features', dtype: 'float32', width: 14 });
    expect(m.features).toHaveLength(14);
    expect(m.features[0]).toBe('tenure_months');
    expect(m.features[13]).toBe('nps_score');
    expect(m.score).toMatchObject({ output: 'probabilities', column: 1 });
    expect(m.threshold).toBe(0.5);
    expect(m.labels).toEqual({ below: 'stay', atOrAbove: 'churn' });
  });

  it('accepts models/mlp.manifest.json', () => {
    const m = validateManifest(readJson(join(MODELS, 'mlp.manifest.json')), 'models/mlp.manifest.json');
    expect(m.name).toBe('mlp');
    expect(m.input.width).toBe(256);
    expect(m.features).toHaveLength(256);
  });

  it('accepts a manifest without threshold and labels', () => {
    const raw = churn();
    delete raw.threshold;
    delete raw.labels;
    expect(validateManifest(raw, 'x.manifest.json').threshold).toBeUndefined();
  });

  const broken: [string, (m: Record<string, unknown>) => void, RegExp][] = [
    ['missing name', (m) => delete m.name, /name: expected a non-empty string, got undefined/],
    ['empty name', (m) => (m.name = ''), /name: expected a non-empty string, got ""/],
    ['missing version', (m) => delete m.version, /version: expected a non-empty string/],
    ['input dtype not float32', (m) => ((m.input as Record<string, unknown>).dtype = 'float64'), /input: expected/],
    ['input width not a positive integer', (m) => ((m.input as Record<string, unknown>).width = 0), /input: expected/],
    ['empty features', (m) => (m.features = []), /features: expected a non-empty array/],
    ['a feature name that is not a string', (m) => ((m.features as unknown[])[3] = 7), /features: expected a non-empty array/],
    ['width mismatch', (m) => (m.features as string[]).pop(), /features: 13 names but input\.width is 14/],
    ['duplicate feature', (m) => ((m.features as string[])[13] = 'tenure_months'), /features: names must be unique/],
    ['no outputs', (m) => (m.outputs = {}), /outputs: expected an object/],
    ['an output with a bad dtype', (m) => ((m.outputs as Record<string, Record<string, unknown>>).label!.dtype = 'string'), /outputs\.label: expected/],
    ['negative score column', (m) => ((m.score as Record<string, unknown>).column = -1), /score: expected/],
    ['score.output not float32', (m) => ((m.score as Record<string, unknown>).output = 'label'), /score\.output: "label" must name a float32 entry/],
    ['score.output naming no output', (m) => ((m.score as Record<string, unknown>).output = 'logits'), /score\.output: "logits"/],
    ['non-finite threshold', (m) => (m.threshold = 'high'), /threshold: expected a finite number/],
    ['labels missing atOrAbove', (m) => (m.labels = { below: 'stay' }), /labels: expected \{ below, atOrAbove \}/],
    ['threshold without labels', (m) => delete m.labels, /threshold and labels go together/],
    ['labels without threshold', (m) => delete m.threshold, /threshold and labels go together/],
  ];

  it.each([null, [], 'churn'])('rejects %j: not an object', (raw) => {
    const err = thrown(() => validateManifest(raw, 'models/x.manifest.json'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe('MODEL_PATH: manifest models/x.manifest.json: expected a JSON object');
  });

  it.each(broken)('rejects %s with CONFIG_INVALID naming the field', (_what, breakIt, message) => {
    const raw = churn();
    breakIt(raw);
    const err = thrown(() => validateManifest(raw, 'models/x.manifest.json'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(message);
    expect(err.message).toContain('MODEL_PATH: manifest models/x.manifest.json: ');
  });
});

describe('manifestPathFor', () => {
  it('puts <name>.manifest.json beside <name>.onnx', () => {
    expect(manifestPathFor('models/churn.onnx')).toBe(join('models', 'churn.manifest.json'));
    expect(manifestPathFor('/srv/models/v2/mlp.onnx')).toBe('/srv/models/v2/mlp.manifest.json');
    expect(manifestPathFor('churn.onnx')).toBe('churn.manifest.json');
  });

  it('drops the .onnx extension whatever its case, and only at the end', () => {
    expect(manifestPathFor('/m/Churn.ONNX')).toBe('/m/Churn.manifest.json');
    expect(manifestPathFor('/m/a.onnx.v2.onnx')).toBe('/m/a.onnx.v2.manifest.json');
    expect(manifestPathFor('/m/model')).toBe('/m/model.manifest.json');
  });
});

describe('loadModel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scorer-manifest-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the churn model with its manifest and the sha256 of the .onnx file', () => {
    const loaded = loadModel(CHURN_ONNX);
    expect(loaded.modelPath).toBe(CHURN_ONNX);
    expect(loaded.manifestPath).toBe(CHURN_MANIFEST);
    expect(loaded.manifest).toEqual(churn());
    expect(loaded.sha256).toBe(createHash('sha256').update(readFileSync(CHURN_ONNX)).digest('hex'));
    expect(loaded.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects a missing model file', () => {
    const path = join(dir, 'nope.onnx');
    const err = thrown(() => loadModel(path));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(`MODEL_PATH: no file at ${path}`);
  });

  it('rejects a model without a manifest beside it', () => {
    const path = join(dir, 'lonely.onnx');
    copyFileSync(CHURN_ONNX, path);
    const err = thrown(() => loadModel(path));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(`the manifest ${join(dir, 'lonely.manifest.json')} is missing`);
  });

  it('rejects a manifest that is not valid JSON', () => {
    const path = join(dir, 'garbled.onnx');
    copyFileSync(CHURN_ONNX, path);
    writeFileSync(join(dir, 'garbled.manifest.json'), '{ "name": "garbled", ');
    const err = thrown(() => loadModel(path));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(`manifest ${join(dir, 'garbled.manifest.json')} is not valid JSON`);
  });

  it('validates the manifest it reads', () => {
    const path = join(dir, 'narrow.onnx');
    copyFileSync(CHURN_ONNX, path);
    const raw = churn();
    (raw.input as Record<string, unknown>).width = 13;
    writeFileSync(join(dir, 'narrow.manifest.json'), JSON.stringify(raw));
    const err = thrown(() => loadModel(path));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('features: 14 names but input.width is 13');
  });

  it('hashes the file it was given, not the shipped model', () => {
    const path = join(dir, 'tiny.onnx');
    writeFileSync(path, 'not really a model');
    writeFileSync(join(dir, 'tiny.manifest.json'), JSON.stringify(churn()));
    expect(loadModel(path).sha256).toBe(createHash('sha256').update('not really a model').digest('hex'));
  });
});
