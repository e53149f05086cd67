/**
 * `npm run demo`: the product in one command. Starts (or reuses) the local stack, runs the scorer
 * in this process, produces reference feature events with a few bad records of every kind, shows
 * live progress, and once everything produced is committed prints a summary: counts, dead letters
 * by code, throughput, lag, batch sizes, a read-back proving every input offset landed exactly
 * once, three decoded scored events and two dead letters with their dlq.* headers.
 *
 *   npm run demo -- [--count 50000] [--rate 10000] [--poison 0.002] [--keep-running]
 *
 * Topics: every run gets its own `demo-<run>-features` (6 partitions), `demo-<run>-scores` and
 * `demo-<run>-dlq`, and its own consumer group `demo-<run>`. Fixed topics with a fresh group would
 * re-score every earlier run's events (a new group starts from the beginning), and the output
 * topic would mix runs, so the counts and the read-back could not be checked against what this
 * run produced. So that repeated runs do not pile up on the broker, a run deletes the topics,
 * groups and registry subjects of earlier demo runs that are finished (their group has no member
 * and they are more than two minutes old); the last run's topics stay until the next run, to be
 * looked at.
 *
 * The scorer's logs (LOG_LEVEL, default warn) go to .stack/logs/demo-<run>.log rather than the
 * terminal, so they never break the live display; the summary says how many warnings there were.
 * Tuning variables (BATCH_*, INFER_*, FETCH_*, ...) from the environment apply; connection and
 * topic settings are the demo's own.
 *
 * Ctrl-C: stops producing, stops the scorer cleanly (the chunk in flight commits), prints what was
 * done, exits 0; a second Ctrl-C exits at once with 130. Exit 1: the stack or the scorer failed.
 * (`npm run` itself reports 130 after a Ctrl-C whatever its script returns: npm/cli#1072.)
 *
 * The demo runs in a child of this process (`node --import tsx`, same file). tsx's CLI answers a
 * Ctrl-C by waiting 30 ms for its child to acknowledge the signal, then sends it again and, after
 * another 30 ms, SIGKILLs the child: a busy scorer (decoding a fetched chunk on the main thread)
 * can miss that window and would die without its clean stop. The launcher stays idle, so it always
 * acknowledges in time, and forwards the signal to the demo.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, readdirSync, rmSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { constants } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { format, parseArgs } from 'node:util';
import type avro from 'avsc';
import type { Admin, Kafka, logCreator } from 'kafkajs';
import { type Config, loadConfig } from '../src/config.js';
import { DLQ_HEADERS } from '../src/stages/deadletter.js';
import { ScorerError, describeError } from '../src/errors.js';
import type { RunningScorer } from '../src/app.js';
import {
  type DeadLetterSample,
  type HistogramView,
  LiveView,
  type Phase,
  type ScoredSample,
  type Snapshot,
  type Style,
  type Verification,
  createStyle,
  deadLetterLines,
  int,
  millis,
  scoredSampleLines,
  secs,
  summaryLines,
  verificationLines,
} from './lib/demo-view.js';
import type { PoisonKind } from './lib/feature-events.js';
import type { ProduceSummary } from './produce.js';
import type { StackInfo } from './stack/stack.js';

/**
 * The heavy modules (kafkajs, onnxruntime, the registry client, ...), loaded by the demo process
 * only, after its Ctrl-C handler is in place: the launcher stays light and starts at once.
 */
async function loadLib() {
  // Before kafkajs loads: fixes its read_committed filtering (src/kafkajs-fix.ts).
  await import('../src/kafka/kafkajs-fix.js');
  const [kafkajs, avsc, logger, scorer, events, produce, stack] = await Promise.all([
    import('kafkajs'),
    import('avsc'),
    import('../src/ops/logger.js'),
    import('../src/app.js'),
    import('./lib/feature-events.js'),
    import('./produce.js'),
    import('./stack/stack.js'),
  ]);
  return {
    Kafka: kafkajs.Kafka,
    logLevel: kafkajs.logLevel,
    avro: avsc.default,
    createLogger: logger.createLogger,
    startScorer: scorer.startScorer,
    EXPECTED_CODE: events.EXPECTED_CODE,
    POISON_KINDS: events.POISON_KINDS,
    produceEvents: produce.produceEvents,
    StackError: stack.StackError,
    stackDir: stack.stackDir,
    stackUp: stack.stackUp,
  };
}
let lib: Awaited<ReturnType<typeof loadLib>>;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const PARTITIONS = 6;
const DEFAULT_POISON = 0.002;
const PREFERRED_HTTP_PORT = 8080;
/** How often the demo asks the broker for the group's lag while it runs. */
const LAG_POLL_MS = 500;
/** Earlier runs younger than this are left alone even when their group looks idle (they may be starting). */
const PRUNE_MIN_AGE_MS = 120_000;
const RUN_TOPIC = /^demo-([0-9a-z]{8,9})-([0-9a-f]{4})-(features|scores|dlq)$/;
/** Tuning variables passed through to the scorer; everything about where it connects is the demo's. */
const PASS_THROUGH = /^(BATCH_|INFER_|FETCH_|CIRCUIT_|PARTITIONS_CONSUMED_CONCURRENTLY$|MAX_IN_FLIGHT_ROWS$|RESUME_IN_FLIGHT_ROWS$|KAFKA_(SESSION_TIMEOUT|HEARTBEAT_INTERVAL|TRANSACTION_TIMEOUT)_MS$|SHUTDOWN_TIMEOUT_MS$|LOG_LEVEL$|HTTP_HOST$)/;

const USAGE = `usage: npm run demo -- [--count N] [--rate N] [--poison F] [--keep-running]
  --count N        events to produce (default 50000)
  --rate N         events per second, 0 = as fast as possible (default 10000)
  --poison F       share of bad records, 0..1 (default ${DEFAULT_POISON}, raised on small runs so every kind appears)
  --keep-running   keep scoring after the summary, until Ctrl-C`;

interface Options {
  count: number;
  rate: number;
  poison: number;
  /** True when --poison was not given and the default was raised so every bad kind appears. */
  poisonRaised: boolean;
  keepRunning: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string', default: '50000' },
      rate: { type: 'string', default: '10000' },
      poison: { type: 'string' },
      'keep-running': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: string, raw: string, min: number, max: number, integer: boolean): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new UsageError(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${raw}'`);
    }
    return n;
  };
  const count = num('count', values.count, 1, 1e9, true);
  const rate = num('rate', values.rate, 0, 1e7, false);
  let poison: number;
  let poisonRaised = false;
  if (values.poison !== undefined) {
    poison = num('poison', values.poison, 0, 1, false);
  } else {
    // The load generator makes every (1/poison)-th record bad, cycling through the kinds: on a
    // small run 0.2% would leave some kinds out, so space them to fit every kind at least once.
    const every = Math.round(1 / DEFAULT_POISON);
    const fit = Math.floor(count / lib.POISON_KINDS.length);
    poisonRaised = fit < every && fit >= 20;
    poison = poisonRaised ? 1 / fit : DEFAULT_POISON;
  }
  return { count, rate, poison, poisonRaised, keepRunning: values['keep-running'] };
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// Ctrl-C

/** First SIGINT/SIGTERM aborts `signal` (stop gracefully); a second one exits at once with 130. */
class Interrupts {
  readonly #controller = new AbortController();
  readonly signal = this.#controller.signal;
  readonly promise: Promise<void>;
  #onFirst: () => void = () => undefined;
  #firstAt = 0;

  constructor() {
    this.promise = new Promise((r) => this.signal.addEventListener('abort', () => r(), { once: true }));
    const handler = () => {
      if (!this.signal.aborted) {
        this.#firstAt = Date.now();
        this.#controller.abort();
        this.#onFirst();
        return;
      }
      // One Ctrl-C can reach us twice (the terminal signals the whole process group, and npm and
      // tsx forward it too): only a second press, not the echo of the first, forces the exit.
      if (Date.now() - this.#firstAt < 250) return;
      process.stdout.write('\nsecond Ctrl-C: exiting now without a clean stop\n');
      process.exit(130);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  }

  set onFirst(fn: () => void) {
    this.#onFirst = fn;
  }

  get aborted(): boolean {
    return this.signal.aborted;
  }
}

// ---------------------------------------------------------------------------------------------
// Logs: the scorer's, kafkajs's and any stray console output go to one file.

class LogSink {
  readonly path: string;
  /** Warnings and errors, apart from the scorer's expected notice for each chunk with dead letters. */
  warnings = 0;
  deadLetterNotices = 0;
  readonly #stream: WriteStream;

  constructor(path: string) {
    mkdirSync(resolve(path, '..'), { recursive: true });
    this.path = path;
    this.#stream = createWriteStream(path, { flags: 'a' });
  }

  /** pino's DestinationStream: one JSON line per call. */
  write(line: string): void {
    if (/^\{"level":"(warn|error|fatal)"/.test(line)) {
      if (line.includes('"msg":"records dead-lettered"')) this.deadLetterNotices += 1;
      else this.warnings += 1;
    }
    this.#stream.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  entry(level: 'info' | 'warn' | 'error', source: string, msg: string, extra: Record<string, unknown> = {}): void {
    this.write(JSON.stringify({ level, time: new Date().toISOString(), source, msg, ...extra }));
  }

  kafkaLogCreator(): logCreator {
    return () => ({ namespace, level, log }) => {
      const { message, ...extra } = log;
      this.entry(level === lib.logLevel.ERROR ? 'error' : level === lib.logLevel.WARN ? 'warn' : 'info', 'demo-kafkajs', message, { namespace, ...extra });
    };
  }

  /**
   * Library output that bypasses our loggers (the load generator's kafkajs client logs through
   * console) would tear the live display: send it to the file while the display runs.
   */
  captureConsole(): () => void {
    const c = console as unknown as Record<'log' | 'info' | 'warn' | 'error' | 'debug', (...args: unknown[]) => void>;
    const saved = { log: c.log, info: c.info, warn: c.warn, error: c.error, debug: c.debug };
    for (const name of Object.keys(saved) as (keyof typeof saved)[]) {
      c[name] = (...args: unknown[]) => this.entry(name === 'error' ? 'error' : name === 'warn' ? 'warn' : 'info', 'console', format(...args));
    }
    return () => Object.assign(c, saved);
  }

  close(): Promise<void> {
    return new Promise((r) => this.#stream.end(r));
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the scorer's metrics registry and the broker

interface MetricLike {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>>; metricName?: string }[] }>;
}

async function total(m: MetricLike): Promise<number> {
  return (await m.get()).values.reduce((a, v) => a + v.value, 0);
}

async function totalBy(m: MetricLike, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await m.get()).values) {
    const key = String(v.labels[label] ?? '');
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

/** Count, sum and bucket upper bounds for p50/p99/max, summed over all label sets. */
async function histogram(m: MetricLike): Promise<HistogramView> {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const v of (await m.get()).values) {
    if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    } else if (v.metricName?.endsWith('_count')) count += v.value;
    else if (v.metricName?.endsWith('_sum')) sum += v.value;
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const quantile = (q: number) => (count === 0 ? undefined : sorted.find(([, cumulative]) => cumulative >= q * count)?.[0]);
  return { count, sum, p50: quantile(0.5), p99: quantile(0.99), max: quantile(1) };
}

interface Names {
  run: string;
  group: string;
  input: string;
  output: string;
  dlq: string;
}

interface Lag {
  lag: number;
  /** Records in the input topic (sum of end offsets; the demo's input topic is not transactional). */
  inTopic: number;
  ends: Map<number, number>;
}

/** End offsets of the input topic minus the group's committed offsets (the broker's view). */
async function consumerLag(admin: Admin, groupId: string, topic: string): Promise<Lag> {
  const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
  let lag = 0;
  let inTopic = 0;
  const endMap = new Map<number, number>();
  for (const e of ends) {
    const high = Number(e.high);
    const low = Number(e.low);
    endMap.set(e.partition, high);
    inTopic += high - low;
    const c = committed?.partitions.find((p) => p.partition === e.partition)?.offset;
    const from = c === undefined || Number(c) < 0 ? low : Number(c);
    lag += Math.max(0, high - from);
  }
  return { lag, inTopic, ends: endMap };
}

interface Counts {
  scored: number;
  deadLettered: number;
  byCode: Record<string, number>;
  batches: number;
  transactions: number;
}

/** Samples the registry every tick and the broker's lag at most every `lagEveryMs`; keeps rates and peaks. */
class Monitor {
  lag: Lag | undefined;
  maxLag = 0;
  peakRate = 0;
  rate = 0;
  readonly #scorer: RunningScorer;
  readonly #admin: Admin;
  readonly #names: Names;
  readonly #history: { t: number; done: number }[] = [];
  #lagAt = 0;

  constructor(scorer: RunningScorer, admin: Admin, names: Names) {
    this.#scorer = scorer;
    this.#admin = admin;
    this.#names = names;
  }

  async counts(): Promise<Counts> {
    const m = this.#scorer.metrics;
    const [scored, byCode, batches, transactions] = await Promise.all([total(m.recordsScored), totalBy(m.recordsDeadLettered, 'code'), histogram(m.batchSize), totalBy(m.transactions, 'result')]);
    const deadLettered = Object.values(byCode).reduce((a, b) => a + b, 0);
    return { scored, deadLettered, byCode, batches: batches.count, transactions: transactions.committed ?? 0 };
  }

  async pollLag(lagEveryMs = LAG_POLL_MS, force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lagAt < lagEveryMs) return;
    this.#lagAt = now;
    try {
      this.lag = await consumerLag(this.#admin, this.#names.group, this.#names.input);
      this.maxLag = Math.max(this.maxLag, this.lag.lag);
    } catch {
      // A slow or failed poll only leaves the last value on screen; the scorer reports real trouble.
    }
  }

  /** Events finished (scored + dead-lettered) per second over about the last second. */
  track(done: number): void {
    const now = Date.now();
    this.#history.push({ t: now, done });
    while (this.#history.length > 2 && now - (this.#history[1] as { t: number }).t >= 1_000) this.#history.shift();
    const first = this.#history[0] as { t: number; done: number };
    const dt = now - first.t;
    if (dt >= 200) this.rate = ((done - first.done) * 1000) / dt;
    if (dt >= 500) this.peakRate = Math.max(this.peakRate, this.rate);
  }
}

// ---------------------------------------------------------------------------------------------
// Read-back: the output and dead-letter topics as a read_committed consumer sees them

interface ReadBack {
  verification: Verification | undefined;
  scored: ScoredSample[];
  deadLetters: DeadLetterSample[];
}

const header = (v: Buffer | string | (Buffer | string)[] | undefined): string => (v === undefined ? '' : Array.isArray(v) ? v.map(String).join(',') : v.toString());

async function readBack(kafka: Kafka, names: Names, expected: number, ends: Map<number, number>, signal: AbortSignal): Promise<ReadBack> {
  const outputType = lib.avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as avro.Schema);
  // Verifying means reading everything back: fine for a demo's size, pointless for a billion.
  const verify = expected <= 2_000_000;
  const seen = new Map([...ends].map(([p, end]) => [p, new Uint8Array(end)]));
  const v: Verification = { scoredRead: 0, deadLettersRead: 0, missing: 0, duplicates: 0, keyMismatches: 0, complete: false, inputPartitions: ends.size };
  const mark = (partition: number, offset: number) => {
    const counts = seen.get(partition);
    if (counts === undefined || offset < 0 || offset >= counts.length) return; // produced after the ends were read
    counts[offset] = Math.min(255, (counts[offset] as number) + 1);
  };
  const scoredPool: ScoredSample[] = [];
  const poolPerPartition = new Map<number, number>();
  const deadPool: DeadLetterSample[] = [];
  let lastArrival = Date.now();

  const consumer = kafka.consumer({ groupId: `${names.group}-readback`, readUncommitted: false, maxWaitTimeInMs: 100, maxBytesPerPartition: 4 << 20 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [names.output, names.dlq], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: PARTITIONS,
      eachBatch: async ({ batch }) => {
        lastArrival = Date.now();
        for (const m of batch.messages) {
          const key = m.key?.toString() ?? '';
          if (batch.topic === names.output) {
            v.scoredRead += 1;
            if (!verify && scoredPool.length >= 30) continue;
            const event = outputType.fromBuffer((m.value ?? Buffer.alloc(0)).subarray(5)) as ScoredSample['event'];
            mark(event.source.partition, event.source.offset);
            if (key !== event.entity_id) v.keyMismatches += 1;
            const inPool = poolPerPartition.get(batch.partition) ?? 0;
            if (inPool < 5) {
              poolPerPartition.set(batch.partition, inPool + 1);
              scoredPool.push({ key, partition: batch.partition, offset: m.offset, event });
            }
          } else {
            v.deadLettersRead += 1;
            const h = m.headers ?? {};
            mark(Number(header(h[DLQ_HEADERS.sourcePartition])), Number(header(h[DLQ_HEADERS.sourceOffset])));
            if (deadPool.length < 500) {
              const headers = Object.values(DLQ_HEADERS)
                .filter((name) => h[name] !== undefined)
                .map((name): [string, string] => {
                  const value = header(h[name]);
                  const isTime = name === DLQ_HEADERS.failedAt || name === DLQ_HEADERS.sourceTimestamp;
                  return [name, isTime && /^\d+$/.test(value) ? `${value} (${new Date(Number(value)).toISOString()})` : value];
                });
              deadPool.push({ key, value: m.value, headers });
            }
          }
        }
      },
    });
    const deadline = Date.now() + 20_000 + expected / 20;
    for (;;) {
      const read = v.scoredRead + v.deadLettersRead;
      // Everything counted has arrived and nothing more for a moment (a duplicate would show up here).
      if (read >= expected && Date.now() - lastArrival > 500) {
        v.complete = true;
        break;
      }
      if (!verify && scoredPool.length >= 3 && deadPool.length >= 2) break;
      if (signal.aborted || Date.now() > deadline) break;
      await sleep(50);
    }
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  for (const counts of seen.values()) {
    for (const c of counts) {
      if (c === 0) v.missing += 1;
      else if (c > 1) v.duplicates += c - 1;
    }
  }
  return { verification: verify ? v : undefined, scored: pickScored(scoredPool), deadLetters: pickDeadLetters(deadPool) };
}

/** Three scored events that show some variety: both labels if there are, different partitions. */
function pickScored(pool: ScoredSample[]): ScoredSample[] {
  const chosen: ScoredSample[] = [];
  const labels = new Set<string | null>();
  const partitions = new Set<number>();
  for (const pass of [(s: ScoredSample) => !labels.has(s.event.label) && !partitions.has(s.partition), (s: ScoredSample) => !partitions.has(s.partition), () => true]) {
    for (const s of pool) {
      if (chosen.length === 3) break;
      if (chosen.includes(s) || !pass(s)) continue;
      chosen.push(s);
      labels.add(s.event.label);
      partitions.add(s.partition);
    }
  }
  return chosen;
}

/** Two dead letters from different stages (say, decode and vectorize), else with different codes. */
function pickDeadLetters(pool: DeadLetterSample[]): DeadLetterSample[] {
  const get = (d: DeadLetterSample, name: string) => d.headers.find(([k]) => k === name)?.[1];
  const first = pool[0];
  if (first === undefined) return [];
  const second =
    pool.find((d) => get(d, DLQ_HEADERS.errorStage) !== get(first, DLQ_HEADERS.errorStage)) ??
    pool.find((d) => get(d, DLQ_HEADERS.errorCode) !== get(first, DLQ_HEADERS.errorCode)) ??
    pool[1];
  return second === undefined ? [first] : [first, second];
}

// ---------------------------------------------------------------------------------------------
// Earlier runs

const RUN_LOG = /^(demo-([0-9a-z]{8,9})-[0-9a-f]{4})\.log$/;
const oldEnough = (id36: string) => Date.now() - parseInt(id36, 36) >= PRUNE_MIN_AGE_MS;

/** Deletes topics, groups, registry subjects and logs of finished earlier demo runs; returns how many runs. */
async function pruneEarlierRuns(admin: Admin, registryUrl: string, log: LogSink): Promise<number> {
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
  const logs = join(lib.stackDir(), 'logs');
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

// ---------------------------------------------------------------------------------------------

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((r) => {
    const srv = createServer();
    srv.once('error', () => r(false));
    srv.listen(port, host, () => srv.close(() => r(true)));
  });
}

/** The dead letters each code should get, from what the load generator says it produced. */
function expectedCodes(byKind: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(byKind)) {
    const code = lib.EXPECTED_CODE[kind as PoisonKind] ?? kind;
    out[code] = (out[code] ?? 0) + n;
  }
  return out;
}

class ProduceAborted extends Error {}

interface Production {
  sent: number;
  firstAt: number | undefined;
  endedAt: number | undefined;
  done: boolean;
  summary: ProduceSummary | undefined;
  error: unknown;
}

async function main(argv: string[]): Promise<number> {
  const interrupts = new Interrupts();
  lib = await loadLib();
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const out = process.stdout;
  const tty = out.isTTY === true;
  const st: Style = createStyle(tty && process.env.NO_COLOR === undefined);
  const print = (line = '') => out.write(`${line}\n`);
  const rel = (p: string) => relative(process.cwd(), p) || p;
  if (interrupts.aborted) {
    print('interrupted before starting: nothing was done.');
    return 0;
  }

  print(st.bold('kafka-onnx-scorer demo') + st.dim(' — Avro feature events in, ONNX scores out, exactly once, bad records to a dead-letter topic'));
  print();

  // 1. The local stack.
  let stack: StackInfo;
  try {
    const up = lib.stackUp((line) => print(st.dim(line.replace(/^/gm, '  '))));
    up.catch(() => undefined); // observed below, or abandoned on Ctrl-C
    const got = await Promise.race([up, interrupts.promise.then(() => undefined)]);
    if (got === undefined) {
      print('\ninterrupted while starting the stack: nothing was produced or scored.');
      return 0;
    }
    stack = got;
  } catch (err) {
    if (err instanceof lib.StackError) {
      process.stderr.write(`demo: the local stack could not start:\n${err.message}\n`);
      return 1;
    }
    throw err;
  }

  // 2. This run's topics (see the header comment for why they are per run).
  const runId = `${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
  const names: Names = { run: runId, group: `demo-${runId}`, input: `demo-${runId}-features`, output: `demo-${runId}-scores`, dlq: `demo-${runId}-dlq` };
  const log = new LogSink(join(lib.stackDir(), 'logs', `demo-${runId}.log`));
  const kafka = new lib.Kafka({ clientId: 'kafka-onnx-scorer-demo', brokers: stack.kafkaBrokers.split(','), logLevel: lib.logLevel.WARN, logCreator: log.kafkaLogCreator() });
  const admin = kafka.admin();
  let scorer: RunningScorer | undefined;
  const restoreConsole = log.captureConsole();
  try {
    await admin.connect();
    const pruned = await pruneEarlierRuns(admin, stack.schemaRegistryUrl, log).catch((err: unknown) => {
      log.entry('warn', 'demo', `cleaning up earlier demo runs failed: ${describeError(err)}`);
      return 0;
    });
    await admin.createTopics({
      waitForLeaders: true,
      topics: [names.input, names.output, names.dlq].map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
    });
    print();
    print(`${st.bold('topics')}    ${names.input} (${PARTITIONS} partitions) → ${names.output}, dead letters → ${names.dlq}`);
    if (pruned > 0) print(st.dim(`          (deleted the topics of ${pruned} earlier demo run${pruned === 1 ? '' : 's'})`));

    // 3. The scorer, in this process.
    const host = process.env.HTTP_HOST ?? '127.0.0.1';
    const passed = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && PASS_THROUGH.test(k)));
    const configFor = (port: number): Config =>
      loadConfig({
        LOG_LEVEL: 'warn',
        ...passed,
        KAFKA_BROKERS: stack.kafkaBrokers,
        SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        INPUT_TOPIC: names.input,
        OUTPUT_TOPIC: names.output,
        DLQ_TOPIC: names.dlq,
        GROUP_ID: names.group,
        KAFKA_CLIENT_ID: 'kafka-onnx-scorer-demo',
        TOPIC_PARTITIONS: String(PARTITIONS),
        MODEL_PATH: resolve(ROOT, 'models/churn.onnx'),
        HTTP_HOST: host,
        HTTP_PORT: String(port),
      });
    let config: Config;
    try {
      config = configFor((await portFree(PREFERRED_HTTP_PORT, host)) ? PREFERRED_HTTP_PORT : 0);
    } catch (err) {
      process.stderr.write(`demo: ${err instanceof ScorerError ? err.message : describeError(err)}\n`);
      return 1;
    }
    const logger = lib.createLogger(config.logLevel, { destination: log });
    print(`${st.bold('scorer')}    starting in this process (model ${rel(config.model.path)}; logs at ${config.logLevel} to ${rel(log.path)})`);
    const start = async (): Promise<RunningScorer> => {
      try {
        return await lib.startScorer(config, logger);
      } catch (err) {
        // Someone took port 8080 between the check and the bind: any free port will do.
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || config.http.port === 0) throw err;
        config = configFor(0);
        return lib.startScorer(config, logger);
      }
    };
    try {
      const starting = start();
      starting.catch(() => undefined);
      await Promise.race([starting, interrupts.promise]);
      scorer = await starting; // after a Ctrl-C too: it is stopped cleanly below
    } catch (err) {
      process.stderr.write(`demo: the scorer did not start: ${describeError(err)}\n  (log: ${rel(log.path)})\n`);
      return 1;
    }
    const running = scorer;
    if (interrupts.aborted) {
      print('\ninterrupted before producing: stopping the scorer.');
      await running.stop(config.shutdownTimeoutMs);
      return 0;
    }
    const base = `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${running.httpPort}`;
    const m = running.model.manifest;
    print(`          ready: model ${m.name} ${m.version} (sha256 ${running.model.sha256.slice(0, 12)}…), batches of up to ${config.batch.maxSize} rows, ${config.infer.mode === 'worker' ? `${config.infer.workers} inference worker thread${config.infer.workers === 1 ? '' : 's'}` : 'inference on the main thread'}`);
    print(`${st.bold('metrics')}   ${st.cyan(`${base}/metrics`)}`);
    print(`${st.bold('ready')}     ${st.cyan(`${base}/readyz`)}   ${st.dim(`(health: ${base}/healthz)`)}`);
    let crashed: unknown;
    let hasCrashed = false;
    void running.crashed.then((err) => {
      hasCrashed = true;
      crashed = err;
    });

    // 4. Produce, concurrently with scoring.
    const poisonNote = opts.poison > 0 ? `, ${(opts.poison * 100).toFixed(2)}% bad records of ${lib.POISON_KINDS.length} kinds${opts.poisonRaised ? ' (raised from 0.2% so every kind appears)' : ''}` : ', no bad records';
    print(`${st.bold('producing')} ${int(opts.count)} reference events at ${opts.rate > 0 ? `${int(opts.rate)}/s` : 'full speed'}${poisonNote}`);
    print();
    const monitor = new Monitor(running, admin, names);
    const view = new LiveView(out, { tty, style: st });
    const t0 = Date.now();
    const prod: Production = { sent: 0, firstAt: undefined, endedAt: undefined, done: false, summary: undefined, error: undefined };
    const producing = lib.produceEvents({
      brokers: stack.kafkaBrokers,
      registryUrl: stack.schemaRegistryUrl,
      topic: names.input,
      count: opts.count,
      rate: opts.rate,
      poison: opts.poison,
      model: 'churn',
      partitions: PARTITIONS,
      onProgress: (sent) => {
        prod.sent = sent;
        prod.firstAt ??= Date.now();
        // produceEvents has no cancel: throwing from its progress callback ends it (it disconnects in finally).
        if (interrupts.aborted) throw new ProduceAborted();
      },
    }).then(
      (summary) => void (prod.summary = summary),
      (err: unknown) => void (err instanceof ProduceAborted || (prod.error = err)),
    ).finally(() => {
      prod.done = true;
      prod.endedAt = Date.now();
    });

    // 5. Live progress until everything produced is committed (or Ctrl-C, or a failure).
    const tickMs = tty ? 200 : 250;
    let counts = await monitor.counts();
    let caughtUpAt: number | undefined;
    let lastDone = -1;
    let lastMoveAt = Date.now();
    let stallNoted = false;
    const snapshot = (phase: Phase): Snapshot => ({
      phase,
      elapsedMs: Date.now() - t0,
      produced: Math.max(prod.sent, monitor.lag?.inTopic ?? 0),
      target: opts.count,
      scored: counts.scored,
      deadLettered: counts.deadLettered,
      rate: monitor.rate,
      lag: monitor.lag?.lag,
      batches: counts.batches,
      transactions: counts.transactions,
    });
    const tick = async (phase: Phase, forceLag = false) => {
      counts = await monitor.counts();
      monitor.track(counts.scored + counts.deadLettered);
      await monitor.pollLag(LAG_POLL_MS, forceLag);
      view.update(snapshot(phase));
    };
    for (;;) {
      const phase: Phase = prod.done ? 'catching up' : 'producing';
      await tick(phase, prod.done);
      const done = counts.scored + counts.deadLettered;
      if (done !== lastDone) {
        lastDone = done;
        lastMoveAt = Date.now();
      } else if (!stallNoted && Date.now() - lastMoveAt > 30_000 && (monitor.lag?.lag ?? 0) > 0) {
        stallNoted = true;
        view.note(st.yellow(`  no progress for 30 s with lag ${int(monitor.lag?.lag ?? 0)}: see ${rel(log.path)} (${log.warnings} warnings so far)`));
      }
      if (interrupts.aborted || hasCrashed || prod.error !== undefined) break;
      if (prod.done && monitor.lag?.lag === 0 && done >= prod.sent) {
        caughtUpAt = Date.now();
        view.update(snapshot('caught up'), { force: true });
        break;
      }
      await Promise.race([sleep(tickMs), interrupts.promise]);
    }
    view.close();

    const summaryOf = (interrupted: boolean) => ({
      topics: names,
      interrupted,
      produced: prod.sent,
      target: opts.count,
      poisonProduced: prod.summary?.poison,
      expectedByCode: prod.summary && !interrupted ? expectedCodes(prod.summary.poisonByKind) : undefined,
      scored: counts.scored,
      deadLetteredByCode: counts.byCode,
      busyMs: caughtUpAt !== undefined && prod.firstAt !== undefined ? caughtUpAt - prod.firstAt : undefined,
      rate: caughtUpAt !== undefined && prod.firstAt !== undefined ? ((counts.scored + counts.deadLettered) * 1000) / Math.max(1, caughtUpAt - prod.firstAt) : 0,
      peakRate: monitor.peakRate,
      catchUpMs: caughtUpAt !== undefined && prod.endedAt !== undefined ? Math.max(0, caughtUpAt - prod.endedAt) : undefined,
      maxLag: monitor.maxLag,
      lagPollMs: LAG_POLL_MS,
      lag: monitor.lag?.lag,
      batchMaxSize: config.batch.maxSize,
      transactions: { committed: counts.transactions, aborted: 0 },
      warnings: log.warnings,
      deadLetterNotices: log.deadLetterNotices,
      logFile: rel(log.path),
    });
    const fullSummary = async (interrupted: boolean) => {
      const r = running.metrics;
      const [batches, endToEnd, tx] = await Promise.all([histogram(r.batchSize), histogram(r.endToEndLatency), totalBy(r.transactions, 'result')]);
      return summaryLines({ ...summaryOf(interrupted), batches, endToEnd, transactions: { committed: tx.committed ?? 0, aborted: tx.aborted ?? 0 } }, st);
    };
    const stopScorer = async (why: string): Promise<boolean> => {
      const t = Date.now();
      print(st.dim(`${why}: stopping the scorer (the chunk in flight commits first)…`));
      const clean = await running.stop(config.shutdownTimeoutMs);
      print(clean ? `scorer stopped cleanly in ${millis(Date.now() - t)}.` : st.yellow(`the scorer did not drain within ${secs(config.shutdownTimeoutMs)}; see ${rel(log.path)}`));
      return clean;
    };
    const footer = () => {
      print();
      print(`The local stack is still running (Kafka ${stack.kafkaBrokers}, schema registry ${stack.schemaRegistryUrl}); ${st.bold('npm run stack:down')} stops it.`);
      print(st.dim(`This run's topics stay until the next demo run, e.g. \`npm run produce -- --topic ${names.input}\` adds events to them.`));
    };

    if (hasCrashed || prod.error !== undefined) {
      const what = hasCrashed ? `the scorer's consumer crashed: ${describeError(crashed)}` : `producing failed: ${describeError(prod.error)}`;
      process.stderr.write(`\ndemo: ${what}\n  (log: ${rel(log.path)})\n`);
      await running.stop(5_000).catch(() => false);
      return 1;
    }

    if (interrupts.aborted) {
      // 7. Ctrl-C: the producer stops at its next batch; then the scorer drains and stops.
      print();
      await producing;
      await stopScorer('Ctrl-C');
      counts = await monitor.counts();
      await monitor.pollLag(0, true);
      print();
      for (const line of await fullSummary(true)) print(line);
      const left = monitor.lag?.lag ?? 0;
      if (left > 0) print(st.dim(`  ${int(left)} events are still unscored in ${names.input}: a scorer started with GROUP_ID=${names.group} would continue from exactly there.`));
      footer();
      return 0;
    }

    // 6. Summary, read-back, samples.
    print();
    for (const line of await fullSummary(false)) print(line);
    print();
    print(st.dim('reading the output topics back with a read_committed consumer…'));
    const ends = monitor.lag?.ends ?? new Map<number, number>();
    const back = await readBack(kafka, names, counts.scored + counts.deadLettered, ends, interrupts.signal);
    if (back.verification !== undefined) for (const line of verificationLines(back.verification, st)) print(line);
    print();
    print(st.bold(`${back.scored.length === 3 ? 'Three' : back.scored.length} scored events`) + st.dim(` (${names.output}, Avro decoded with schemas/scored-event.avsc after the 5-byte header)`));
    for (const line of scoredSampleLines(back.scored, st)) print(line);
    print();
    print(st.bold(`${back.deadLetters.length === 2 ? 'Two' : back.deadLetters.length} dead letters`) + st.dim(` (${names.dlq}: original key and bytes, the reason in dlq.* headers)`));
    for (const line of deadLetterLines(back.deadLetters, st)) print(line);
    print();

    if (opts.keepRunning && !interrupts.aborted) {
      print(`${st.bold('still scoring')} (--keep-running). Add events with ${st.cyan(`npm run produce -- --topic ${names.input} --count 10000 --poison 0.01`)}; Ctrl-C stops.`);
      print(`metrics at ${st.cyan(`${base}/metrics`)}`);
      print();
      const live = new LiveView(out, { tty, style: st, plainEveryMs: 5_000 });
      while (!interrupts.aborted && !hasCrashed) {
        counts = await monitor.counts();
        monitor.track(counts.scored + counts.deadLettered);
        await monitor.pollLag(1_000);
        live.update(snapshot('scoring'));
        await Promise.race([sleep(500), interrupts.promise]);
      }
      live.close();
      print();
      if (hasCrashed) {
        process.stderr.write(`demo: the scorer's consumer crashed: ${describeError(crashed)}\n`);
        await running.stop(5_000).catch(() => false);
        return 1;
      }
      await stopScorer('Ctrl-C');
      counts = await monitor.counts();
      await monitor.pollLag(0, true);
      print(`in total: ${int(counts.scored)} scored, ${int(counts.deadLettered)} dead-lettered, lag ${int(monitor.lag?.lag ?? 0)}.`);
      footer();
      return 0;
    }
    await stopScorer(interrupts.aborted ? 'Ctrl-C' : 'done');
    footer();
    return 0;
  } finally {
    if (scorer !== undefined) await scorer.stop(5_000).catch(() => false); // idempotent: a no-op after a clean stop
    await admin.disconnect().catch(() => undefined);
    restoreConsole();
    await log.close();
  }
}

const CHILD_ENV = 'KAFKA_ONNX_SCORER_DEMO_CHILD';

/** Runs the demo in a child process and forwards signals to it (see the header comment for why). */
function launch(): Promise<number> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((done) => {
    child.on('error', (err) => {
      process.stderr.write(`demo: could not start: ${err.message}\n`);
      done(1);
    });
    child.on('exit', (code, signal) => done(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}

const code =
  process.env[CHILD_ENV] === undefined
    ? await launch()
    : await main(process.argv.slice(2)).catch((err: unknown) => {
        process.stderr.write(`demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        return 1;
      });
// kafkajs and the inference worker are closed by now; exit explicitly so a stray timer cannot hold the process.
process.exit(code);
