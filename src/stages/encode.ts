/**
 * Encode stage: a scored row -> the Confluent-framed Avro value of the scored event
 * (schemas/scored-event.avsc), registered in the registry under `<OUTPUT_TOPIC>-value` at start.
 * The 5-byte header is built once; per record this is one avsc toBuffer and one concat.
 */
import avro from 'avsc';
import { header } from './decode/wire.js';
import type { RowOutcome } from './infer/infer.js';
import type { Manifest } from '../model/manifest.js';
import type { EventEnvelope } from './vectorize.js';

export interface Source {
  topic: string;
  partition: number;
  offset: string;
}

export interface ScoredEvent {
  event_id: string;
  entity_id: string;
  source: { topic: string; partition: number; offset: number };
  event_time: number;
  scored_time: number;
  model: { name: string; version: string };
  score: number;
  scores: Record<string, number>;
  label: string | null;
}

/** The encode stage's contract, as the chunk processor needs it. */
export interface ScoredEventEncoder {
  /** The scored event of one input event and its row's outcome. */
  scoredEvent(event: EventEnvelope, source: Source, outcome: Extract<RowOutcome, { ok: true }>, scoredTime: number): ScoredEvent;
  /** Its Confluent-framed Avro value. */
  encode(value: ScoredEvent): Buffer;
}

export interface EncoderOptions {
  /** The output schema (schemas/scored-event.avsc) and the id it was registered under. */
  schema: avro.Schema;
  schemaId: number;
  /** The model whose scores are encoded: name, version, threshold and labels. */
  manifest: Manifest;
}

export class Encoder implements ScoredEventEncoder {
  readonly #type: avro.Type;
  readonly #header: Buffer;
  readonly #model: { name: string; version: string };
  readonly #threshold: number | undefined;
  readonly #labels: { below: string; atOrAbove: string } | undefined;

  constructor({ schema, schemaId, manifest }: EncoderOptions) {
    this.#type = avro.Type.forSchema(schema);
    this.#header = header(schemaId);
    this.#model = { name: manifest.name, version: manifest.version };
    this.#threshold = manifest.threshold;
    this.#labels = manifest.labels;
  }

  scoredEvent(event: EventEnvelope, source: Source, outcome: Extract<RowOutcome, { ok: true }>, scoredTime: number): ScoredEvent {
    const { score, scores } = outcome;
    const label = this.#threshold === undefined || this.#labels === undefined ? null : score >= this.#threshold ? this.#labels.atOrAbove : this.#labels.below;
    return {
      event_id: event.event_id,
      entity_id: event.entity_id,
      source: { topic: source.topic, partition: source.partition, offset: Number(source.offset) },
      event_time: event.event_time,
      scored_time: scoredTime,
      model: this.#model,
      score,
      scores,
      label,
    };
  }

  encode(value: ScoredEvent): Buffer {
    return Buffer.concat([this.#header, this.#type.toBuffer(value)]);
  }
}
