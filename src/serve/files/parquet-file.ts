/**
 * Parquet files through hyparquet (reader) and hyparquet-writer (writer): pure JavaScript, no
 * native or wasm build, no dependencies beyond each other, actively maintained, and both stream:
 * the reader reads row ranges by byte range from the file (pages found through the offset index),
 * the writer appends a row group at a time and flushes it to disk.
 *
 * Input rows are feature events, either nested (`features` a struct column) or flat (the feature
 * fields as top-level columns); they go through the stream's vectorizer (serve/event-rows.ts).
 * Output: one flat row per scored event (columns in SCORED_COLUMNS; `scores_<class>` per class).
 * Memory: one slice of input rows and one row group of output at a time.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { FileMetaData, SchemaElement } from 'hyparquet';
import { ParquetWriter, fileWriter } from 'hyparquet-writer';
import { ScorerError } from '../../errors.js';
import type { ScoredEvent } from '../../stages/encode.js';
import type { EventRows } from '../event-rows.js';
import type { FeatureFile, ScoredFile } from './types.js';

/** Rows read per parquetReadObjects call: bounds memory whatever the file's row-group size. */
const READ_SLICE_ROWS = 50_000;
/** Rows per written row group (one flush each). */
const WRITE_GROUP_ROWS = 50_000;

export async function openParquetFeatureFile(path: string, rows: EventRows): Promise<FeatureFile> {
  const file = await asyncBufferFromFile(path);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `score-file: ${path} is not a Parquet file: ${(err as Error).message}`);
  }
  const total = Number(metadata.num_rows);
  const top = new Set(parquetSchema(metadata).children.map((c) => c.element.name));
  const wanted = ['event_id', 'entity_id', 'event_time', ...(top.has('features') ? ['features'] : rows.features)];
  const columns = wanted.filter((c) => top.has(c));
  let done = 0;

  async function* chunks(maxRecords: number) {
    for (let start = 0; start < total; start += READ_SLICE_ROWS) {
      const slice = await parquetReadObjects({ file, metadata, columns, rowStart: start, rowEnd: Math.min(start + READ_SLICE_ROWS, total) });
      for (let i = 0; i < slice.length; i += maxRecords) {
        const part = slice.slice(i, i + maxRecords);
        done = start + i + part.length;
        yield { ...rows.decodeEvents(part), first: start + i, count: part.length };
      }
    }
  }
  return { chunks, fraction: () => (total === 0 ? 1 : done / total), close: async () => undefined };
}

const str = (name: string, optional = false): SchemaElement => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: optional ? 'OPTIONAL' : 'REQUIRED' });
const ts = (name: string): SchemaElement => ({ name, type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', repetition_type: 'REQUIRED' });
const dbl = (name: string): SchemaElement => ({ name, type: 'DOUBLE', repetition_type: 'REQUIRED' });

/** The output columns, in order, with how each is taken from a scored event. */
function scoredColumns(classes: readonly string[]): { element: SchemaElement; value: (e: ScoredEvent) => unknown }[] {
  return [
    { element: str('event_id'), value: (e) => e.event_id },
    { element: str('entity_id'), value: (e) => e.entity_id },
    { element: str('source_topic'), value: (e) => e.source.topic },
    { element: { name: 'source_partition', type: 'INT32', repetition_type: 'REQUIRED' }, value: (e) => e.source.partition },
    { element: { name: 'source_offset', type: 'INT64', repetition_type: 'REQUIRED' }, value: (e) => BigInt(e.source.offset) },
    { element: ts('event_time'), value: (e) => e.event_time },
    { element: ts('scored_time'), value: (e) => e.scored_time },
    { element: str('model_name'), value: (e) => e.model.name },
    { element: str('model_version'), value: (e) => e.model.version },
    { element: dbl('score'), value: (e) => e.score },
    { element: str('label', true), value: (e) => e.label },
    ...classes.map((c) => ({ element: dbl(`scores_${c}`), value: (e: ScoredEvent) => e.scores[c] ?? Number.NaN })),
  ];
}

export function createParquetScoredFile(path: string, classes: readonly string[]): ScoredFile {
  const columns = scoredColumns(classes);
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }, ...columns.map((c) => c.element)];
  const writer = new ParquetWriter({ writer: fileWriter(path), schema, createdBy: 'kafka-onnx-scorer score-file' });
  let pending: ScoredEvent[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    const columnData = columns.map(({ element, value }) => ({ name: element.name, data: pending.map(value) }));
    await writer.write({ columnData, rowGroupSize: pending.length });
    pending = [];
  };
  return {
    async write(events) {
      for (const e of events) pending.push(e);
      if (pending.length >= WRITE_GROUP_ROWS) await flush();
    },
    async close() {
      await flush();
      writer.finish();
    },
  };
}
