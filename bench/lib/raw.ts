/**
 * The raw inference ceiling: one onnxruntime-node session with exactly the scorer's session
 * options (src/stages/infer/worker.ts sessionOptions), session.run back to back on this thread, one call
 * in flight, the score output fetched (as the scorer does). No Kafka, no decoding, no batcher.
 */
import * as ort from 'onnxruntime-node';
import { type SessionConfig, sessionOptions } from '../../src/stages/infer/worker.js';
import type { LoadedModel } from '../../src/model/manifest.js';

export interface RawPoint {
  batch: number;
  rowsPerSec: number;
  msPerCall: number;
}

/** Deterministic inputs in [-1, 1): the same for every run, no denormals. */
const rowsOf = (n: number, width: number): Float32Array => Float32Array.from({ length: n * width }, (_, i) => ((i * 7919) % 1000) / 500 - 1);

export async function rawThroughput(model: LoadedModel, config: SessionConfig, batches: number[], seconds: number): Promise<RawPoint[]> {
  const { input, outputs, score } = model.manifest;
  const output = outputs[score.output]?.name;
  if (output === undefined) throw new Error(`manifest of ${model.modelPath}: score.output names no output`);
  const session = await ort.InferenceSession.create(model.modelPath, sessionOptions(config));
  const points: RawPoint[] = [];
  try {
    for (const batch of batches) {
      const feeds = { [input.name]: new ort.Tensor('float32', rowsOf(batch, input.width), [batch, input.width]) };
      const warm = performance.now() + Math.min(400, seconds * 200);
      while (performance.now() < warm) await session.run(feeds, [output]);
      let calls = 0;
      const start = performance.now();
      const end = start + seconds * 1000;
      let now = start;
      while (now < end) {
        await session.run(feeds, [output]);
        calls++;
        now = performance.now();
      }
      const elapsed = (now - start) / 1000;
      points.push({ batch, rowsPerSec: Math.round((calls * batch) / elapsed), msPerCall: Math.round(((elapsed * 1000) / calls) * 1000) / 1000 });
    }
  } finally {
    await session.release();
  }
  return points;
}
