// The model repository: semver ordering, the default version, version folders read with their
// manifest and reader schema, and errors that name the file and field.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_EVENT_SCHEMA, loadModel } from '../../../src/model/manifest.js';
import { compareVersions, defaultVersion, loadVersion, parseVersion, scanRepository } from '../../../src/model/repository.js';
import { repoPath, thrown } from '../../helpers/fixtures.js';
import { addVersion, tempRepository } from '../../helpers/repository.js';

const CHURN_REPO = repoPath('models/churn');
const writeJson = (path: string, value: unknown): void => writeFileSync(path, JSON.stringify(value, null, 2));
const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

describe('versions', () => {
  it('orders by semver precedence (semver.org section 11 example)', () => {
    const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.2.0-flaky', '1.9.0', '1.10.0', '2.0.0'];
    const shuffled = [...ordered].reverse();
    expect(shuffled.sort(compareVersions)).toEqual(ordered);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
  });

  it.each(['1.0', '01.0.0', '1.0.0+build.1', 'v1.0.0', '1.0.0-', '1.0.0-01', 'latest'])('%j is not a version folder name', (name) => {
    expect(parseVersion(name)).toBeUndefined();
  });
});

describe('scanRepository', () => {
  it('lists models/churn: 1.0.0 and 1.1.0, 1.1.0 serving by default', () => {
    const scan = scanRepository(CHURN_REPO);
    expect(scan.versions).toEqual(['1.0.0', '1.1.0']);
    expect(scan.ignored).toEqual([]);
    expect(defaultVersion(scan)).toBe('1.1.0');
  });

  it('orders numerically, passes over dot-entries, lists other entries with the reason, follows symlinks', () => {
    const dir = tempRepository(['1.0.0']);
    for (const v of ['1.9.0', '1.10.0', '2.0.0-rc.1', '.git', '..data', 'latest']) mkdirSync(join(dir, v));
    writeFileSync(join(dir, 'README.md'), 'versions');
    symlinkSync(join(dir, '1.0.0'), join(dir, '1.0.1'));
    const scan = scanRepository(dir);
    expect(scan.versions).toEqual(['1.0.0', '1.0.1', '1.9.0', '1.10.0', '2.0.0-rc.1']);
    expect(scan.ignored).toEqual([
      { name: 'README.md', reason: 'not a directory' },
      { name: 'latest', reason: 'not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE], no +BUILD)' },
    ]);
    // A pre-release is never the default while a release exists.
    expect(defaultVersion(scan)).toBe('1.10.0');
  });

  it('defaults to the highest pre-release when there is no release', () => {
    const dir = tempRepository(['1.2.0-flaky', '1.3.0-nowarmup']);
    expect(defaultVersion(scanRepository(dir))).toBe('1.3.0-nowarmup');
  });

  it('refuses a missing directory, a file, and a directory without versions', () => {
    const dir = tempRepository([]);
    expect(thrown(() => scanRepository(join(dir, 'nope'))).message).toMatch(/^MODEL_REPOSITORY: expected a directory of version folders, got .*nope \(ENOENT/);
    writeFileSync(join(dir, 'file'), '');
    expect(thrown(() => scanRepository(join(dir, 'file'))).message).toMatch(/got .*file \(not a directory\)$/);
    const err = thrown(() => scanRepository(dir));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(`MODEL_REPOSITORY: ${dir} has no version folder (expected <dir>/<version>/model.onnx, e.g. ${join(dir, '1.0.0', 'model.onnx')})`);
  });
});

describe('loadVersion', () => {
  it('reads models/churn/1.0.0: the churn.onnx model, reading the default reader schema', () => {
    const v = loadVersion(CHURN_REPO, '1.0.0');
    expect(v.sha256).toBe(loadModel(repoPath('models/churn.onnx')).sha256);
    expect(v.manifestPath).toBe(join(CHURN_REPO, '1.0.0', 'manifest.json'));
    expect(v.manifest.eventSchema).toBeUndefined();
    expect(v.eventSchemaPath).toBe(DEFAULT_EVENT_SCHEMA);
    expect(v.readerSchema).toEqual(readJson(DEFAULT_EVENT_SCHEMA));
    expect(loadVersion(CHURN_REPO, '1.1.0').sha256).not.toBe(v.sha256);
  });

  it('resolves eventSchema relative to the version folder, so a repository anywhere brings its schema', () => {
    const dir = tempRepository(['1.0.0']);
    const folder = addVersion(dir, '1.1.0');
    mkdirSync(join(folder, 'schemas'));
    const own = { ...readJson(DEFAULT_EVENT_SCHEMA), doc: 'the 1.1.0 copy' };
    writeJson(join(folder, 'schemas', 'event.avsc'), own);
    writeJson(join(folder, 'manifest.json'), { ...readJson(join(folder, 'manifest.json')), eventSchema: 'schemas/event.avsc' });
    const v = loadVersion(dir, '1.1.0');
    expect(v.eventSchemaPath).toBe(join(folder, 'schemas', 'event.avsc'));
    expect(v.readerSchema).toEqual(own);
  });

  it('names the file when the reader schema is missing or not JSON', () => {
    const dir = tempRepository([]);
    const folder = addVersion(dir, '1.0.0');
    const manifestPath = join(folder, 'manifest.json');
    writeJson(manifestPath, { ...readJson(manifestPath), eventSchema: 'event.avsc' });
    expect(thrown(() => loadVersion(dir, '1.0.0')).message).toBe(
      `MODEL_REPOSITORY: manifest ${manifestPath}: eventSchema: no file at ${join(folder, 'event.avsc')} (the path is relative to the manifest's folder)`,
    );
    writeFileSync(join(folder, 'event.avsc'), '{ "type": ');
    expect(thrown(() => loadVersion(dir, '1.0.0')).message).toMatch(`MODEL_REPOSITORY: manifest ${manifestPath}: the reader schema ${join(folder, 'event.avsc')} is not readable JSON: `);
  });

  it('refuses a manifest whose version is not the folder name, a missing model, a broken manifest', () => {
    const dir = tempRepository(['1.0.0']);
    const folder = addVersion(dir, '1.1.0');
    const manifestPath = join(folder, 'manifest.json');
    writeJson(manifestPath, { ...readJson(manifestPath), version: '1.0.0' });
    expect(thrown(() => loadVersion(dir, '1.1.0')).message).toBe(`MODEL_REPOSITORY: manifest ${manifestPath}: version: expected "1.1.0" (the folder's name), got "1.0.0"`);
    writeJson(manifestPath, { ...readJson(manifestPath), version: '1.1.0', features: [] });
    expect(thrown(() => loadVersion(dir, '1.1.0')).message).toBe(`MODEL_REPOSITORY: manifest ${manifestPath}: features: expected a non-empty array of field names`);
    mkdirSync(join(dir, '2.0.0'));
    expect(thrown(() => loadVersion(dir, '2.0.0')).message).toBe(`MODEL_REPOSITORY: no file at ${join(dir, '2.0.0', 'model.onnx')}`);
  });
});

describe('eventSchema of a MODEL_PATH manifest', () => {
  it('is relative to the manifest folder, with the package-root paths of older manifests still read', () => {
    // models/churn.manifest.json says "schemas/feature-event.avsc": not beside it, but from the package root.
    expect(loadModel(repoPath('models/churn.onnx')).eventSchemaPath).toBe(DEFAULT_EVENT_SCHEMA);
    const dir = tempRepository([]);
    const folder = addVersion(dir, '1.0.0');
    writeFileSync(join(folder, 'churn.onnx'), readFileSync(join(folder, 'model.onnx')));
    mkdirSync(join(folder, 'schemas'));
    writeJson(join(folder, 'schemas', 'feature-event.avsc'), { ...readJson(DEFAULT_EVENT_SCHEMA), doc: 'beside' });
    writeJson(join(folder, 'churn.manifest.json'), { ...readJson(join(folder, 'manifest.json')), eventSchema: 'schemas/feature-event.avsc' });
    // The same text now finds a file beside the manifest: that one wins.
    expect(loadModel(join(folder, 'churn.onnx')).eventSchemaPath).toBe(join(folder, 'schemas', 'feature-event.avsc'));
    writeJson(join(folder, 'churn.manifest.json'), { ...readJson(join(folder, 'manifest.json')), eventSchema: DEFAULT_EVENT_SCHEMA });
    expect(loadModel(join(folder, 'churn.onnx')).eventSchemaPath).toBe(DEFAULT_EVENT_SCHEMA);
    writeJson(join(folder, 'churn.manifest.json'), { ...readJson(join(folder, 'manifest.json')), eventSchema: 7 });
    expect(thrown(() => loadModel(join(folder, 'churn.onnx'))).message).toMatch(/^MODEL_PATH: manifest .*: eventSchema: expected a path, got 7$/);
  });
});
