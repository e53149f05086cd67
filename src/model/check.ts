/**
 * `kafka-onnx-scorer models check <dir> [--deployment <file>] [--json]`: validates a model
 * repository offline, for a model team's CI, with the scorer's own code — each version loads,
 * its manifest fits its reader schema, a warm-up inference runs (prepare.ts, as a deployment
 * change would) — and optionally a deployment file against it. Exit 0 when everything passes,
 * 1 with the reasons when something does not, 2 for a usage error.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describeError } from '../errors.js';
import { parseDeployment } from './deployment.js';
import { DEFAULT_EVENT_SCHEMA } from './manifest.js';
import { type CreateScorer, PrepareError, type PrepareStep, prepareVersion, rowScorerFactory } from './prepare.js';
import { type RepositoryScan, defaultVersion, scanRepository } from './repository.js';

export interface VersionCheck {
  version: string;
  ok: boolean;
  /** When not ok: the step that failed, and why. */
  step?: PrepareStep;
  reason?: string;
  name?: string;
  sha256?: string;
  features?: number;
  eventSchema?: string;
  warmUpMs?: number;
}

export interface CheckReport {
  dir: string;
  ok: boolean;
  /** A reason the repository itself cannot be used (then no versions). */
  error?: string;
  versions: VersionCheck[];
  ignored: RepositoryScan['ignored'];
  defaultVersion?: string;
  deployment?: { file: string; ok: boolean; reason?: string };
}

/** One session on the calling thread, one row at a time: a check, not a benchmark. */
const CHECK_SCORER: CreateScorer = rowScorerFactory({
  batch: { maxSize: 64, maxDelayMs: 0, idleDispatch: true },
  infer: { mode: 'main', workers: 1, intraOpThreads: 1, graphOptimization: 'all', spinning: false },
  circuit: { failureThreshold: 1, cooldownMs: 0 },
});

export async function checkRepository(dir: string, { deploymentFile, createScorer = CHECK_SCORER }: { deploymentFile?: string; createScorer?: CreateScorer } = {}): Promise<CheckReport> {
  let scan: RepositoryScan;
  try {
    scan = scanRepository(dir);
  } catch (err) {
    return { dir, ok: false, error: describeError(err), versions: [], ignored: [] };
  }
  const versions: VersionCheck[] = [];
  for (const version of scan.versions) {
    const started = performance.now();
    try {
      const p = await prepareVersion(dir, version, createScorer);
      const warmUpMs = Math.round(performance.now() - started);
      await p.scorer.close(1_000);
      const { manifest, sha256, eventSchemaPath } = p.model;
      versions.push({ version, ok: true, name: manifest.name, sha256, features: manifest.features.length, eventSchema: eventSchemaPath, warmUpMs });
    } catch (err) {
      versions.push({ version, ok: false, ...(err instanceof PrepareError ? { step: err.step } : {}), reason: describeError(err) });
    }
  }
  const report: CheckReport = { dir, ok: versions.every((v) => v.ok), versions, ignored: scan.ignored, defaultVersion: defaultVersion(scan) };
  if (deploymentFile !== undefined) {
    try {
      parseDeployment(readFileSync(deploymentFile, 'utf8'), { file: deploymentFile, versions: scan.versions });
      report.deployment = { file: deploymentFile, ok: true };
    } catch (err) {
      report.deployment = { file: deploymentFile, ok: false, reason: describeError(err) };
      report.ok = false;
    }
  }
  return report;
}

/** The reader schema as a model team reads it: the default, or its path in the version folder. */
function schemaText(dir: string, v: VersionCheck): string {
  if (v.eventSchema === DEFAULT_EVENT_SCHEMA) return 'default reader schema';
  const rel = relative(join(dir, v.version), v.eventSchema ?? '');
  return `reader schema ${rel.startsWith('..') ? v.eventSchema : rel}`;
}

function format(r: CheckReport): string {
  if (r.error !== undefined) return `FAIL  ${r.error}\n`;
  const lines = r.versions.map((v) =>
    v.ok
      ? `ok    ${v.version}  ${v.name}  sha256 ${v.sha256?.slice(0, 12)}  ${v.features} features  ${schemaText(r.dir, v)}  loaded and warmed up in ${v.warmUpMs} ms`
      : `FAIL  ${v.version}  ${v.reason}`,
  );
  for (const i of r.ignored) lines.push(`note  ${i.name}: ${i.reason}, not a version`);
  if (r.deployment !== undefined) lines.push(r.deployment.ok ? `ok    deployment ${r.deployment.file}` : `FAIL  deployment ${r.deployment.reason}`);
  const passed = r.versions.filter((v) => v.ok).length;
  const fallback = r.versions.find((v) => v.version === r.defaultVersion);
  lines.push(`${passed} of ${r.versions.length} versions ok; without MODEL_DEPLOYMENT ${r.defaultVersion} serves${fallback?.ok === false ? ', and it fails' : ''}`);
  return `${lines.join('\n')}\n`;
}

const USAGE = 'usage: kafka-onnx-scorer models check <repository-dir> [--deployment <file>] [--json]\n';

/** The `models` subcommand; returns the exit code. */
export async function modelsCommand(argv: readonly string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [sub, ...rest] = argv;
  const positional: string[] = [];
  let deploymentFile: string | undefined;
  let json = false;
  let bad = sub !== 'check';
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === '--json') json = true;
    else if (a === '--deployment') bad ||= (deploymentFile = rest[++i]) === undefined;
    else if (a.startsWith('-')) bad = true;
    else positional.push(a);
  }
  const [dir] = positional;
  if (bad || dir === undefined || positional.length > 1) {
    err.write(USAGE);
    return 2;
  }
  const report = await checkRepository(dir, deploymentFile === undefined ? {} : { deploymentFile });
  out.write(json ? `${JSON.stringify(report, null, 2)}\n` : format(report));
  return report.ok ? 0 : 1;
}
