/**
 * The model repository (`MODEL_REPOSITORY=<dir>`): one folder per version, named by its semantic
 * version, `<dir>/<version>/` holding `model.onnx`, `manifest.json` and, when that version reads
 * an event shape of its own, its reader schema (the manifest's `eventSchema`, relative to the
 * folder). Versions are immutable: a new model is a new folder, so a rollback is only a
 * deployment pointing back (deployment.ts), never a file restored.
 *
 * Scanning only lists folders; a version is read (manifest, schema, hash) when a deployment
 * references it, so a broken folder is refused then, with its reason, instead of stopping the
 * whole repository. The scan is repeated for every deployment change: a version copied into a
 * mounted volume is seen without a restart.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ScorerError } from '../errors.js';
import { type LoadedModel, loadModel } from './manifest.js';

export const MODEL_FILE = 'model.onnx';
export const MANIFEST_FILE = 'manifest.json';

export interface RepositoryScan {
  dir: string;
  /** Version folders, lowest to highest precedence (semver). */
  versions: string[];
  /** Other entries (not dot-files) and why they are not versions, for `models check`. */
  ignored: { name: string; reason: string }[];
}

interface SemVer {
  core: [number, number, number];
  /** Pre-release identifiers; empty for a release. */
  pre: (number | string)[];
}

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$/;

/** A semantic version without build metadata (it would not order two folders), or undefined. */
export function parseVersion(text: string): SemVer | undefined {
  const m = SEMVER.exec(text);
  if (m === null) return undefined;
  const pre = m[4] === undefined ? [] : m[4].split('.').map((id) => (/^\d+$/.test(id) ? Number(id) : id));
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre };
}

/** semver.org precedence (section 11): negative when a < b. Both must parse. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (x === undefined || y === undefined) throw new RangeError(`compareVersions: not a version: ${x === undefined ? a : b}`);
  for (let i = 0; i < 3; i++) {
    const d = (x.core[i] as number) - (y.core[i] as number);
    if (d !== 0) return d;
  }
  // A release ranks above its pre-releases; pre-releases compare identifier by identifier.
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i] as number | string;
    const q = y.pre[i] as number | string;
    if (p === q) continue;
    if (typeof p === 'number' && typeof q === 'number') return p - q;
    if (typeof p === 'number') return -1; // numeric identifiers rank below alphanumeric ones
    if (typeof q === 'number') return 1;
    return p < q ? -1 : 1;
  }
  return x.pre.length - y.pre.length;
}

/** Lists the version folders of `dir`; throws CONFIG_INVALID if it is not a directory or has none. */
export function scanRepository(dir: string): RepositoryScan {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    entries = readdirSync(dir);
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `MODEL_REPOSITORY: expected a directory of version folders, got ${dir} (${(err as Error).message})`);
  }
  const versions: string[] = [];
  const ignored: RepositoryScan['ignored'] = [];
  for (const name of entries.sort()) {
    if (name.startsWith('.')) continue; // .git, a ConfigMap-style ..data, editor files
    let isDir = false;
    try {
      isDir = statSync(join(dir, name)).isDirectory(); // follows symlinks: a version may be one
    } catch {
      // a dangling symlink: not a version
    }
    if (!isDir) ignored.push({ name, reason: 'not a directory' });
    else if (parseVersion(name) === undefined) ignored.push({ name, reason: 'not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE], no +BUILD)' });
    else versions.push(name);
  }
  if (versions.length === 0) throw new ScorerError('CONFIG_INVALID', `MODEL_REPOSITORY: ${dir} has no version folder (expected <dir>/<version>/${MODEL_FILE}, e.g. ${join(dir, '1.0.0', MODEL_FILE)})`);
  return { dir, versions: versions.sort(compareVersions), ignored };
}

/**
 * The version that serves when no deployment file says otherwise: the highest release, so a
 * `2.0.0-rc.1` folder is never picked by default; the highest pre-release if there is no release.
 */
export function defaultVersion(scan: RepositoryScan): string {
  const releases = scan.versions.filter((v) => parseVersion(v)?.pre.length === 0);
  const pick = (releases.length > 0 ? releases : scan.versions).at(-1);
  if (pick === undefined) throw new RangeError('defaultVersion: empty scan');
  return pick;
}

/**
 * Reads one version: its manifest (whose `version` must be the folder's name, since scored
 * events and metrics carry it), its reader schema and the model's hash. Throws CONFIG_INVALID
 * naming the file and field.
 */
export function loadVersion(dir: string, version: string): LoadedModel {
  const folder = join(dir, version);
  const model = loadModel(join(folder, MODEL_FILE), { manifestPath: join(folder, MANIFEST_FILE), source: 'MODEL_REPOSITORY' });
  if (model.manifest.version !== version) {
    throw new ScorerError('CONFIG_INVALID', `MODEL_REPOSITORY: manifest ${model.manifestPath}: version: expected "${version}" (the folder's name), got "${model.manifest.version}"`);
  }
  return model;
}
