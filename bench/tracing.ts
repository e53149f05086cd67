// What tracing costs the chunk processor: ChunkProcessor.process on 5,000-record chunks with its
// stages faked to near-zero cost (so the hooks' cost is not hidden in decoding or inference),
// tracing off, and on with 0 %, 1 % and 100 % of the records carrying a sampled traceparent.
// Spans go to a BatchSpanProcessor whose exporter discards them (the SDK's work, not a network's).
//
//   npx tsx bench/tracing.ts [--rounds 7] [--chunks 200] [--records 5000]
//   npx tsx bench/tracing.ts --root <dir>   # another checkout's src/ (e.g. main, without tracing): off only
//
// Prints a Markdown table: ns per record (median of the rounds, and min..max), minor GCs per
// 1,000 chunks (allocation shows up as scavenges), and the difference to "off".
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { KafkaMessage } from 'kafkajs';
import type { ChunkProcessorOptions } from '../src/stages/chunk.js';
import { createLogger } from '../src/ops/logger.js';
import { oneGeneration } from '../test/helpers/fake-models.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, chunks: { type: 'string', default: '200' }, records: { type: 'string', default: '5000' }, root: { type: 'string' } } });
const [ROUNDS, CHUNKS, RECORDS] = [Number(values.rounds), Number(values.chunks), Number(values.records)];
const root = resolve(values.root ?? resolve(import.meta.dirname, '..'));
const { ChunkProcessor } = (await import(resolve(root, 'src/stages/chunk.ts'))) as typeof import('../src/stages/chunk.js');

const value = Buffer.from('scored-event-bytes');
const outcome = { ok: true as const, score: 0.5, scores: { yes: 0.5 } };
const traceparent = (sampled: boolean) => Buffer.from(`00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-${sampled ? '01' : '00'}`);

/** A chunk of RECORDS records; every `1/share`-th has a sampled traceparent (as kafkajs gives headers: Buffers). */
function chunk(share: number): { topic: string; partition: number; messages: KafkaMessage[] } {
  const every = share === 0 ? Infinity : Math.round(1 / share);
  const messages = Array.from({ length: RECORDS }, (_, i) => ({
    key: Buffer.from(`k${i}`),
    value,
    offset: String(1_000_000 + i),
    timestamp: '0',
    attributes: 0,
    headers: i % every === 0 ? { traceparent: traceparent(true) } : {},
  })) as KafkaMessage[];
  return { topic: 'features', partition: 0, messages };
}

function stages(): Omit<ChunkProcessorOptions, 'tracer'> {
  const rowOf = Int32Array.from({ length: RECORDS }, (_, i) => i);
  const envelopes = Array.from({ length: RECORDS }, (_, i) => ({ event_id: `e${i}`, entity_id: `c${i}`, event_time: 0 }));
  const outcomes = Array.from({ length: RECORDS }, () => outcome);
  const decoded = { features: new Float32Array(RECORDS), rows: RECORDS, rowOf, envelopes, failures: new Map(), schemaIds: [1] };
  const versionStages = {
    decoder: { width: 1, decodeChunk: async () => decoded },
    encoder: { scoredEvent: (e: unknown) => e as never, encode: () => value },
    deadLetterContext: { scorerVersion: '0', modelName: 'm', modelVersion: '1' },
  };
  return {
    models: oneGeneration({ score: async () => outcomes }),
    stages: () => versionStages,
    committer: { commit: async () => undefined },
    outputTopic: 'scores',
    dlqTopic: 'features.dlq',
    logger: createLogger('silent'),
    now: Date.now,
  };
}

let scavenges = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges += 1;
}).observe({ entryTypes: ['gc'] });

async function measure(opts: ChunkProcessorOptions, input: ReturnType<typeof chunk>): Promise<{ ns: number[]; gcs: number }> {
  const p = new ChunkProcessor(opts);
  for (let i = 0; i < 20; i++) await p.process(input); // warm-up (JIT)
  const ns: number[] = [];
  const gc0 = scavenges;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    // One event-loop turn per chunk, as consume.ts gives: the span processor's timer and the GC observer run.
    for (let i = 0; i < CHUNKS; i++) {
      await p.process(input);
      await turn();
    }
    ns.push(((performance.now() - t0) * 1e6) / (CHUNKS * RECORDS));
  }
  await turn();
  return { ns, gcs: ((scavenges - gc0) / (ROUNDS * CHUNKS)) * 1000 };
}

const rows: { mode: string; ns: number[]; gcs: number }[] = [];
rows.push({ mode: values.root ? `off (${values.root})` : 'off', ...(await measure(stages(), chunk(0))) });
if (values.root === undefined) {
  const { startTracing } = await import('../src/ops/tracing.js');
  const discard = { export: (_s: unknown, done: (r: { code: number }) => void) => done({ code: 0 }), shutdown: async () => undefined, forceFlush: async () => undefined };
  for (const [mode, share] of [['on, no record traced', 0], ['on, 1 % traced', 0.01], ['on, 100 % traced', 1]] as const) {
    const tracing = await startTracing({ exporters: ['otlp'], protocol: 'http/protobuf', maxLinks: 128 }, { groupId: 'g', logger: createLogger('silent'), exporter: discard });
    rows.push({ mode, ...(await measure({ ...stages(), tracer: tracing.chunks }, chunk(share))) });
    await tracing.shutdown();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const base = median(rows[0]?.ns ?? [0]);
console.log(`\nChunkProcessor.process, ${RECORDS} records per chunk, ${ROUNDS} rounds x ${CHUNKS} chunks, Node ${process.version}\n`);
console.log('| tracing | ns/record (median) | min..max | minor GCs per 1000 chunks | vs off |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  const m = median(r.ns);
  console.log(`| ${r.mode} | ${m.toFixed(1)} | ${Math.min(...r.ns).toFixed(1)}..${Math.max(...r.ns).toFixed(1)} | ${r.gcs.toFixed(0)} | ${r === rows[0] ? '' : `+${(m - base).toFixed(1)} ns`} |`);
}
