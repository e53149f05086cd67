/**
 * Feature events as files, for `score-file`'s tests and benchmark: an Avro object container file
 * written with the reference schema (so nulls and NaNs are representable bad rows), and a flat
 * Parquet file (one column per feature) written with hyparquet-writer.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import avro from 'avsc';
import { parquetWriteFile } from 'hyparquet-writer';
import type { EventFactory } from './feature-events.js';

export type FileEvent = Record<string, unknown> & { features: Record<string, unknown> };

/** Bad rows the file formats can carry, and the code each must be reported with. */
export const FILE_POISON: { name: string; code: string; spoil(f: Record<string, unknown>): Record<string, unknown> }[] = [
  { name: 'null-feature', code: 'INVALID_FEATURE', spoil: (f) => ({ ...f, avg_session_minutes: null }) },
  { name: 'nan-feature', code: 'INVALID_FEATURE', spoil: (f) => ({ ...f, monthly_charges: Number.NaN }) },
  { name: 'inf-feature', code: 'INVALID_FEATURE', spoil: (f) => ({ ...f, data_usage_gb: Number.POSITIVE_INFINITY }) },
];

/** `count` events; every `poisonEvery`-th (if set) spoiled by the next FILE_POISON kind. */
export function fileEvents(factory: EventFactory, count: number, { poisonEvery = 0, eventTime = 1_700_000_000_000 } = {}): { events: FileEvent[]; bad: Map<number, string> } {
  const events: FileEvent[] = [];
  const bad = new Map<number, string>();
  for (let i = 0; i < count; i++) {
    const e = factory.event(i, eventTime + i) as FileEvent;
    if (poisonEvery > 0 && i % poisonEvery === poisonEvery - 1) {
      const kind = FILE_POISON[bad.size % FILE_POISON.length] as (typeof FILE_POISON)[number];
      e.features = kind.spoil(e.features);
      bad.set(i, kind.code);
    }
    events.push(e);
  }
  return { events, bad };
}

export async function writeAvroEvents(path: string, schema: avro.Schema, events: Iterable<FileEvent>, codec = 'null'): Promise<void> {
  const encoder = new avro.streams.BlockEncoder(schema, { codec });
  const out = createWriteStream(path);
  encoder.pipe(out);
  for (const e of events) if (!encoder.write(e)) await once(encoder, 'drain');
  const closed = once(out, 'close');
  encoder.end();
  await closed;
}

/** A flat Parquet file: event_id, entity_id, event_time, then one column per feature. */
export function writeParquetEvents(path: string, events: readonly FileEvent[], featureTypes: Record<string, 'INT32' | 'DOUBLE' | 'BOOLEAN'>): void {
  parquetWriteFile({
    filename: path,
    rowGroupSize: 20_000,
    columnData: [
      { name: 'event_id', data: events.map((e) => e.event_id), type: 'STRING', nullable: false },
      { name: 'entity_id', data: events.map((e) => e.entity_id), type: 'STRING', nullable: false },
      { name: 'event_time', data: events.map((e) => BigInt(e.event_time as number)), type: 'TIMESTAMP', nullable: false },
      ...Object.entries(featureTypes).map(([name, type]) => ({ name, data: events.map((e) => e.features[name] ?? null), type, nullable: true })),
    ],
  });
}
