/**
 * The rollout phase of the benchmark (`npm run bench -- --rollout`), churn from the repository
 * models/churn (MODEL_REPOSITORY + a MODEL_DEPLOYMENT file the benchmark edits):
 *   1. live traffic at a fixed rate; a third of the way in the file swaps stable 1.0.0 -> 1.1.0,
 *      two thirds in it points back (the rollback). Event -> visible (read_committed) latency
 *      before the swap (steady) vs in the 3 s after each change; how long each change took to
 *      take traffic (file written -> first event scored by the new version, and -> the last event
 *      scored by the old one); per partition the version must change exactly at those two points.
 *   2. the cost of a 100 % shadow: the same backlog drained twice on fresh topics, once with
 *      stable alone and once with a shadow (1.1.0) scoring every record into its own topic in the
 *      same transactions: events/s and scorer CPU per event, same run, same machine.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { produceEvents } from '../../scripts/produce.js';
import { LatencyReader, type LatencyRecord, ScoredDecoder, committedTotal, endTotal, percentile } from './output.js';
import { total } from './prom.js';
import { ScorerProcess } from './scorer-process.js';
import { cpuBreakdown, cpuSnapshot } from './system.js';

export interface RolloutOptions {
  root: string;
  scorerRoot: string;
  stackDir: string;
  resultsDir: string;
  runId: string;
  brokers: string;
  registryUrl: string;
  /** The churn scenario's settings (BATCH_MAX_SIZE, INFER_*). */
  env: Record<string, string>;
  /** Live rate (events/s) and length of the swap phase. */
  rate: number;
  seconds: number;
  /** Backlog drained with and without the shadow. */
  shadowEvents: number;
  say: (line: string) => void;
}

interface Latency {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export interface RolloutResult {
  swap: {
    rate: number;
    produced: number;
    received: number;
    steady: Latency;
    afterSwap: Latency;
    afterRollback: Latency;
    /** File written -> first event scored by the new version / -> last one scored by the old version (ms, scored_time). */
    swapFirstNewMs: number | null;
    swapLastOldMs: number | null;
    rollbackFirstOldMs: number | null;
    rollbackLastNewMs: number | null;
    /** Partitions whose versions, in offset order, are not exactly 1.0.0* 1.1.0* 1.0.0* (must be 0). */
    partitionsOutOfOrder: number;
    /** scorer_model_versions_loaded sampled every 250 ms: at most (during a change) and at the end (the old version unloaded). */
    versionsLoadedMax: number;
    versionsLoadedAtEnd: number;
    /** Scorer RSS (MB): before the swap, at most during the phase, at the end. */
    rssMb: { beforeSwap: number; max: number; atEnd: number };
  };
  shadow: {
    events: number;
    without: Drain;
    with: Drain & { shadowEvents: number };
    /** with / without: events/s ratio and CPU per event ratio. */
    throughputRatio: number;
    cpuRatio: number;
  };
}

interface Drain {
  seconds: number;
  eventsPerSec: number;
  scorerCpuUsPerEvent: number;
  maxRssMb: number;
}

const rnd = (): string => randomBytes(4).toString('hex');
const CHANGE_WINDOW_MS = 3_000;

function latency(values: number[]): Latency {
  const s = [...values].sort((a, b) => a - b);
  return { count: s.length, p50: percentile(s, 0.5) ?? null, p99: percentile(s, 0.99) ?? null, max: s.at(-1) ?? null };
}

/** Records are in a version sequence stable* new* stable* per partition (offset order). */
function outOfOrder(records: LatencyRecord[], stable: string): number {
  const byPartition = new Map<number, LatencyRecord[]>();
  for (const r of records) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  let bad = 0;
  for (const rs of byPartition.values()) {
    rs.sort((a, b) => a.offset - b.offset);
    const runs: string[] = [];
    for (const r of rs) if (runs.at(-1) !== r.version) runs.push(r.version);
    if (runs.length > 3 || (runs.length === 3 && (runs[0] !== stable || runs[2] !== stable)) || (runs.length >= 2 && runs[1] === stable)) bad++;
  }
  return bad;
}

export async function runRollout(o: RolloutOptions): Promise<RolloutResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-rollout-'));
  const deployment = join(dir, 'deployment.json');
  const kafka = new Kafka({ clientId: `bench-rollout-${rnd()}`, brokers: o.brokers.split(','), logLevel: logLevel.NOTHING });
  const admin: Admin = kafka.admin();
  await admin.connect();
  const created: string[] = [];
  const scorer = async (name: string, topics: { input: string; output: string; dlq: string }) => {
    const env = {
      KAFKA_BROKERS: o.brokers,
      SCHEMA_REGISTRY_URL: o.registryUrl,
      INPUT_TOPIC: topics.input,
      OUTPUT_TOPIC: topics.output,
      DLQ_TOPIC: topics.dlq,
      GROUP_ID: `${topics.input}-group`,
      TRANSACTIONAL_ID_PREFIX: `${topics.input}-tx`,
      MODEL_REPOSITORY: resolve(o.root, 'models/churn'),
      MODEL_DEPLOYMENT: deployment,
      LOG_LEVEL: 'info',
      ...o.env,
    };
    const p = await ScorerProcess.start(o.scorerRoot, env, join(o.resultsDir, `${o.runId}-rollout-${name}-scorer.log`));
    await p.waitReady();
    return p;
  };
  const fresh = (name: string) => {
    const id = `bench-rollout-${name}-${o.runId}-${rnd()}`;
    const t = { input: `${id}-in`, output: `${id}-out`, dlq: `${id}-dlq`, shadow: `${id}-shadow` };
    created.push(...Object.values(t), `${id}-in-tx-rollout`);
    return t;
  };
  try {
    // 1. swap and rollback on a live stream.
    writeFileSync(deployment, JSON.stringify({ stable: '1.0.0' }));
    const t = fresh('swap');
    await admin.createTopics({ waitForLeaders: true, topics: [t.input, t.output, t.dlq].map((topic) => ({ topic, numPartitions: 6 })) });
    const p = await scorer('swap', t);
    let since = Number.POSITIVE_INFINITY;
    const reader = new LatencyReader(kafka, t.output, `${t.input}-reader`, new ScoredDecoder(o.root), () => since);
    await reader.start(admin);
    const count = o.rate * o.seconds;
    o.say(`rollout: live ${o.rate} events/s for ${o.seconds} s; swap 1.0.0 -> 1.1.0 at ${Math.round(o.seconds / 3)} s, rollback at ${Math.round((2 * o.seconds) / 3)} s`);
    since = Date.now();
    let swapAt = 0;
    let rollbackAt = 0;
    const changes = (async () => {
      await sleep((o.seconds * 1000) / 3); // the schedule of the experiment, not waiting for a result
      swapAt = Date.now();
      writeFileSync(deployment, JSON.stringify({ stable: '1.1.0' }));
      await sleep((o.seconds * 1000) / 3);
      rollbackAt = Date.now();
      writeFileSync(deployment, JSON.stringify({ stable: '1.0.0' }));
    })();
    const loaded: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        loaded.push(total(await p.metrics(), 'scorer_model_versions_loaded'));
        await sleep(250); // a sampling interval
      }
    })();
    const live = await produceEvents({ brokers: o.brokers, registryUrl: o.registryUrl, topic: t.input, count, rate: o.rate, poison: 0, model: 'churn', partitions: 6, seed: 11 });
    await changes;
    const deadline = performance.now() + 30_000;
    while (reader.log.length < live.sent && performance.now() < deadline) await sleep(50);
    await reader.stop();
    sampling = false;
    await sampler;
    const mbOf = (xs: number[]) => Math.round(Math.max(0, ...xs) / 1048576);
    const swapAtPerf = performance.now() - (Date.now() - swapAt);
    const rssMb = { beforeSwap: mbOf(p.rss.filter((x) => x.at < swapAtPerf).map((x) => x.rss)), max: mbOf(p.rss.map((x) => x.rss)), atEnd: mbOf(p.rss.slice(-1).map((x) => x.rss)) };
    await p.stop();
    const recs = reader.log.records();
    const lat = (from: number, to: number) => latency(recs.filter((r) => r.eventTime >= from && r.eventTime < to).map((r) => r.visibleAt - r.eventTime));
    const scoredBy = (v: string, after: number) => recs.filter((r) => r.version === v && r.scoredTime >= after).map((r) => r.scoredTime - after);
    const first = (xs: number[]) => (xs.length === 0 ? null : Math.min(...xs));
    const last = (xs: number[]) => (xs.length === 0 ? null : Math.max(...xs));
    const swap = {
      rate: o.rate,
      produced: live.sent,
      received: recs.length,
      steady: lat(since, swapAt),
      afterSwap: lat(swapAt, swapAt + CHANGE_WINDOW_MS),
      afterRollback: lat(rollbackAt, rollbackAt + CHANGE_WINDOW_MS),
      swapFirstNewMs: first(scoredBy('1.1.0', swapAt)),
      swapLastOldMs: last(scoredBy('1.0.0', swapAt).filter((ms) => ms < rollbackAt - swapAt)),
      rollbackFirstOldMs: first(scoredBy('1.0.0', rollbackAt)),
      rollbackLastNewMs: last(scoredBy('1.1.0', rollbackAt)),
      partitionsOutOfOrder: outOfOrder(recs, '1.0.0'),
      versionsLoadedMax: Math.max(0, ...loaded),
      versionsLoadedAtEnd: loaded.at(-1) ?? 0,
      rssMb,
    };
    o.say(`rollout: swap took traffic in ${swap.swapFirstNewMs} ms (last 1.0.0 event +${swap.swapLastOldMs} ms), rollback in ${swap.rollbackFirstOldMs} ms (last 1.1.0 +${swap.rollbackLastNewMs} ms); p99 steady ${swap.steady.p99} ms, after swap ${swap.afterSwap.p99} ms, after rollback ${swap.afterRollback.p99} ms`);

    // 2. a 100 % shadow's cost: the same backlog drained without and with it.
    const drain = async (name: string, file: object): Promise<Drain & { topics: ReturnType<typeof fresh> }> => {
      writeFileSync(deployment, JSON.stringify(file));
      const d = fresh(name);
      await produceEvents({ brokers: o.brokers, registryUrl: o.registryUrl, topic: d.input, count: o.shadowEvents, rate: 0, poison: 0, model: 'churn', partitions: 6, seed: 42 });
      const s = await scorer(name, d);
      const a = cpuSnapshot(s.pid, o.stackDir);
      const started = performance.now();
      const group = `${d.input}-group`;
      while ((await committedTotal(admin, group, d.input)) < o.shadowEvents) {
        if (s.exitStatus !== undefined) throw new Error(`the ${name} scorer exited; see its log in ${o.resultsDir}`);
        await sleep(100);
      }
      const seconds = (performance.now() - started) / 1000;
      const cpu = cpuBreakdown(a, cpuSnapshot(s.pid, o.stackDir), s.pid);
      const maxRssMb = Math.round(Math.max(0, ...s.rss.map((x) => x.rss)) / 1048576);
      const scored = total(await s.metrics(), 'scorer_records_scored_total');
      await s.stop();
      if (scored < o.shadowEvents) throw new Error(`${name}: ${scored} of ${o.shadowEvents} scored`);
      return { topics: d, seconds: Math.round(seconds * 100) / 100, eventsPerSec: Math.round(o.shadowEvents / seconds), scorerCpuUsPerEvent: Math.round(((cpu.scorerCores * cpu.wallSeconds * 1e6) / o.shadowEvents) * 10) / 10, maxRssMb };
    };
    o.say(`rollout: draining ${o.shadowEvents} events without a shadow, then with a 100 % shadow`);
    const { topics: _a, ...without } = await drain('noshadow', { stable: '1.0.0' });
    const shadowTopic = `bench-rollout-shadow-${o.runId}-${rnd()}`;
    created.push(shadowTopic);
    const { topics: _b, ...withShadow } = await drain('shadow', { stable: '1.0.0', shadow: { version: '1.1.0', topic: shadowTopic, percent: 100 } });
    const shadowEvents = await endTotal(admin, shadowTopic); // includes transaction markers: an upper bound
    const shadow = {
      events: o.shadowEvents,
      without,
      with: { ...withShadow, shadowEvents },
      throughputRatio: Math.round((withShadow.eventsPerSec / without.eventsPerSec) * 100) / 100,
      cpuRatio: Math.round((withShadow.scorerCpuUsPerEvent / without.scorerCpuUsPerEvent) * 100) / 100,
    };
    o.say(`rollout: shadow 100 %: ${withShadow.eventsPerSec} vs ${without.eventsPerSec} events/s (${shadow.throughputRatio}x), CPU ${withShadow.scorerCpuUsPerEvent} vs ${without.scorerCpuUsPerEvent} µs/event (${shadow.cpuRatio}x)`);
    return { swap, shadow };
  } finally {
    await admin.deleteTopics({ topics: created }).catch(() => undefined);
    await admin.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatRollout(r: RolloutResult): string {
  const s = r.swap;
  const t = (x: number | null) => (x === null ? 'none after the write' : `${x} ms`);
  const l = (x: Latency) => `${x.p50 ?? '-'} / ${x.p99 ?? '-'} / ${x.max ?? '-'} ms (${x.count})`;
  return [
    '### rollout (churn, MODEL_REPOSITORY models/churn)',
    `- live ${s.rate} events/s, ${s.produced} produced, ${s.received} seen; swap 1.0.0 -> 1.1.0 then rollback, by editing MODEL_DEPLOYMENT`,
    `- event -> visible p50 / p99 / max: steady ${l(s.steady)}; 3 s after the swap ${l(s.afterSwap)}; 3 s after the rollback ${l(s.afterRollback)}`,
    `- swap: file written -> first event scored by 1.1.0 ${t(s.swapFirstNewMs)}, -> last by 1.0.0 ${t(s.swapLastOldMs)}; rollback: -> first by 1.0.0 ${t(s.rollbackFirstOldMs)}, -> last by 1.1.0 ${t(s.rollbackLastNewMs)}`,
    `- partitions whose versions did not change exactly at the swap and the rollback: ${s.partitionsOutOfOrder}`,
    `- versions loaded: at most ${s.versionsLoadedMax} during a change, ${s.versionsLoadedAtEnd} at the end (the old one unloaded); scorer RSS ${s.rssMb.beforeSwap} MB before the swap, ${s.rssMb.max} MB at most, ${s.rssMb.atEnd} MB at the end`,
    `- 100 % shadow, ${r.shadow.events} events drained: ${r.shadow.with.eventsPerSec} vs ${r.shadow.without.eventsPerSec} events/s without (${r.shadow.throughputRatio}x); scorer CPU ${r.shadow.with.scorerCpuUsPerEvent} vs ${r.shadow.without.scorerCpuUsPerEvent} µs/event (${r.shadow.cpuRatio}x); peak RSS ${r.shadow.with.maxRssMb} vs ${r.shadow.without.maxRssMb} MB`,
  ].join('\n');
}
