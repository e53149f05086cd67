/**
 * The stages that depend on the model version, built once per loaded version: the decoder (its
 * reader schema and feature columns), the encoder (its name, version, threshold and labels) and
 * the dead-letter context (which version failed the record). Kept while the version's
 * LoadedModel lives (a WeakMap): an unloaded version's stages go with it.
 */
import type avro from 'avsc';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { LoadedModel } from '../model/manifest.js';
import type { DeadLetterContext } from './deadletter.js';
import { type ChunkDecoder, RowDecoder } from './decode/row-decoder.js';
import { Encoder, type ScoredEventEncoder } from './encode.js';

export interface VersionStages {
  decoder: ChunkDecoder;
  encoder: ScoredEventEncoder;
  deadLetterContext: DeadLetterContext;
}

export type StagesFor = (model: LoadedModel) => VersionStages;

export interface VersionStagesOptions {
  registry: SchemaRegistry;
  registryTimeoutMs: number;
  /** The scored-event schema and the id it is registered under. */
  outputSchema: avro.Schema;
  outputSchemaId: number;
  scorerVersion: string;
  /** DLQ_MAX_MESSAGE_BYTES: a larger dead letter is cut (src/stages/deadletter.ts). */
  deadLetterMaxBytes: number;
}

export function versionStages({ registry, registryTimeoutMs, outputSchema, outputSchemaId, scorerVersion, deadLetterMaxBytes }: VersionStagesOptions): StagesFor {
  const built = new WeakMap<LoadedModel, VersionStages>();
  return (model) => {
    let stages = built.get(model);
    if (stages === undefined) {
      const { manifest, readerSchema } = model;
      stages = {
        decoder: new RowDecoder({ registry, readerSchema, manifest, registryTimeoutMs }),
        encoder: new Encoder({ schema: outputSchema, schemaId: outputSchemaId, manifest }),
        deadLetterContext: { scorerVersion, modelName: manifest.name, modelVersion: manifest.version, maxMessageBytes: deadLetterMaxBytes },
      };
      built.set(model, stages);
    }
    return stages;
  };
}
