// Rows/s through createRowScorer, 'main' vs 'worker' modes, against the raw session.run ceiling.
//
//   npx tsx bench/infer-modes.ts [--seconds 3] [--models churn,mlp] [--batch 512]
//
// The raw ceiling is one session on this thread, session.run back to back on `batch` rows (no
// batcher, no merge copy, no thread hop). The scorer rows come from 8 concurrent callers of
// `batch / 2` rows each, so the batcher merges and splits as it does for Kafka partitions and
// every session always has a full batch waiting. Prints a Markdown table.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { DEFAULTS } from '../src/config.js';
import { CircuitBreaker } from '../src/stages/infer/circuit.js';
import { createRowScorer } from '../src/stages/infer/infer.js';
import type { RowScorerOptions } from '../src/stages/infer/infer.js';
import { loadModel } from '../src/model/manifest.js';
import type { LoadedModel } from '../src/model/manifest.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    models: { type: 'string', default: 'churn,mlp' },
    batch: { type: 'string', default: '512' },
  },
});
const seconds = Number(values.seconds);
const batch = Number(values.batch);
const CALLERS = 8;

const rowsOf = (n: number, width: number): Float32Array => Float32Array.from({ length: n * width }, (_, i) => ((i * 7919) % 1000) / 10);

/** Runs `step` back to back: a warm-up of 1/5 of the time, then counts rows for `seconds`. */
async function measure(step: () => Promise<number>): Promise<number> {
  const warm = performance.now() + seconds * 200;
  while (performance.now() < warm) await step();
  let rows = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) rows += await step();
  return rows / ((performance.now() - start) / 1000);
}

async function raw(model: LoadedModel, intraOpThreads: number): Promise<number> {
  const { input } = model.manifest;
  const session = await ort.InferenceSession.create(model.modelPath, {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const feeds = { [input.name]: new ort.Tensor('float32', rowsOf(batch, input.width), [batch, input.width]) };
  const fetch = [model.manifest.outputs[model.manifest.score.output]?.name ?? ''];
  try {
    return await measure(async () => {
      await session.run(feeds, fetch);
      return batch;
    });
  } finally {
    await session.release();
  }
}

async function scorer(model: LoadedModel, infer: RowScorerOptions['infer']): Promise<{ rowsPerSec: number; meanBatch: number }> {
  let batches = 0;
  let batchRows = 0;
  const s = await createRowScorer({
    model,
    batch: { maxSize: batch, maxDelayMs: 5, idleDispatch: true },
    infer,
    circuit: new CircuitBreaker({ failureThreshold: DEFAULTS.CIRCUIT_FAILURE_THRESHOLD, cooldownMs: DEFAULTS.CIRCUIT_COOLDOWN_MS }),
    hooks: {
      onBatch: ({ rows }) => {
        batches++;
        batchRows += rows;
      },
    },
  });
  await s.warmUp();
  const per = Math.max(1, Math.floor(batch / 2));
  const input = rowsOf(per, model.manifest.input.width);
  // Each step is CALLERS concurrent score() calls: rows of many callers share batches.
  const rowsPerSec = await measure(async () => {
    await Promise.all(Array.from({ length: CALLERS }, () => s.score(input, per)));
    return per * CALLERS;
  });
  await s.close(5_000);
  return { rowsPerSec, meanBatch: batchRows / batches };
}

const file = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const common = { graphOptimization: 'all', spinning: false } as const;
const lines: string[] = [];
for (const name of values.models.split(',')) {
  const model = loadModel(file(`../models/${name}.onnx`));
  const row = (what: string, rps: number, meanBatch?: number): void => {
    lines.push(`| ${name} | ${what} | ${fmt(rps)} | ${meanBatch === undefined ? '-' : meanBatch.toFixed(0)} |`);
    process.stderr.write(`${name} ${what}: ${fmt(rps)} rows/s\n`);
  };
  for (const t of [1, 2]) row(`raw session.run, ${t} intra-op thread(s)`, await raw(model, t));
  const main = await scorer(model, { ...common, mode: 'main', workers: 1, intraOpThreads: 2 });
  row("scorer 'main', 2 intra-op threads", main.rowsPerSec, main.meanBatch);
  const w12 = await scorer(model, { ...common, mode: 'worker', workers: 1, intraOpThreads: 2 });
  row("scorer 'worker', 1 worker x 2 threads", w12.rowsPerSec, w12.meanBatch);
  const w21 = await scorer(model, { ...common, mode: 'worker', workers: 2, intraOpThreads: 1 });
  row("scorer 'worker', 2 workers x 1 thread", w21.rowsPerSec, w21.meanBatch);
}
console.log(`onnxruntime-node ${ort.env.versions.node ?? ''} | node ${process.version} | batch ${batch} | ~${seconds}s per row`);
console.log('');
console.log('| model | configuration | rows/s | mean batch |');
console.log('| --- | --- | ---: | ---: |');
for (const l of lines) console.log(l);
