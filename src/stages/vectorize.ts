/**
 * Vectorize stage: a decoded feature event -> one float32 row in the model's column order.
 * The field list and its order come from the manifest and are fixed at start (the reader schema
 * is ours, so every writer schema resolves to the same shape); per record this is a loop of
 * property reads and checks writing straight into the chunk's Float32Array.
 */
import type avro from 'avsc';
import { ScorerError } from '../errors.js';
import type { Manifest, ModelSource } from '../model/manifest.js';
import { FLOAT32_MAX } from './decode/wire.js';

/** What a scored event carries over from its input event. */
export interface EventEnvelope {
  event_id: string;
  event_time: number;
  entity_id: string;
}

export interface FeatureEvent extends EventEnvelope {
  features: Record<string, unknown>;
}

export class Vectorizer {
  readonly #fields: readonly string[];
  readonly width: number;

  /** The model's feature names in column order. */
  get features(): readonly string[] {
    return this.#fields;
  }

  /**
   * Checks once that every manifest feature exists in the reader schema's `features` record with
   * a numeric or boolean type (CONFIG_INVALID naming `source`, the variable that chose the model).
   */
  constructor(manifest: Manifest, readerType: avro.Type, source: ModelSource = 'MODEL_PATH') {
    this.#fields = manifest.features;
    this.width = manifest.features.length;
    const schema = readerType.schema() as { fields?: { name: string; type: unknown }[] };
    const featuresField = schema.fields?.find((f) => f.name === 'features');
    const record = featuresField?.type as { fields?: { name: string; type: unknown }[] } | undefined;
    if (record?.fields === undefined) {
      throw new ScorerError('CONFIG_INVALID', `${source}: the reader schema has no 'features' record for model ${manifest.name}`);
    }
    const known = new Map(record.fields.map((f) => [f.name, f.type]));
    for (const name of this.#fields) {
      const type = known.get(name);
      if (type === undefined) throw new ScorerError('CONFIG_INVALID', `${source}: model ${manifest.name} reads features.${name}, which the reader schema does not have`);
      const branches = (Array.isArray(type) ? type : [type]).map((t) => (typeof t === 'object' && t !== null ? (t as { type: string }).type : t));
      if (!branches.every((t) => ['null', 'int', 'long', 'float', 'double', 'boolean'].includes(String(t)))) {
        throw new ScorerError('CONFIG_INVALID', `${source}: features.${name} has type ${JSON.stringify(type)}; only numbers and booleans can be model inputs`);
      }
    }
  }

  /**
   * Writes the event's features into out[row*width ...]. Throws INVALID_FEATURE (permanent)
   * naming the first bad field; the caller dead-letters that record and leaves the row unused.
   */
  write(event: FeatureEvent, out: Float32Array, row: number): void {
    const features = event.features;
    const fields = this.#fields;
    const base = row * this.width;
    for (let i = 0; i < fields.length; i++) {
      const name = fields[i] as string;
      const v = features[name];
      let x: number;
      if (typeof v === 'number') x = v;
      else if (typeof v === 'boolean') x = v ? 1 : 0;
      else if (v === null || v === undefined) throw new ScorerError('INVALID_FEATURE', `features.${name} is ${v === null ? 'null' : 'missing'}`);
      else throw new ScorerError('INVALID_FEATURE', `features.${name} has type ${typeof v}, expected a number`);
      if (!Number.isFinite(x)) throw new ScorerError('INVALID_FEATURE', `features.${name} is ${x}`);
      if (x > FLOAT32_MAX || x < -FLOAT32_MAX) throw new ScorerError('INVALID_FEATURE', `features.${name} = ${x} overflows float32`);
      out[base + i] = x;
    }
  }
}
