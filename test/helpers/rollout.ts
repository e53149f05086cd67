/**
 * Model rollout in integration tests: topics and environment, the deployment file a scorer watches (in a folder of its
 * own, removed after the test file), what GET /models says, a logger whose lines a test reads,
 * and the per-partition view of which version scored what.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { expect, inject } from 'vitest';
import { EventFactory, type OutMessage } from '../../scripts/lib/feature-events.js';
import { RegistryRest } from '../../src/kafka/registry.js';
import type { ModelsView } from '../../src/model/models-view.js';
import { loadVersion } from '../../src/model/repository.js';
import { createLogger } from '../../src/ops/logger.js';
import { tempDir } from './fixtures.js';
import { type ReadMessage, createTopics, randomName, waitFor } from './kafka.js';
import { decodeScored, referenceScores } from './scored.js';

/**
 * Topics of a rollout test (6 input and output partitions, 2 for dead letters), an event factory
 * registered for the input, and the scorer's environment for them (a repository and deployment
 * file are the test's).
 */
export async function rolloutSetup(name: string, { variants = false, seed = 23 } = {}) {
  const t = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
  await createTopics([
    { topic: t.input, numPartitions: 6 },
    { topic: t.output, numPartitions: 6 },
    { topic: t.dlq, numPartitions: 2 },
  ]);
  const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed, variants });
  const env = { INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, BATCH_MAX_SIZE: '256' };
  return { t, factory, env };
}

export interface DeploymentFile {
  path: string;
  /** Edits the file in place: JSON of `deployment`, or a string as it is. Returns Date.now() taken just before. */
  write(deployment: unknown): number;
}

/** A MODEL_DEPLOYMENT file holding `initial`, alone in a temp folder (the watcher watches the folder). */
export function deploymentFile(initial: unknown): DeploymentFile {
  const path = join(tempDir('scorer-deploy-'), 'deployment.json');
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

/**
 * Asserts each output's score is onnxruntime's for the version the output names (read from
 * `repo`), and that the versions' scores differ, so an output labelled with the wrong one shows.
 */
export async function expectReferenceScores(repo: string, outputs: readonly ReadMessage[], sent: readonly OutMessage[], factory: EventFactory): Promise<void> {
  const byKey = new Map(sent.map((m) => [m.key, m]));
  const byVersion = new Map<string, { key: string; score: number }[]>();
  for (const m of outputs) {
    const s = decodeScored(m.value);
    byVersion.set(s.model.version, [...(byVersion.get(s.model.version) ?? []), { key: m.key?.toString() as string, score: s.score }]);
  }
  const reference = (version: string, keys: string[]) => {
    const model = loadVersion(repo, version);
    return referenceScores(model, keys.map((k) => factory.featureRow((byKey.get(k) as OutMessage).value, model.manifest.features)));
  };
  for (const [version, scored] of byVersion) {
    const expected = await reference(version, scored.map((s) => s.key));
    const wrong = scored.map((s, i) => ({ key: s.key, got: s.score, expected: expected[i] as number })).filter((x) => !(Math.abs(x.got - x.expected) < 1e-5));
    expect({ version, wrong: wrong.slice(0, 3), wrongCount: wrong.length }).toEqual({ version, wrong: [], wrongCount: 0 });
  }
  const [one, other] = [...byVersion.keys()];
  if (one === undefined || other === undefined) return;
  const first = byVersion.get(one) as { key: string; score: number }[];
  const otherScores = await reference(other, first.map((s) => s.key));
  expect(first.reduce((sum, s, i) => sum + Math.abs(s.score - (otherScores[i] as number)), 0) / first.length).toBeGreaterThan(0.01);
}
