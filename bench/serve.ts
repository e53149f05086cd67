/**
 * `npm run bench:serve`: the serving patterns beyond the stream, against the local stack, each
 * as its own `node dist/cli.js` process (so throughput and peak RSS are its own):
 *   1. Open Inference Protocol load: a scorer with INFER_HTTP=true (its stream idle), CONCURRENCY
 *      clients each POSTing one JSON feature event at a time for SECONDS (bounded by count too):
 *      requests/s and latency p50/p90/p99/max, every status counted;
 *   2. backfill: N preloaded events, `backfill --from earliest --to now`: records/s and peak RSS;
 *   3. score-file: the same number of events as an Avro and as a Parquet file: records/s, peak RSS.
 * Options: --events N (100000) --concurrency C (16) --seconds S (10) --rows R (rows per request, 1).
 * Not part of npm test. JSON to bench/results/serve-<ISO time>.json, a Markdown table to stdout.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EventFactory, ROOT } from '../scripts/lib/feature-events.js';
import { fileEvents, writeAvroEvents, writeParquetEvents } from '../scripts/lib/feature-files.js';
import { produceEvents } from '../scripts/produce.js';
import { stackUp } from '../scripts/stack/stack.js';
import { percentile } from './lib/output.js';
import { ScorerProcess } from './lib/scorer-process.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '100000' }, concurrency: { type: 'string', default: '16' }, seconds: { type: 'string', default: '10' }, rows: { type: 'string', default: '1' } } });
const EVENTS = Number(values.events);
const CONCURRENCY = Number(values.concurrency);
const SECONDS = Number(values.seconds);
const ROWS = Number(values.rows);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const results = resolve(ROOT, 'bench/results');
mkdirSync(results, { recursive: true });
const id = () => Math.random().toString(16).slice(2, 10);

const stack = await stackUp((l) => console.error(`stack: ${l}`));
execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
const baseEnv = { KAFKA_BROKERS: stack.kafkaBrokers, SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, MODEL_PATH: resolve(ROOT, 'models/churn.onnx'), LOG_LEVEL: 'warn' };

/** A job subcommand to its end: its JSON summary, and wall time. */
function job(args: string[], env: Record<string, string>, log: string): Promise<{ summary: Record<string, unknown>; wallSeconds: number }> {
  const started = performance.now();
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [resolve(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => {
      writeFileSync(join(results, `serve-${stamp}-${log}.log`), err);
      if (code !== 0) fail(new Error(`${args[0]} exited ${code}: ${err.slice(-2000)}`));
      else ok({ summary: JSON.parse(out) as Record<string, unknown>, wallSeconds: (performance.now() - started) / 1000 });
    });
  });
}

// 1. OIP load
const oipTopics = { INPUT_TOPIC: `bench-oip-in-${id()}`, OUTPUT_TOPIC: `bench-oip-out-${id()}`, DLQ_TOPIC: `bench-oip-dlq-${id()}`, GROUP_ID: `bench-oip-${id()}` };
const scorer = await ScorerProcess.start(ROOT, { ...baseEnv, ...oipTopics, INFER_HTTP: 'true', HTTP_HOST: '127.0.0.1', INFER_MODE: 'worker' }, join(results, `serve-${stamp}-oip-scorer.log`));
await scorer.waitReady();
const factory = EventFactory.offline({ seed: 2 });
const bodies = Array.from({ length: 500 }, (_, i) => JSON.stringify(ROWS === 1 ? factory.event(i) : Array.from({ length: ROWS }, (_, j) => factory.event(i * ROWS + j))));
const latencies: number[] = [];
const statuses: Record<string, number> = {};
const deadline = performance.now() + SECONDS * 1000;
const maxRequests = 200_000;
let sent = 0;
const oipStart = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline && sent < maxRequests) {
      const body = bodies[sent++ % bodies.length] as string;
      const t = performance.now();
      const res = await fetch(`http://127.0.0.1:${scorer.port}/v2/models/churn/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
  }),
);
const oipSeconds = (performance.now() - oipStart) / 1000;
const oipPeak = scorer.peakRss();
await scorer.stop();
latencies.sort((a, b) => a - b);
const oip = { concurrency: CONCURRENCY, rowsPerRequest: ROWS, requests: latencies.length, statuses, requestsPerSecond: Math.round(latencies.length / oipSeconds), p50Ms: percentile(latencies, 0.5), p90Ms: percentile(latencies, 0.9), p99Ms: percentile(latencies, 0.99), maxMs: latencies.at(-1), peakRssBytes: oipPeak };

// 2. backfill
const bfTopics = { INPUT_TOPIC: `bench-bf-in-${id()}`, DLQ_TOPIC: `bench-bf-dlq-${id()}`, OUTPUT_TOPIC: 'unused', GROUP_ID: `bench-bf-${id()}` };
await produceEvents({ brokers: stack.kafkaBrokers, registryUrl: stack.schemaRegistryUrl, topic: bfTopics.INPUT_TOPIC, partitions: 6, count: EVENTS, rate: 0, poison: 0, model: 'churn' });
const backfill = await job(['backfill', '--from', 'earliest', '--to', 'now', '--output-topic', `bench-bf-out-${id()}`], { ...baseEnv, ...bfTopics }, 'backfill');

// 3. score-file
const dir = mkdtempSync(join(tmpdir(), 'bench-serve-'));
const schema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/feature-event.avsc'), 'utf8')) as { fields: { name: string; type: unknown }[] };
const { events } = fileEvents(EventFactory.offline({ seed: 8 }), EVENTS, { poisonEvery: 1000 });
await writeAvroEvents(join(dir, 'in.avro'), schema as never, events);
const featureFields = (schema.fields.find((f) => f.name === 'features')?.type as { fields: { name: string; type: unknown }[] }).fields;
writeParquetEvents(join(dir, 'in.parquet'), events, Object.fromEntries(featureFields.map((f) => {
  const t = Array.isArray(f.type) ? f.type[1] : f.type;
  return [f.name, t === 'int' ? 'INT32' : t === 'boolean' ? 'BOOLEAN' : 'DOUBLE'];
})) as never);
events.length = 0;
const avroFile = await job(['score-file', join(dir, 'in.avro'), join(dir, 'out.avro')], baseEnv, 'score-avro');
const parquetFile = await job(['score-file', join(dir, 'in.parquet'), join(dir, 'out.parquet')], baseEnv, 'score-parquet');

const mb = (b: unknown) => (typeof b === 'number' ? `${Math.round(b / 1_048_576)} MB` : '?');
const report = { at: new Date().toISOString(), events: EVENTS, oip, backfill, avroFile, parquetFile };
writeFileSync(join(results, `serve-${stamp}.json`), JSON.stringify(report, null, 2));
console.log(`
| pattern | throughput | latency | peak RSS |
|---|---:|---:|---:|
| OIP, ${CONCURRENCY} concurrent clients, ${ROWS} event/request | ${oip.requestsPerSecond} req/s (${latencies.length} requests, statuses ${JSON.stringify(statuses)}) | p50 ${oip.p50Ms?.toFixed(1)} / p90 ${oip.p90Ms?.toFixed(1)} / p99 ${oip.p99Ms?.toFixed(1)} ms | ${mb(oip.peakRssBytes)} |
| backfill, ${EVENTS} events, 6 partitions | ${backfill.summary.recordsPerSecond} records/s (wall ${backfill.wallSeconds.toFixed(1)} s with start-up) | | ${mb(backfill.summary.peakRssBytes)} |
| score-file Avro, ${EVENTS} events | ${avroFile.summary.recordsPerSecond} records/s (wall ${avroFile.wallSeconds.toFixed(1)} s) | | ${mb(avroFile.summary.peakRssBytes)} |
| score-file Parquet, ${EVENTS} events | ${parquetFile.summary.recordsPerSecond} records/s (wall ${parquetFile.wallSeconds.toFixed(1)} s) | | ${mb(parquetFile.summary.peakRssBytes)} |

JSON: bench/results/serve-${stamp}.json`);
process.exit(0);
