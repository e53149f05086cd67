#!/usr/bin/env node
// Raw onnxruntime-node throughput of the reference models, outside Kafka.
//
//   node models/measure.mjs [--seconds 2] [--models churn,mlp] [--batches 1,32,128,512] [--threads 2,1]
//
// For each model, intra-op thread count and batch size it runs session.run()
// back to back (one call in flight, as the scorer does per partition) for
// about --seconds after a short warm-up, and prints rows/s and the mean
// latency of one call as a Markdown table. Inputs are the fixture rows of
// test/fixtures/<model>-expected.json, repeated to fill the batch.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    models: { type: 'string', default: 'churn,mlp' },
    batches: { type: 'string', default: '1,32,128,512' },
    threads: { type: 'string', default: '2,1' },
  },
});
const seconds = Number(values.seconds);
const models = values.models.split(',');
const batches = values.batches.split(',').map(Number);
const threads = values.threads.split(',').map(Number);

const file = (rel) => fileURLToPath(new URL(rel, import.meta.url));

function inputFor(fixture, width, batch) {
  const data = new Float32Array(batch * width);
  for (let r = 0; r < batch; r++) {
    data.set(fixture.rows[r % fixture.rows.length], r * width);
  }
  return new ort.Tensor('float32', data, [batch, width]);
}

const results = [];
for (const name of models) {
  const manifest = JSON.parse(readFileSync(file(`./${name}.manifest.json`), 'utf8'));
  const fixture = JSON.parse(readFileSync(file(`../test/fixtures/${name}-expected.json`), 'utf8'));
  const width = manifest.input.width;
  for (const intra of threads) {
    const session = await ort.InferenceSession.create(file(`./${name}.onnx`), {
      intraOpNumThreads: intra,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
    for (const batch of batches) {
      const feeds = { [manifest.input.name]: inputFor(fixture, width, batch) };
      const fetches = [manifest.outputs.probabilities.name, manifest.outputs.label.name];
      const warmUntil = performance.now() + Math.min(300, seconds * 150);
      while (performance.now() < warmUntil) await session.run(feeds, fetches);
      let calls = 0;
      const start = performance.now();
      const end = start + seconds * 1000;
      let now = start;
      while (now < end) {
        await session.run(feeds, fetches);
        calls++;
        now = performance.now();
      }
      const elapsed = (now - start) / 1000;
      const row = {
        model: name,
        intraOpNumThreads: intra,
        batch,
        rowsPerSec: (calls * batch) / elapsed,
        msPerCall: (elapsed * 1000) / calls,
      };
      results.push(row);
      process.stderr.write(`${name} intra=${intra} batch=${batch}: ${Math.round(row.rowsPerSec)} rows/s\n`);
    }
    await session.release();
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');
console.log(`onnxruntime-node ${ort.env.versions?.node ?? ''} | node ${process.version} | ~${seconds}s per configuration`);
console.log('');
console.log('| model | intraOpNumThreads | batch | rows/s | ms/call |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of results) {
  console.log(`| ${r.model} | ${r.intraOpNumThreads} | ${r.batch} | ${fmt(r.rowsPerSec)} | ${r.msPerCall.toFixed(3)} |`);
}
