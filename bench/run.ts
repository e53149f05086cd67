/**
 * End-to-end benchmark of the scorer (`npm run bench`), per model (churn, mlp):
 *   raw session.run ceiling -> preloaded backlog through a scorer child process (throughput)
 *   -> live traffic at half that rate (event_time -> visible to a read_committed consumer)
 *   -> batch sizes and inference time from /metrics, RSS from /proc, CPU per thread -> SIGTERM.
 *
 *   npm run bench [-- --quick] [--models churn,mlp] [--churn-events 200000] [--mlp-events 60000]
 *                 [--latency-seconds 20] [--set churn:INFER_MODE=worker ...] [--profile] [--keep-topics]
 *                 [--latency-rate <events/s>] [--scorer-root <checkout with a built dist/>] [--fresh-live-events]
 *                 [--node-args "<node flags for the scorer>"] [--event-time schedule|send]
 *                 [--rollout [--rollout-rate 5000] [--rollout-seconds 30] [--shadow-events 100000]]
 *
 * Starts the local stack if it is not running (stackUp is a no-op otherwise), builds dist/ and
 * prints a Markdown table; everything measured goes to bench/results/<ISO-timestamp>.json.
 * Topics and groups are fresh random names; topics are deleted at the end unless --keep-topics.
 * `--rollout` adds the rollout phase (bench/lib/rollout.ts): a swap and a rollback on a live
 * stream (p99 during the change vs steady, time to take traffic) and a 100 % shadow's cost.
 * `--profile` runs the scorer under `node --cpu-prof` and prints a self-time summary (profiling
 * slows the scorer: use its numbers for where time goes, not for throughput). `--node-args` puts
 * flags on the scorer's node command line, e.g. V8 flags that NODE_OPTIONS refuses
 * (`--node-args "--single-threaded-gc"`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { APICURIO_VERSION } from '../scripts/stack/components.js';
import { stackDir, stackUp } from '../scripts/stack/stack.js';
import type { ModelKind } from '../scripts/lib/feature-events.js';
import { type ScenarioResult, runScenario } from './lib/scenario.js';
import { formatReport } from './lib/report.js';
import { type RolloutResult, formatRollout, runRollout } from './lib/rollout.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// The load generator's producers use the default partitioner on purpose; its v2 notice is noise here.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

/**
 * Scorer settings per model, chosen by experiment (bench/README.md):
 * - churn: inference costs ~0.05 µs per row; decoding and Kafka are the work, all on the event
 *   loop. 'main' and 'worker', batch 512 and 4096 measured the same within noise; 'main' at 512
 *   has the lowest RSS. (An earlier 512 KiB fetch limit worked around a MESSAGE_TOO_LARGE stall
 *   that src/produce.ts now avoids by slicing sends: bench/README.md, finding 1.)
 * - mlp: ~33 µs of core time per row; one worker with 2 intra-op threads keeps the event loop free
 *   for fetching, decoding and committing while the model runs; 256 rows is on its raw plateau.
 */
const SCENARIOS: Record<ModelKind, Record<string, string>> = {
  churn: { BATCH_MAX_SIZE: '512', INFER_MODE: 'main', INFER_INTRA_OP_THREADS: '1' },
  mlp: { BATCH_MAX_SIZE: '256', INFER_MODE: 'worker', INFER_WORKERS: '1', INFER_INTRA_OP_THREADS: '2' },
};
const RAW_SWEEP: Record<ModelKind, number[]> = { churn: [1], mlp: [1, 32, 64, 128, 256, 512] };

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    models: { type: 'string', default: 'churn,mlp' },
    'churn-events': { type: 'string' },
    'mlp-events': { type: 'string' },
    'latency-seconds': { type: 'string' },
    'raw-seconds': { type: 'string' },
    'latency-rate': { type: 'string' },
    'scorer-root': { type: 'string' },
    'fresh-live-events': { type: 'boolean', default: false },
    'node-args': { type: 'string', default: '' },
    'event-time': { type: 'string', default: 'schedule' },
    set: { type: 'string', multiple: true, default: [] },
    profile: { type: 'boolean', default: false },
    'keep-topics': { type: 'boolean', default: false },
    rollout: { type: 'boolean', default: false },
    'rollout-rate': { type: 'string' },
    'rollout-seconds': { type: 'string' },
    'shadow-events': { type: 'string' },
  },
});

function num(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    console.error(`bench: --${name}: expected a number >= ${min}, got '${raw}'`);
    process.exit(2);
  }
  return n;
}

const quick = values.quick;
const events: Record<ModelKind, number> = {
  churn: Math.round(num('churn-events', values['churn-events'], quick ? 20_000 : 200_000)),
  mlp: Math.round(num('mlp-events', values['mlp-events'], quick ? 6_000 : 60_000)),
};
const latencySeconds = num('latency-seconds', values['latency-seconds'], quick ? 5 : 20);
const rawSeconds = num('raw-seconds', values['raw-seconds'], quick ? 0.5 : 1.5, 0.1);
// Fixed live rate (events/s) instead of half the measured throughput: compares configurations at equal load.
const latencyRate = values['latency-rate'] === undefined ? undefined : num('latency-rate', values['latency-rate'], 0);
// Another checkout (e.g. a patched copy of src/ built into its dist/) to run as the scorer, for A/B tests.
const scorerRoot = values['scorer-root'] === undefined ? ROOT : resolve(values['scorer-root']);
// event_time of a live event: 'schedule' = when the rate schedule wanted its send (a generator
// that falls behind counts its lateness: no coordinated omission), 'send' = the clock at the send
// (the method before phase J).
const eventTime = values['event-time'];
if (eventTime !== 'schedule' && eventTime !== 'send') {
  console.error(`bench: --event-time: expected schedule or send, got '${eventTime}'`);
  process.exit(2);
}
const models = values.models.split(',').map((m) => m.trim());
for (const m of models) {
  if (m !== 'churn' && m !== 'mlp') {
    console.error(`bench: --models: expected churn and/or mlp, got '${m}'`);
    process.exit(2);
  }
}
for (const s of values.set) {
  const m = /^(churn|mlp):([A-Z0-9_]+)=(.*)$/.exec(s);
  if (m === null) {
    console.error(`bench: --set: expected <churn|mlp>:<ENV_VAR>=<value>, got '${s}'`);
    process.exit(2);
  }
  SCENARIOS[m[1] as ModelKind][m[2] as string] = m[3] as string;
}

const say = (line: string): void => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
const startedAt = new Date();
const runId = startedAt.toISOString().replace(/[:.]/g, '-');
const resultsDir = resolve(ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });

const stack = await stackUp((line) => say(line.split('\n')[0] ?? line));
say('building dist/ (tsc -p tsconfig.build.json)');
execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: scorerRoot, stdio: 'inherit' });

const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const machine = {
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  cpus: os.cpus().length,
  totalMemMb: Math.round(os.totalmem() / 1048576),
  os: `${os.type()} ${os.release()}`,
  node: process.version,
  onnxruntimeNode: ort.env.versions.node ?? pkg.dependencies['onnxruntime-node'],
  kafkajs: pkg.dependencies.kafkajs,
  kafka: stack.kafkaVersion,
  apicurioRegistry: APICURIO_VERSION,
  loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
};
say(`machine: ${machine.cpus} x ${machine.cpuModel}, ${machine.totalMemMb} MB, node ${machine.node}, load ${machine.loadAvgAtStart.join(' ')}`);

const results: ScenarioResult[] = [];
for (const model of models as ModelKind[]) {
  results.push(
    await runScenario({
      root: ROOT,
      scorerRoot,
      latencyRate,
      freshLiveEvents: values['fresh-live-events'],
      nodeArgs: values['node-args'].split(' ').filter((a) => a !== ''),
      eventTime,
      stackDir: stackDir(),
      resultsDir,
      runId,
      brokers: stack.kafkaBrokers,
      registryUrl: stack.schemaRegistryUrl,
      model,
      env: SCENARIOS[model],
      events: events[model],
      latencySeconds,
      rawSeconds,
      rawBatches: RAW_SWEEP[model],
      profile: values.profile,
      keepTopics: values['keep-topics'],
      say,
    }),
  );
}

let rollout: RolloutResult | undefined;
let rolloutError: string | undefined;
if (values.rollout) {
  try {
    rollout = await runRollout({
      root: ROOT,
      scorerRoot,
      stackDir: stackDir(),
      resultsDir,
      runId,
      brokers: stack.kafkaBrokers,
      registryUrl: stack.schemaRegistryUrl,
      env: SCENARIOS.churn,
      rate: Math.round(num('rollout-rate', values['rollout-rate'], quick ? 2_000 : 5_000)),
      seconds: num('rollout-seconds', values['rollout-seconds'], quick ? 9 : 30),
      shadowEvents: Math.round(num('shadow-events', values['shadow-events'], quick ? 20_000 : 100_000)),
      say,
    });
  } catch (err) {
    rolloutError = err instanceof Error ? err.message : String(err);
    say(`rollout: FAILED: ${rolloutError}`);
  }
}

const report = {
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
  options: { quick, events, latencySeconds, latencyRate: latencyRate ?? 'half the backlog throughput', rawSeconds, profile: values.profile, scorerRoot, liveEvents: values['fresh-live-events'] ? 'fresh' : 'recycled', eventTime },
  machine: { ...machine, loadAvgAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) },
  results,
  ...(rollout !== undefined && { rollout }),
  ...(rolloutError !== undefined && { rolloutError }),
};
const file = join(resultsDir, `${runId}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
console.log(formatReport(report));
if (rollout !== undefined) console.log(`\n${formatRollout(rollout)}`);
console.log(`\nfull results: ${file}`);
process.exit(results.some((r) => r.error !== undefined) || rolloutError !== undefined ? 1 : 0);
