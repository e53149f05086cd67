/**
 * Feature events that arrive already decoded (a JSON request body, a Parquet row) -> feature
 * rows, in the same DecodedChunk shape the Kafka decoder gives, through the same Vectorizer: the
 * same columns, the same float32 conversion, the same INVALID_FEATURE messages
 * ("features.nps_score is null"). Only the envelope checks are this module's own.
 */
import avro from 'avsc';
import { ScorerError } from '../errors.js';
import type { Manifest } from '../model/manifest.js';
import { type DecodedChunk, collectRows } from '../stages/decode/row-decoder.js';
import { type FeatureEvent, Vectorizer } from '../stages/vectorize.js';

export interface EventRowsOptions {
  manifest: Manifest;
  readerSchema: avro.Schema;
  /** true: event_id, entity_id and event_time must be there (files); false: defaults fill them (requests). */
  requireEnvelope: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A timestamp as ms: a number, a Date (Parquet TIMESTAMP) or a bigint (INT64). */
function millis(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Date && Number.isFinite(v.getTime())) return v.getTime();
  return undefined;
}

export class EventRows {
  readonly #vectorizer: Vectorizer;
  readonly #requireEnvelope: boolean;
  readonly width: number;

  constructor({ manifest, readerSchema, requireEnvelope }: EventRowsOptions) {
    this.#vectorizer = new Vectorizer(manifest, avro.Type.forSchema(readerSchema));
    this.#requireEnvelope = requireEnvelope;
    this.width = this.#vectorizer.width;
  }

  /** The model's feature names, in column order. */
  get features(): readonly string[] {
    return this.#vectorizer.features;
  }

  /** One row per valid event; a bad event's permanent error is in `failures` (never thrown). */
  decodeEvents(events: readonly unknown[]): DecodedChunk {
    return collectRows(events, this.width, (raw, out, row) => {
      const event = this.#event(raw);
      this.#vectorizer.write(event, out, row);
      return { event_id: event.event_id, entity_id: event.entity_id, event_time: event.event_time };
    });
  }

  /** A feature event with `features` as a record, or with the feature fields at the top level (a flat table row). */
  #event(raw: unknown): FeatureEvent {
    if (!isObject(raw)) throw new ScorerError('MALFORMED_PAYLOAD', `expected a feature event object, got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}`);
    const features = raw.features === undefined ? raw : raw.features;
    if (!isObject(features)) throw new ScorerError('MALFORMED_PAYLOAD', `features: expected an object of feature fields, got ${features === null ? 'null' : typeof features}`);
    const { event_id, entity_id } = raw;
    const eventTime = raw.event_time === undefined ? undefined : millis(raw.event_time);
    if (this.#requireEnvelope || event_id !== undefined || entity_id !== undefined || raw.event_time !== undefined) {
      if (event_id !== undefined && typeof event_id !== 'string') throw new ScorerError('MALFORMED_PAYLOAD', `event_id: expected a string, got ${typeof event_id}`);
      if (entity_id !== undefined && typeof entity_id !== 'string') throw new ScorerError('MALFORMED_PAYLOAD', `entity_id: expected a string, got ${typeof entity_id}`);
      if (raw.event_time !== undefined && eventTime === undefined) throw new ScorerError('MALFORMED_PAYLOAD', `event_time: expected milliseconds since the epoch, got ${String(raw.event_time)}`);
      if (this.#requireEnvelope) {
        const missing = (['event_id', 'entity_id', 'event_time'] as const).find((k) => raw[k] === undefined || raw[k] === null);
        if (missing !== undefined) throw new ScorerError('MALFORMED_PAYLOAD', `${missing} is missing`);
      }
    }
    // A bigint column (Parquet INT64) is a number to the model, as an Avro long is.
    const normalised: Record<string, unknown> = {};
    for (const name of this.#vectorizer.features) {
      const v = features[name];
      normalised[name] = typeof v === 'bigint' ? Number(v) : v;
    }
    return { event_id: (event_id as string | undefined) ?? '', entity_id: (entity_id as string | undefined) ?? '', event_time: eventTime ?? 0, features: normalised };
  }
}
