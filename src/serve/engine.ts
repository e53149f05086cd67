/**
 * The scoring engine every serving pattern shares: a loaded model, its reader schema, the circuit
 * breaker and one warmed-up RowScorer (micro-batcher + inference workers). The stream (app.ts),
 * a backfill, a file and Open Inference Protocol requests all score through an engine built
 * here, so they run the same decode -> vectorize -> batch -> infer code and give the same scores.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type avro from 'avsc';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ScorerError } from '../errors.js';
import type { Lease } from '../model/generation.js';
import type { LoadedModel } from '../model/manifest.js';
import { singleModel } from '../model/single.js';
import type { Metrics } from '../ops/metrics.js';
import { CircuitBreaker } from '../stages/infer/circuit.js';
import { type RowScorer, createRowScorer } from '../stages/infer/infer.js';
import { PACKAGE_ROOT } from '../version.js';

export interface ScoringEngine {
  model: LoadedModel;
  /** The reader schema the model's events are decoded with (manifest `eventSchema`). */
  readerSchema: avro.Schema;
  circuit: CircuitBreaker;
  /** Warmed up: one real inference answered on every session. */
  scorer: RowScorer;
}

export interface EngineOptions {
  config: Pick<Config, 'batch' | 'infer' | 'circuit'>;
  model: LoadedModel;
  /** Batch sizes, fill waits and inference times go to these histograms; the circuit state to its gauge. */
  metrics: Pick<Metrics, 'batchSize' | 'batchFillWait' | 'inferenceDuration' | 'circuitOpen'>;
  logger: Logger;
}

/** A JSON schema file of the package (or an absolute path); CONFIG_INVALID naming MODEL_PATH when unreadable. */
export function readSchema(path: string, what: string): avro.Schema {
  const file = isAbsolute(path) ? path : resolve(PACKAGE_ROOT, path);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as avro.Schema;
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: cannot read the ${what} schema ${file}: ${(err as Error).message}`);
  }
}

/** Loads the model's sessions and warms them up; the caller closes `scorer` (it owns the workers). */
export async function startEngine({ config, model, metrics, logger }: EngineOptions): Promise<ScoringEngine> {
  const { manifest } = model;
  const readerSchema = model.readerSchema; // eventSchema resolved against the manifest's folder (model/manifest.ts)
  const circuit = new CircuitBreaker({
    ...config.circuit,
    onChange: (open) => {
      metrics.circuitOpen.set(open ? 1 : 0);
      logger.warn({ open }, open ? 'circuit opened: whole batches keep failing; consumption paused' : 'circuit closed');
    },
  });
  const scorer = await createRowScorer({
    model,
    batch: config.batch,
    infer: config.infer,
    circuit,
    hooks: {
      onBatch: ({ rows, fillWaitMs, inferMs }) => {
        metrics.batchSize.observe(rows);
        metrics.batchFillWait.observe(fillWaitMs / 1000);
        metrics.inferenceDuration.observe({ model: manifest.name }, inferMs / 1000);
      },
    },
  });
  try {
    await scorer.warmUp();
  } catch (err) {
    await scorer.close(0);
    throw err;
  }
  return { model, readerSchema, circuit, scorer };
}

/** The engine as the chunk processor's model source: one generation, stable only, for the job's life. */
export function engineModels({ model, scorer, circuit }: ScoringEngine): { acquire(): Lease } {
  return singleModel({ version: model.manifest.version, model, scorer, circuit });
}
