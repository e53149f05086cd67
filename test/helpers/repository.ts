/**
 * Model repositories for tests: a temp dir with versions copied from models/churn/ (the real
 * 1.0.0 and 1.1.0) and from test/fixtures/rollout/ (versions that must be refused or rolled
 * back), removed when the test file ends.
 */
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath, tempDir } from './fixtures.js';

/** Where a version of that name comes from. */
export function versionSource(version: string): string {
  const real = repoPath(`models/churn/${version}`);
  if (existsSync(real)) return real;
  const fixture = repoPath(`test/fixtures/rollout/${version}`);
  if (existsSync(fixture)) return fixture;
  throw new Error(`no model version ${version} in models/churn/ or test/fixtures/rollout/`);
}

/** Copies `version` (from versionSource) into the repository `dir`. */
export function addVersion(dir: string, version: string): string {
  const to = join(dir, version);
  cpSync(versionSource(version), to, { recursive: true });
  return to;
}

/** A fresh repository holding these versions; deleted after the test file. */
export function tempRepository(versions: readonly string[] = ['1.0.0', '1.1.0']): string {
  const dir = tempDir('scorer-repo-');
  for (const v of versions) addVersion(dir, v);
  return dir;
}
