/**
 * The decode stage as the chunk processor sees it: framed values in, feature rows out.
 *
 * For each record of a chunk, either one row of the model's input (plus the envelope the scored
 * event carries over) or the permanent error that keeps it from being scored. Two paths give the
 * same rows and the same errors:
 *   - fast (fast.ts): the Avro body straight into the row, built once per writer schema id;
 *   - generic (decoder.ts + vectorize.ts): avsc's resolver, then the vectorizer. It runs whenever
 *     the fast path declines a record or a schema, and names the error.
 * Only `prepare` is async (writer schemas from the registry); per record everything is synchronous.
 */
import { type ScorerError, isPermanent } from '../../errors.js';
import type { Manifest } from '../../model/manifest.js';
import { type EventEnvelope, type FeatureEvent, Vectorizer } from '../vectorize.js';
import { Decoder, type DecoderOptions } from './decoder.js';
import { type FastDecoder, buildFastDecoder } from './fast.js';
import { peekSchemaId } from './wire.js';

/** A chunk's records after decoding, indexed like the input. */
export interface DecodedChunk {
  /** Row-major model input of the decodable records: `rows` rows of the model's width. */
  features: Float32Array;
  rows: number;
  /** rowOf[i]: the row of record i, or -1 when it failed. */
  rowOf: Int32Array;
  /** envelopes[i]: what record i's scored event carries over (undefined when it failed). */
  envelopes: (EventEnvelope | undefined)[];
  /** Record index -> why it cannot be scored (permanent errors only). */
  failures: Map<number, ScorerError>;
  /** Distinct writer schema ids in the chunk (for debug logs). */
  schemaIds: number[];
}

/** The decode stage's contract, as the chunk processor needs it. */
export interface ChunkDecoder {
  /** Input row width (the model's feature count). */
  readonly width: number;
  /**
   * Decodes and vectorizes every value. Rejects only with a transient ScorerError (the registry
   * is unavailable) or a bug; every per-record problem is in `failures`.
   */
  decodeChunk(values: readonly (Buffer | null)[]): Promise<DecodedChunk>;
}

/**
 * Every item into one row of `width` through `decodeOne`; an item whose decoding throws a
 * permanent ScorerError is that item's failure, the others go on (anything else is rethrown).
 * Shared by the Kafka decoder and the decoders of already-decoded events (src/serve/event-rows.ts).
 */
export function collectRows<T>(items: readonly T[], width: number, decodeOne: (item: T, out: Float32Array, row: number) => EventEnvelope, schemaIds: number[] = []): DecodedChunk {
  const n = items.length;
  const features = new Float32Array(n * width);
  // Only the envelope is kept: the decoded features (256 doubles for a wide event) would
  // otherwise stay alive until the chunk's transaction commits.
  const envelopes: (EventEnvelope | undefined)[] = new Array(n);
  const rowOf = new Int32Array(n).fill(-1);
  const failures = new Map<number, ScorerError>();
  let rows = 0;
  for (let i = 0; i < n; i++) {
    try {
      envelopes[i] = decodeOne(items[i] as T, features, rows);
      rowOf[i] = rows++;
    } catch (err) {
      if (!isPermanent(err)) throw err;
      failures.set(i, err);
    }
  }
  return { features: features.subarray(0, rows * width), rows, rowOf, envelopes, failures, schemaIds };
}

export interface RowDecoderOptions extends DecoderOptions {
  /** The model: which features, in which column order. */
  manifest: Manifest;
}

export class RowDecoder implements ChunkDecoder {
  readonly #decoder: Decoder;
  readonly #vectorizer: Vectorizer;
  /** Fused decode+vectorize per resolved writer schema id; null: that schema takes the generic path. */
  readonly #fast = new Map<number, FastDecoder | null>();
  readonly width: number;

  constructor({ manifest, ...decoder }: RowDecoderOptions) {
    this.#decoder = new Decoder(decoder);
    this.#vectorizer = new Vectorizer(manifest, this.#decoder.readerType);
    this.width = this.#vectorizer.width;
  }

  async decodeChunk(values: readonly (Buffer | null)[]): Promise<DecodedChunk> {
    const ids = new Set<number>();
    for (const v of values) {
      const id = peekSchemaId(v);
      if (id !== undefined) ids.add(id);
    }
    await this.#decoder.prepare(ids);

    return collectRows(values, this.width, (value, out, row) => this.#decodeOne(value, out, row), [...ids]);
  }

  /** One record into row `row`: the fast path if it takes it, else the generic one (which throws why). */
  #decodeOne(value: Buffer | null, out: Float32Array, row: number): EventEnvelope {
    const fast = this.#fastFor(value);
    const envelope = fast?.decode(value as Buffer, out, row);
    if (envelope !== undefined) return envelope;
    const event = this.#decoder.decode(value) as FeatureEvent;
    this.#vectorizer.write(event, out, row);
    return { event_id: event.event_id, entity_id: event.entity_id, event_time: event.event_time };
  }

  /** The fast decoder of a value's writer schema, if it has one (after prepare). */
  #fastFor(value: Buffer | null): FastDecoder | null {
    const id = peekSchemaId(value);
    if (id === undefined) return null;
    let fast = this.#fast.get(id);
    if (fast === undefined) {
      const writer = this.#decoder.writerType(id);
      if (writer === undefined) return null; // unknown or incompatible: the generic decoder throws why
      fast = buildFastDecoder(writer, this.#decoder.readerType, this.#vectorizer.features) ?? null;
      this.#fast.set(id, fast);
    }
    return fast;
  }
}
