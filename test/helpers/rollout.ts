/**
 * Model rollout in integration tests: the deployment file a scorer watches (in a folder of its
 * own, removed after the test file), what GET /models says, a logger whose lines a test reads,
 * and the per-partition view of which version scored what.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll } from 'vitest';
import type { ModelsView } from '../../src/model/models-view.js';
import { createLogger } from '../../src/ops/logger.js';
import { type ReadMessage, waitFor } from './kafka.js';
import { decodeScored } from './scored.js';

export interface DeploymentFile {
  path: string;
  /** Edits the file in place: JSON of `deployment`, or a string as it is. Returns Date.now() taken just before. */
  write(deployment: unknown): number;
}

const dirs: string[] = [];
let cleanupRegistered = false;

/** A MODEL_DEPLOYMENT file holding `initial`, alone in a temp folder (the watcher watches the folder). */
export function deploymentFile(initial: unknown): DeploymentFile {
  const dir = mkdtempSync(join(tmpdir(), 'scorer-deploy-'));
  dirs.push(dir);
  if (!cleanupRegistered) {
    cleanupRegistered = true;
    afterAll(() => {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      cleanupRegistered = false;
    });
  }
  const path = join(dir, 'deployment.json');
  const write = (deployment: unknown): number => {
    const at = Date.now();
    writeFileSync(path, typeof deployment === 'string' ? deployment : JSON.stringify(deployment, null, 2));
    return at;
  };
  write(initial);
  return { path, write };
}

/** GET /models of the scorer listening on `port`. */
export async function getModels(port: number): Promise<ModelsView> {
  const res = await fetch(`http://127.0.0.1:${port}/models`);
  if (res.status !== 200) throw new Error(`GET /models answered ${res.status}`);
  return (await res.json()) as ModelsView;
}

/** Polls GET /models until `check` holds; returns that view. */
export function waitForModels(port: number, what: string, check: (v: ModelsView) => boolean, timeoutMs = 30_000, everyMs = 25): Promise<ModelsView> {
  return waitFor(`GET /models: ${what}`, async () => {
    const v = await getModels(port);
    return check(v) ? v : undefined;
  }, timeoutMs, everyMs);
}

/** A logger writing JSON lines into memory (level info: the rollout's decisions and refusals are warn and info). */
export function memoryLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const logger = createLogger('info', { destination: { write: (line: string) => void raw.push(line) } });
  return { logger, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/**
 * Per input partition, ordered by source offset: the runs of versions that scored it (a version
 * and how many consecutive records). Throws when two records of one transaction — one chunk,
 * recognised by partition and scored_time, which the chunk processor takes once per chunk — name
 * different versions: a change must land between transactions.
 */
export function versionRuns(outputs: readonly ReadMessage[]): Map<number, { version: string; records: number }[]> {
  const byPartition = new Map<number, { offset: number; version: string; chunk: number }[]>();
  for (const m of outputs) {
    const s = decodeScored(m.value);
    const list = byPartition.get(s.source.partition) ?? [];
    list.push({ offset: s.source.offset, version: s.model.version, chunk: s.scored_time });
    byPartition.set(s.source.partition, list);
  }
  const runs = new Map<number, { version: string; records: number }[]>();
  for (const [partition, list] of [...byPartition].sort(([a], [b]) => a - b)) {
    list.sort((a, b) => a.offset - b.offset);
    const chunkVersion = new Map<number, string>();
    const out: { version: string; records: number }[] = [];
    for (const r of list) {
      const seen = chunkVersion.get(r.chunk);
      if (seen !== undefined && seen !== r.version) throw new Error(`partition ${partition}: one chunk (scored_time ${r.chunk}) scored by ${seen} and ${r.version} (offset ${r.offset})`);
      chunkVersion.set(r.chunk, r.version);
      const last = out[out.length - 1];
      if (last?.version === r.version) last.records++;
      else out.push({ version: r.version, records: 1 });
    }
    runs.set(partition, out);
  }
  return runs;
}
