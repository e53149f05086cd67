/**
 * Scored events as tests read them back: decoded from the output topic, and the scores
 * onnxruntime gives for the same rows with no pipeline in between (the reference a test compares
 * the stream's scores with).
 */
import avro from 'avsc';
import * as ort from 'onnxruntime-node';
import type { LoadedModel } from '../../src/model/manifest.js';
import { readSchema } from '../../src/serve/engine.js';
import type { ScoredEvent } from '../../src/stages/encode.js';

/** A scored event as read back (scored_time is taken once per chunk: records of one transaction share it). */
export type Scored = ScoredEvent;

const scoredType = avro.Type.forSchema(readSchema('schemas/scored-event.avsc', 'output'));

/** A scored event's value (Confluent framing: 5 bytes, then the Avro body). */
export const decodeScored = (value: Buffer | null): Scored => scoredType.fromBuffer((value as Buffer).subarray(5)) as Scored;

/** What onnxruntime gives for these rows with `model`: one session.run, its manifest's score column. */
export async function referenceScores(model: LoadedModel, rows: readonly number[][]): Promise<number[]> {
  const session = await ort.InferenceSession.create(model.modelPath);
  try {
    const { input, score } = model.manifest;
    const data = new Float32Array(rows.length * input.width);
    rows.forEach((r, i) => data.set(r, i * input.width));
    const out = await session.run({ [input.name]: new ort.Tensor('float32', data, [rows.length, input.width]) });
    const probs = out[score.output]?.data as Float32Array;
    const columns = probs.length / rows.length;
    return rows.map((_, i) => probs[i * columns + score.column] as number);
  } finally {
    await session.release();
  }
}
