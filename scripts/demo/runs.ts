/**
 * A demo run's Kafka names and their lifetime. Every run gets its own `demo-<run>-features`
 * (PARTITIONS partitions), `demo-<run>-scores`, `demo-<run>-dlq` and consumer group `demo-<run>`,
 * where <run> is the start time in base 36 and 4 random hex digits (see scripts/demo.ts for why).
 * Each run deletes what finished earlier runs left: topics, groups, registry subjects and logs.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Admin } from 'kafkajs';
import { describeError } from '../../src/errors.js';
import { stackDir } from '../stack/stack.js';
import type { LogSink } from './log-sink.js';

/** Partitions of every topic of a run. */
export const PARTITIONS = 6;
/** Earlier runs younger than this are left alone even when their group looks idle (they may be starting). */
const PRUNE_MIN_AGE_MS = 120_000;
const RUN_TOPIC = /^demo-([0-9a-z]{8,9})-([0-9a-f]{4})-(features|scores|dlq)$/;

export interface RunNames {
  run: string;
  group: string;
  input: string;
  output: string;
  dlq: string;
}

export function newRunNames(now = Date.now()): RunNames {
  const run = `${now.toString(36)}-${randomBytes(2).toString('hex')}`;
  return { run, group: `demo-${run}`, input: `demo-${run}-features`, output: `demo-${run}-scores`, dlq: `demo-${run}-dlq` };
}

const logsDir = (): string => join(stackDir(), 'logs');

/** The run's log file, beside the stack's logs (pruned with the run). */
export const runLogPath = (names: RunNames): string => join(logsDir(), `${names.group}.log`);

/** Creates the run's three topics, each with PARTITIONS partitions. */
export async function createRunTopics(admin: Admin, names: RunNames): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [names.input, names.output, names.dlq].map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
  });
}

const RUN_LOG = /^(demo-([0-9a-z]{8,9})-[0-9a-f]{4})\.log$/;
const oldEnough = (id36: string) => Date.now() - parseInt(id36, 36) >= PRUNE_MIN_AGE_MS;

/** Deletes topics, groups, registry subjects and logs of finished earlier demo runs; returns how many runs. */
export async function pruneEarlierRuns(admin: Admin, registryUrl: string, log: LogSink): Promise<number> {
  const runs = new Map<string, string[]>();
  for (const topic of await admin.listTopics()) {
    const m = RUN_TOPIC.exec(topic);
    if (m === null || !oldEnough(m[1] as string)) continue;
    const run = `demo-${m[1]}-${m[2]}`;
    runs.set(run, [...(runs.get(run) ?? []), topic]);
  }
  const { groups } = runs.size === 0 ? { groups: [] } : await admin.describeGroups([...runs.keys()]);
  const idle = groups.filter((g) => g.state === 'Empty' || g.state === 'Dead').map((g) => g.groupId);
  // Logs of runs whose topics are gone (deleted now or earlier), unless the run may still be going.
  const logs = logsDir();
  for (const file of readdirSync(logs)) {
    const m = RUN_LOG.exec(file);
    const run = m?.[1];
    if (run !== undefined && oldEnough(m?.[2] as string) && (!runs.has(run) || idle.includes(run))) rmSync(join(logs, file), { force: true });
  }
  if (idle.length === 0) return 0;
  await admin.deleteTopics({ topics: idle.flatMap((run) => runs.get(run) ?? []) });
  await admin.deleteGroups(idle.flatMap((run) => [run, `${run}-readback`])).catch(() => undefined); // some never existed
  try {
    const res = await fetch(`${registryUrl}/subjects`, { signal: AbortSignal.timeout(3_000) });
    const subjects = res.ok ? ((await res.json()) as string[]) : [];
    for (const subject of subjects.filter((s) => idle.some((run) => s.startsWith(`${run}-`)))) {
      const url = `${registryUrl}/subjects/${encodeURIComponent(subject)}`;
      await fetch(url, { method: 'DELETE', signal: AbortSignal.timeout(3_000) });
      await fetch(`${url}?permanent=true`, { method: 'DELETE', signal: AbortSignal.timeout(3_000) });
    }
  } catch (err) {
    log.entry('warn', 'demo', `deleting earlier runs' registry subjects failed: ${describeError(err)}`);
  }
  return idle.length;
}
