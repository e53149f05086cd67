// What tracing costs the chunk processor: ChunkProcessor.process on 5,000-record chunks with its
// stages faked to near-zero cost (so the hooks' cost is not hidden in decoding or inference),
// tracing off, and on with 0 %, 1 % and 100 % of the records carrying a sampled traceparent.
// Spans go to a BatchSpanProcessor whose exporter discards them (the SDK's work, not a network's).
// --baseline adds another checkout's ChunkProcessor (e.g. main before tracing: no hooks at all).
//
//   npx tsx bench/tracing.ts [--rounds 9] [--chunks 100] [--records 5000] [--baseline <dir with src/>]
//
// The modes run interleaved, round by round (in a rotating order), so a busy machine slows them alike. Prints a
// Markdown table: ns per record (median and min of the rounds), the median's difference to "off",
// and bytes allocated per record (heap growth over one chunk right after a full GC; the largest
// of 7 samples, i.e. one during which no scavenge ran).
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { KafkaMessage } from 'kafkajs';
import { createLogger } from '../src/ops/logger.js';
import { startTracing } from '../src/ops/tracing.js';
import { ChunkProcessor, type ChunkProcessorOptions } from '../src/stages/chunk.js';
import { oneGeneration } from '../test/helpers/fake-models.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, chunks: { type: 'string', default: '100' }, records: { type: 'string', default: '5000' }, baseline: { type: 'string' } } });
const [ROUNDS, CHUNKS, RECORDS] = [Number(values.rounds), Number(values.chunks), Number(values.records)];

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

interface Mode {
  mode: string;
  p: { process(c: ReturnType<typeof chunk>): Promise<unknown> };
  input: ReturnType<typeof chunk>;
  ns: number[];
  bytes: number;
}

const modes: Mode[] = [];
const add = (mode: string, p: Mode['p'], input: Mode['input']) => modes.push({ mode, p, input, ns: [], bytes: 0 });
if (values.baseline !== undefined) {
  const Baseline = ((await import(resolve(values.baseline, 'src/stages/chunk.ts'))) as typeof import('../src/stages/chunk.js')).ChunkProcessor;
  add(`baseline: ${values.baseline} (no hooks)`, new Baseline(stages()), chunk(0));
}
add('off', new ChunkProcessor(stages()), chunk(0));
const tracings: { shutdown(): Promise<void> }[] = [];
const discard = { export: (_s: unknown, done: (r: { code: number }) => void) => done({ code: 0 }), shutdown: async () => undefined, forceFlush: async () => undefined };
for (const [mode, share] of [['on, no record traced', 0], ['on, 1 % traced', 0.01], ['on, 100 % traced', 1]] as const) {
  const tracing = await startTracing({ exporters: ['otlp'], protocol: 'http/protobuf', maxLinks: 128 }, { groupId: 'g', logger: createLogger('silent'), exporter: discard });
  tracings.push(tracing);
  add(mode, new ChunkProcessor({ ...stages(), tracer: tracing.chunks }), chunk(share));
}

// Warm-up (JIT), then the modes interleaved round by round: a busy machine slows them alike.
for (const m of modes) for (let i = 0; i < 20; i++) await m.p.process(m.input);
for (let r = 0; r < ROUNDS; r++) {
  // Each round starts with another mode: whoever runs after the 100 % mode inherits its garbage.
  for (const m of [...modes.slice(r % modes.length), ...modes.slice(0, r % modes.length)]) {
    await turn();
    const t0 = performance.now();
    // One event-loop turn per chunk, as consume.ts gives: the span processor's timer and the GC observer run.
    for (let i = 0; i < CHUNKS; i++) {
      await m.p.process(m.input);
      await turn();
    }
    m.ns.push(((performance.now() - t0) * 1e6) / (CHUNKS * RECORDS));
  }
}
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
for (const m of modes) {
  for (let k = 0; k < 7; k++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    await m.p.process(m.input);
    m.bytes = Math.max(m.bytes, (process.memoryUsage().heapUsed - before) / RECORDS);
  }
}
for (const t of tracings) await t.shutdown();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const off = median(modes.find((m) => m.mode === 'off')?.ns ?? [0]);
console.log(`\nChunkProcessor.process, ${RECORDS} records per chunk, ${ROUNDS} rounds x ${CHUNKS} chunks per mode, Node ${process.version}\n`);
console.log('| tracing | ns/record (median) | ns/record (min) | median vs off | bytes allocated/record |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const m of modes) {
  const med = median(m.ns);
  console.log(`| ${m.mode} | ${med.toFixed(1)} | ${Math.min(...m.ns).toFixed(1)} | ${m.mode === 'off' ? '' : `${med >= off ? '+' : ''}${(med - off).toFixed(1)} ns`} | ${m.bytes.toFixed(0)} |`);
}
