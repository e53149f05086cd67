/**
 * `kafka-onnx-scorer score-file <in> <out>`: a file of feature events -> a file of scored events
 * in the same format (Avro object container or Parquet, chosen by the input's extension), through
 * the engine every serving pattern shares. Streaming: chunks of CHUNK_RECORDS are decoded, scored
 * (the micro-batcher and workers, WINDOW chunks in flight so decoding overlaps inference) and
 * written in input order, so memory is bounded by WINDOW chunks, not by the file's size.
 *
 * Bad rows are not scored; each becomes one JSON line in the sidecar file (`<out>.errors.jsonl`
 * unless given): its row number, the dead-letter code (src/errors.ts) and message. The output is
 * written to `<out>.partial` and renamed when complete, so a crash never leaves a file that looks whole.
 */
import { once } from 'node:events';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { basename, extname } from 'node:path';
import type avro from 'avsc';
import { type ErrorCode, ScorerError, describeError } from '../errors.js';
import type { DecodedChunk } from '../stages/decode/row-decoder.js';
import { Encoder, type ScoredEvent } from '../stages/encode.js';
import type { RowOutcome } from '../stages/infer/infer.js';
import type { ScoringEngine } from './engine.js';
import { EventRows } from './event-rows.js';
import { createAvroScoredFile, openAvroFeatureFile } from './files/avro-file.js';
import { createParquetScoredFile, openParquetFeatureFile } from './files/parquet-file.js';
import type { FeatureFile, ScoredFile } from './files/types.js';
import type { ProgressState } from './progress.js';

export const CHUNK_RECORDS = 5_000;
export const WINDOW = 4;

export type FileFormat = 'avro' | 'parquet';

export function formatOf(path: string): FileFormat | undefined {
  const ext = extname(path).toLowerCase();
  return ext === '.avro' ? 'avro' : ext === '.parquet' || ext === '.pq' ? 'parquet' : undefined;
}

export interface ScoreFileOptions {
  input: string;
  output: string;
  /** The sidecar of bad rows; default `<output>.errors.jsonl`. */
  errors?: string;
  engine: ScoringEngine;
  /** schemas/scored-event.avsc (the Avro output's schema). */
  outputSchema: avro.Schema;
  chunkRecords?: number;
  window?: number;
  onProgress?(state: ProgressState): void;
  now?: () => number;
}

export interface ScoreFileSummary {
  input: string;
  output: string;
  errors: string;
  format: FileFormat;
  records: number;
  scored: number;
  bad: Partial<Record<ErrorCode, number>>;
  seconds: number;
  recordsPerSecond: number;
  /** Most records read and not yet written at any moment: the streaming bound (≤ window × chunk). */
  maxRecordsInFlight: number;
}

interface Pending {
  chunk: DecodedChunk & { first: number; count: number };
  outcomes: Promise<RowOutcome[]>;
}

export async function scoreFile(opts: ScoreFileOptions): Promise<ScoreFileSummary> {
  const { input, output, engine, now = Date.now } = opts;
  const format = formatOf(input);
  if (format === undefined) throw new ScorerError('CONFIG_INVALID', `score-file: ${input}: expected a .avro or .parquet file`);
  if (formatOf(output) !== format) throw new ScorerError('CONFIG_INVALID', `score-file: ${output}: expected a .${format === 'avro' ? 'avro' : 'parquet'} output file (the input's format)`);
  const errorsPath = opts.errors ?? `${output}.errors.jsonl`;
  const chunkRecords = opts.chunkRecords ?? CHUNK_RECORDS;
  const window = opts.window ?? WINDOW;
  const { manifest } = engine.model;
  const classes = engine.model.manifest.outputs[manifest.score.output]?.classes ?? [];
  const partial = `${output}.partial`;

  let source: FeatureFile;
  let sink: ScoredFile;
  if (format === 'avro') {
    const avroSource = await openAvroFeatureFile(input, { manifest, readerSchema: engine.readerSchema });
    source = avroSource;
    sink = createAvroScoredFile(partial, opts.outputSchema, avroSource.codec);
  } else {
    source = await openParquetFeatureFile(input, new EventRows({ manifest, readerSchema: engine.readerSchema, requireEnvelope: true }));
    sink = createParquetScoredFile(partial, classes);
  }
  const sidecar = createWriteStream(errorsPath);
  const encoder = new Encoder({ schema: opts.outputSchema, schemaId: 0, manifest });
  const topic = basename(input);
  const startedAt = now();
  const bad: Partial<Record<ErrorCode, number>> = {};
  let records = 0;
  let scored = 0;
  let badCount = 0;
  let inFlight = 0;
  let maxRecordsInFlight = 0;

  const report = (row: number, error: ScorerError, eventId?: string) => {
    bad[error.code] = (bad[error.code] ?? 0) + 1;
    badCount += 1;
    const line = JSON.stringify({ row, code: error.code, stage: error.stage, message: describeError(error), ...(eventId ? { event_id: eventId } : {}) });
    return sidecar.write(`${line}\n`);
  };

  const finish = async ({ chunk, outcomes: pending }: Pending) => {
    const outcomes = await pending;
    const scoredTime = now();
    const events: ScoredEvent[] = [];
    let full = false;
    for (let i = 0; i < chunk.count; i++) {
      const row = chunk.rowOf[i] as number;
      const outcome = row >= 0 ? outcomes[row] : undefined;
      const envelope = chunk.envelopes[i];
      if (outcome?.ok === true && envelope !== undefined) {
        events.push(encoder.scoredEvent(envelope, { topic, partition: 0, offset: String(chunk.first + i) }, outcome, scoredTime));
      } else {
        const error = chunk.failures.get(i) ?? (outcome?.ok === false ? outcome.error : new ScorerError('INFERENCE_FAILED', 'no inference result for this row'));
        full = !report(chunk.first + i, error, envelope?.event_id) || full;
      }
    }
    await sink.write(events);
    if (full) await once(sidecar, 'drain');
    scored += events.length;
    records += chunk.count;
    inFlight -= chunk.count;
    opts.onProgress?.({ done: records, fraction: source.fraction(), bad: badCount });
  };

  const queue: Pending[] = [];
  try {
    for await (const chunk of source.chunks(chunkRecords)) {
      inFlight += chunk.count;
      maxRecordsInFlight = Math.max(maxRecordsInFlight, inFlight);
      const outcomes = chunk.rows > 0 ? engine.scorer.score(chunk.features, chunk.rows) : Promise.resolve([]);
      outcomes.catch(() => undefined); // awaited in order by finish(); a rejection must not go unhandled meanwhile
      queue.push({ chunk, outcomes });
      if (queue.length >= window) await finish(queue.shift() as Pending);
    }
    while (queue.length > 0) await finish(queue.shift() as Pending);
    await sink.close();
    sidecar.end();
    await once(sidecar, 'finish');
    renameSync(partial, output);
  } catch (err) {
    await source.close();
    sidecar.destroy();
    rmSync(partial, { force: true });
    throw err;
  }
  await source.close();
  const seconds = (now() - startedAt) / 1000;
  return { input, output, errors: errorsPath, format, records, scored, bad, seconds, recordsPerSecond: Math.round(records / Math.max(seconds, 1e-3)), maxRecordsInFlight };
}
