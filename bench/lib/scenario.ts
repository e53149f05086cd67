/**
 * One benchmark scenario (one model, one scorer configuration), start to end:
 *   raw ceiling -> fresh topics + preloaded backlog -> scorer child process -> backlog throughput
 *   -> live latency at half that rate -> metrics, RSS, CPU -> SIGTERM -> exactly-once check.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { type ProduceOptions, type ProduceSummary, produceEvents } from '../../scripts/produce.js';
import { spawnModule } from '../../src/threads/spawn.js';
import type { ModelKind } from '../../scripts/lib/feature-events.js';
import { loadModel } from '../../src/model/manifest.js';
import { type ProfileSummary, formatProfile, summarizeProfile } from './cpuprofile.js';
import { type LatencyRecord, LatencyReader, ScoredDecoder, committedTotal, percentile, readAll } from './output.js';
import { type Histogram, type Scrape, diff, histogram, quantile, shares, total } from './prom.js';
import { type RawPoint, rawThroughput } from './raw.js';
import { ScorerProcess } from './scorer-process.js';
import { type CpuBreakdown, cpuBreakdown, cpuSnapshot } from './system.js';

export interface ScenarioOptions {
  root: string;
  /** Where dist/cli.js is run from (normally root; another checkout for A/B tests of a src/ change). */
  scorerRoot: string;
  /** Live rate in events/s; undefined = half the measured backlog throughput. */
  latencyRate?: number;
  /** Build and encode every live event (the generator's cost before 2026-12-03) instead of recycling LIVE_RECYCLED_EVENTS. */
  freshLiveEvents?: boolean;
  /** event_time of a live event: the rate schedule's time for its send, or the clock at the send (`--event-time`; scripts/produce.ts). */
  eventTime: 'schedule' | 'send';
  /** Flags on the scorer's node command line (`--node-args`). */
  nodeArgs?: string[];
  stackDir: string;
  resultsDir: string;
  runId: string;
  brokers: string;
  registryUrl: string;
  model: ModelKind;
  /** Scorer environment chosen for this scenario (BATCH_MAX_SIZE, INFER_*, ...). */
  env: Record<string, string>;
  events: number;
  latencySeconds: number;
  rawSeconds: number;
  /** Batch sizes for the raw sweep besides the configured one. */
  rawBatches: number[];
  profile: boolean;
  keepTopics: boolean;
  say: (line: string) => void;
}

/**
 * Live events built once and sent again with event_time stamped at send (scripts/produce.ts
 * `recycle`): the generator shares the cores with the scorer, and building and encoding each
 * event cost it ~16 µs, more than the scorer's whole pipeline.
 */
const LIVE_RECYCLED_EVENTS = 20_000;
const POLL_MS = 100;
const STALL_MS = 30_000;

const rnd = (): string => randomBytes(4).toString('hex');
const r0 = (x: number): number => Math.round(x);
const mb = (bytes: number): number => Math.round(bytes / 1048576);

function summarizeHistogram(h: Histogram, scale = 1) {
  const q = (x: number) => {
    const v = quantile(h, x);
    return v === undefined ? null : Math.round(v * scale * 1000) / 1000;
  };
  return { count: h.count, mean: h.count > 0 ? Math.round((h.sum / h.count) * scale * 1000) / 1000 : null, p50: q(0.5), p95: q(0.95), p99: q(0.99), shares: shares(h) };
}

function phaseMetrics(after: Scrape, before: Scrape | undefined) {
  const hist = (name: string) => diff(histogram(after, name), before === undefined ? undefined : histogram(before, name));
  return {
    batchSizeRows: summarizeHistogram(hist('scorer_batch_size_rows')),
    inferenceMs: summarizeHistogram(hist('scorer_inference_duration_seconds'), 1000),
    batchFillWaitMs: summarizeHistogram(hist('scorer_batch_fill_wait_seconds'), 1000),
    endToEndLatencyMsScorerView: summarizeHistogram(hist('scorer_end_to_end_latency_seconds'), 1000),
    transactions: total(after, 'scorer_transactions_total') - (before === undefined ? 0 : total(before, 'scorer_transactions_total')),
    /** Committed transactions' durations (a build from before scorer_transaction_duration_seconds: count 0). */
    transactionMs: summarizeHistogram(hist('scorer_transaction_duration_seconds'), 1000),
    deadLettered: total(after, 'scorer_records_dead_lettered_total') - (before === undefined ? 0 : total(before, 'scorer_records_dead_lettered_total')),
    eventLoopLagP99Ms: Math.round(total(after, 'nodejs_eventloop_lag_p99_seconds') * 1e4) / 10,
  };
}

function latencyStats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const p = (q: number) => percentile(s, q) ?? null;
  return { count: s.length, p50: p(0.5), p95: p(0.95), p99: p(0.99), max: s.at(-1) ?? null, mean: s.length > 0 ? r0(s.reduce((a, x) => a + x, 0) / s.length) : null };
}

/**
 * The p99 of event -> visible per second of the live phase (by event time from `since`; null for
 * a second without records): whether the tail is a warm-up, a few episodes, or everywhere.
 */
function p99BySecond(recs: readonly LatencyRecord[], since: number): (number | null)[] {
  const bins: number[][] = [];
  for (const r of recs) {
    const second = Math.floor((r.eventTime - since) / 1000);
    (bins[second] ??= []).push(r.visibleAt - r.eventTime);
  }
  return Array.from(bins, (b) => (b === undefined ? null : (percentile(b.sort((x, y) => x - y), 0.99) ?? null)));
}

type PhaseMetrics = ReturnType<typeof phaseMetrics>;
type LatencyStats = ReturnType<typeof latencyStats>;

export interface ScenarioResult {
  model: ModelKind;
  env: Record<string, string>;
  topics: { input: string; output: string; dlq: string };
  groupId: string;
  raw: RawPoint[];
  rawAtConfigured: RawPoint;
  rawBest: RawPoint;
  preload?: { sent: number; seconds: number; eventsPerSec: number };
  throughput?: {
    method: string;
    events: number;
    seconds: number;
    eventsPerSec: number;
    steadyEventsPerSec10to90: number;
    readyMs: number;
    readyToFirstConsumedMs: number;
    cpu: CpuBreakdown;
    scorerCpuUsPerEvent: number;
    mainThreadCpuUsPerEvent: number;
    metrics: PhaseMetrics;
    maxRssMb: number;
  };
  latency?: {
    method: string;
    eventTime: 'schedule' | 'send';
    targetRate: number;
    achievedProduceRate: number;
    produced: number;
    received: number;
    visibleMinusEventMs: LatencyStats;
    scoredMinusEventMs: LatencyStats;
    visibleMinusScoredMs: LatencyStats;
    /** p99 of visibleMinusEventMs per second of the live phase (p99BySecond). */
    visibleMinusEventP99BySecondMs: (number | null)[];
    cpu: CpuBreakdown;
    metrics: PhaseMetrics;
  };
  rss?: { steadyMedianMb: number; steadyMaxMb: number; peakHwmMb: number; samples: number };
  shutdown?: { exitCode: number | null; signal: string | null; ms: number; killed: boolean; ok: boolean };
  output?: { expected: number; records: number; duplicates: number; deadLettered: number; ok: boolean; backlogScoredTimeSpanMs: number | null };
  profiles?: ProfileSummary[];
  error?: string;
}

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const { say, model: kind, env } = o;
  const model = loadModel(resolve(o.root, `models/${kind}.onnx`));
  const batch = Number(env.BATCH_MAX_SIZE ?? 512);
  const session = { intraOpThreads: Number(env.INFER_INTRA_OP_THREADS ?? 1), graphOptimization: (env.INFER_GRAPH_OPTIMIZATION ?? 'all') as 'all', spinning: env.INFER_SPINNING === 'true' };

  // 1. raw ceiling, in this process, before anything of ours loads the machine.
  say(`${kind}: raw session.run ceiling (${session.intraOpThreads} intra-op thread(s), batches ${[...new Set([batch, ...o.rawBatches])].join(',')})`);
  const raw: RawPoint[] = await rawThroughput(model, session, [...new Set([batch, ...o.rawBatches])].sort((a, b) => a - b), o.rawSeconds);
  const rawAtConfigured = raw.find((p) => p.batch === batch) as RawPoint;
  const rawBest = raw.reduce((a, p) => (p.rowsPerSec > a.rowsPerSec ? p : a));

  // 2. fresh topics, backlog.
  const id = `bench-${kind}-${o.runId}-${rnd()}`;
  const topics = { input: `${id}-in`, output: `${id}-out`, dlq: `${id}-dlq` };
  const groupId = `${id}-group`;
  const kafka = new Kafka({ clientId: `bench-${rnd()}`, brokers: o.brokers.split(','), logLevel: logLevel.NOTHING });
  const admin: Admin = kafka.admin();
  await admin.connect();
  say(`${kind}: preloading ${o.events} events into ${topics.input} (6 partitions)`);
  const preload = await produceEvents({ brokers: o.brokers, registryUrl: o.registryUrl, topic: topics.input, count: o.events, rate: 0, poison: 0, model: kind, partitions: 6, seed: 42 });

  // 3. the scorer.
  const profileDir = join(o.resultsDir, `${o.runId}-${kind}-cpuprofile`);
  if (o.profile) mkdirSync(profileDir, { recursive: true });
  const scorerEnv: Record<string, string> = {
    KAFKA_BROKERS: o.brokers,
    SCHEMA_REGISTRY_URL: o.registryUrl,
    INPUT_TOPIC: topics.input,
    OUTPUT_TOPIC: topics.output,
    DLQ_TOPIC: topics.dlq,
    GROUP_ID: groupId,
    KAFKA_CLIENT_ID: `bench-scorer-${kind}`,
    MODEL_PATH: model.modelPath,
    LOG_LEVEL: 'warn',
    ...env,
  };
  // Not NODE_OPTIONS: node refuses --cpu-prof there. Worker threads inherit execArgv, so they are profiled too.
  const nodeArgs = [...(o.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(o.nodeArgs ?? [])];
  const logFile = join(o.resultsDir, `${o.runId}-${kind}-scorer.log`);
  say(`${kind}: starting the scorer (${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}), log ${logFile}`);
  const spawnedAt = performance.now();
  const scorer = await ScorerProcess.start(o.scorerRoot, scorerEnv, logFile, nodeArgs);
  const result: ScenarioResult = { model: kind, env, topics, groupId, raw, rawAtConfigured, rawBest };
  try {
    const readyAt = await scorer.waitReady();
    const cpuA = cpuSnapshot(scorer.pid, o.stackDir);

    // Throughput. First consumed: last /metrics poll (50 ms) with nothing consumed yet (a lower
    // bound). Last committed: first poll (100 ms) where the group's committed offsets, read from
    // the broker (admin.fetchOffsets), reach the preloaded end offsets (an upper bound).
    let prev = performance.now();
    for (;;) {
      if (scorer.exitStatus !== undefined) throw new Error(`the scorer exited during the run; see ${logFile}`);
      const consumed = total(await scorer.metrics(), 'scorer_records_consumed_total');
      if (consumed > 0) break;
      prev = performance.now();
      await sleep(50);
    }
    const firstConsumedAt = prev;
    const progress: [number, number][] = [];
    let lastProgressAt = performance.now();
    for (;;) {
      if (scorer.exitStatus !== undefined) throw new Error(`the scorer exited during the run; see ${logFile}`);
      const committed = await committedTotal(admin, groupId, topics.input);
      const now = performance.now();
      if (progress.length === 0 || committed > (progress.at(-1) as [number, number])[1]) lastProgressAt = now;
      progress.push([now, committed]);
      if (committed >= o.events) break;
      if (now - lastProgressAt > STALL_MS) throw new Error(`no commit progress for ${STALL_MS} ms (${committed}/${o.events}); see ${logFile}`);
      await sleep(POLL_MS);
    }
    const lastCommittedAt = (progress.at(-1) as [number, number])[0];
    const cpuB = cpuSnapshot(scorer.pid, o.stackDir);
    const afterBacklog = await scorer.metrics();
    const seconds = (lastCommittedAt - firstConsumedAt) / 1000;
    const cpu = cpuBreakdown(cpuA, cpuB, scorer.pid);
    const at = (share: number) => (progress.find(([, c]) => c >= share * o.events) as [number, number])[0];
    const steady = (0.8 * o.events) / ((at(0.9) - at(0.1)) / 1000);
    const throughput = {
      method: 'first consumed = last /metrics poll (50 ms) with scorer_records_consumed_total = 0; last committed = first admin.fetchOffsets poll (100 ms) with the group committed offsets = preloaded end offsets',
      events: o.events,
      seconds: Math.round(seconds * 1000) / 1000,
      eventsPerSec: r0(o.events / seconds),
      steadyEventsPerSec10to90: r0(steady),
      readyMs: r0(readyAt - spawnedAt),
      readyToFirstConsumedMs: r0(Math.max(0, firstConsumedAt - readyAt)),
      cpu,
      // CPU per event: steadier than events/s when other work shares the machine.
      scorerCpuUsPerEvent: Math.round((cpu.scorerCores * cpu.wallSeconds * 1e6) / o.events * 10) / 10,
      mainThreadCpuUsPerEvent: Math.round((cpu.scorerMainThreadCores * cpu.wallSeconds * 1e6) / o.events * 10) / 10,
      metrics: phaseMetrics(afterBacklog, undefined),
      maxRssMb: mb(Math.max(0, ...scorer.rss.filter((s) => s.at <= lastCommittedAt).map((s) => s.rss))),
    };
    result.preload = { sent: preload.sent, seconds: preload.seconds, eventsPerSec: r0(preload.sent / preload.seconds) };
    result.throughput = throughput;
    say(`${kind}: backlog of ${o.events} scored in ${throughput.seconds} s: ${throughput.eventsPerSec} events/s (steady ${throughput.steadyEventsPerSec10to90}), scorer main thread ${throughput.cpu.scorerMainThreadCores} cores, machine ${throughput.cpu.machineBusyCores}/${throughput.cpu.machineCores} busy`);

    // 4. latency at half the measured rate, event_time = now at produce time.
    const rate = Math.max(1, r0(o.latencyRate ?? throughput.eventsPerSec / 2));
    const count = rate * o.latencySeconds;
    let since = Number.POSITIVE_INFINITY;
    const reader = new LatencyReader(kafka, topics.output, `${id}-latency-reader`, new ScoredDecoder(o.root), () => since);
    await reader.start(admin);
    say(`${kind}: live phase: ${rate} events/s for ${o.latencySeconds} s`);
    const cpuC = cpuSnapshot(scorer.pid, o.stackDir);
    const liveStartAt = performance.now();
    since = Date.now();
    const live = await produceInWorker({ brokers: o.brokers, registryUrl: o.registryUrl, topic: topics.input, count, rate, poison: 0, model: kind, partitions: 6, seed: 7, eventTime: o.eventTime, ...(o.freshLiveEvents !== true && { recycle: LIVE_RECYCLED_EVENTS }) });
    const liveProducedAt = performance.now();
    const cpuD = cpuSnapshot(scorer.pid, o.stackDir);
    const drainDeadline = performance.now() + 30_000;
    while (reader.log.length < count && performance.now() < drainDeadline) await sleep(50);
    await reader.stop();
    const afterLive = await scorer.metrics();
    const peakRss = scorer.peakRss() ?? 0;
    const steadyRss = scorer.rss.filter((s) => s.at >= liveStartAt && s.at <= liveProducedAt).map((s) => s.rss).sort((a, b) => a - b);
    const recs = reader.log.records();
    result.latency = {
      method: `a read_committed consumer of the output topic (maxWaitTimeInMs 100): Date.now() when the fetch carrying the record reached it, minus the event_time stamped ${o.eventTime === 'schedule' ? "with the time the rate schedule gave the record's send (a late generator's lateness counts)" : 'when the send was built'}`,
      eventTime: o.eventTime,
      targetRate: rate,
      achievedProduceRate: r0(live.sent / live.seconds),
      produced: live.sent,
      received: recs.length,
      visibleMinusEventMs: latencyStats(recs.map((r) => r.visibleAt - r.eventTime)),
      scoredMinusEventMs: latencyStats(recs.map((r) => r.scoredTime - r.eventTime)),
      visibleMinusScoredMs: latencyStats(recs.map((r) => r.visibleAt - r.scoredTime)),
      visibleMinusEventP99BySecondMs: p99BySecond(recs, since),
      cpu: cpuBreakdown(cpuC, cpuD, scorer.pid),
      metrics: phaseMetrics(afterLive, afterBacklog),
    };
    result.rss = { steadyMedianMb: mb(percentile(steadyRss, 0.5) ?? 0), steadyMaxMb: mb(steadyRss.at(-1) ?? 0), peakHwmMb: mb(peakRss), samples: scorer.rss.length };

    // 5. SIGTERM.
    const stop = await scorer.stop();
    result.shutdown = { exitCode: stop.code, signal: stop.signal, ms: stop.ms, killed: stop.killed, ok: stop.code === 0 && !stop.killed };
    say(`${kind}: SIGTERM -> exit code ${stop.code} in ${stop.ms} ms`);

    // 6. exactly once: every input offset scored once (the backlog and the live events).
    const out = await readAll(kafka, topics.output, `${id}-verify`, new ScoredDecoder(o.root), o.events + live.sent);
    const backlogScored = out.scoredTimes.filter((_, i) => (out.eventTimes[i] as number) < since).sort((a, b) => a - b);
    result.output = {
      expected: o.events + live.sent,
      records: out.records,
      duplicates: out.duplicates,
      deadLettered: total(afterLive, 'scorer_records_dead_lettered_total'),
      ok: out.records === o.events + live.sent && out.duplicates === 0,
      // Cross-check of the throughput from the scorer's own clock: backlog scored_time span.
      backlogScoredTimeSpanMs: backlogScored.length > 1 ? (backlogScored.at(-1) as number) - (backlogScored[0] as number) : null,
    };
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    say(`${kind}: FAILED: ${result.error}`);
  } finally {
    if (scorer.exitStatus === undefined) await scorer.stop();
    if (!o.keepTopics) await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
    await admin.disconnect();
  }
  if (o.profile) {
    const profiles: ProfileSummary[] = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => summarizeProfile(join(profileDir, f)));
    for (const p of profiles) say(formatProfile(p));
    result.profiles = profiles;
  }
  return result;
}

/** produceEvents in a worker thread (live-producer.ts), so the latency reader keeps this event loop to itself. */
function produceInWorker(options: ProduceOptions): Promise<ProduceSummary> {
  const worker = spawnModule(new URL('./live-producer.ts', import.meta.url).href, options);
  return new Promise((resolve, reject) => {
    worker.once('message', (summary: ProduceSummary) => resolve(summary));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the live load generator exited (code ${code}) before reporting`)));
  });
}
