/**
 * Makes one repository version ready to take traffic, off the hot path: read it (manifest,
 * reader schema, hash), check that the manifest fits the reader schema (every feature it reads is
 * a numeric field of the events' `features` record), open its inference sessions and run a real
 * warm-up inference. Shared by the model set (a deployment change) and `models check` (a model
 * team's CI), so both refuse a version for the same reasons, in the same words.
 */
import avro from 'avsc';
import { ScorerError } from '../errors.js';
import { CircuitBreaker, type CircuitOptions } from '../stages/infer/circuit.js';
import { type RowScorer, type RowScorerOptions, createRowScorer } from '../stages/infer/infer.js';
import { Vectorizer } from '../stages/vectorize.js';
import type { LoadedModel } from './manifest.js';
import { loadVersion } from './repository.js';

export interface ScorerHooks {
  onBatch?(info: { rows: number; fillWaitMs: number; inferMs: number }): void;
  /** The version's own circuit opened or closed. */
  onCircuit?(open: boolean): void;
}

/** A version's scorer and its own circuit breaker (a canary's failures never open stable's circuit). */
export interface VersionScorer {
  scorer: RowScorer;
  circuit: CircuitBreaker;
}

/** Opens a version's RowScorer; the wiring passes one built from the configuration (rowScorerFactory). */
export type CreateScorer = (model: LoadedModel, hooks: ScorerHooks) => Promise<VersionScorer>;

/** A version loaded and warmed up: everything the chunk processor needs to score with it. */
export interface PreparedVersion {
  version: string;
  model: LoadedModel;
  scorer: RowScorer;
  /** This version's circuit (readiness and the consume stage's cool-down read the stable one's). */
  circuit: CircuitBreaker;
  /** ms since epoch. */
  loadedAt: number;
}

export type ScorerSettings = Omit<RowScorerOptions, 'model' | 'hooks' | 'circuit'> & { circuit: Omit<CircuitOptions, 'onChange'> };

/** createScorer from the configuration's batch/infer/circuit settings: createRowScorer with a circuit per version. */
export function rowScorerFactory({ circuit: circuitOptions, ...base }: ScorerSettings): CreateScorer {
  return async (model, { onBatch, onCircuit }) => {
    const circuit = new CircuitBreaker({ ...circuitOptions, ...(onCircuit ? { onChange: onCircuit } : {}) });
    const scorer = await createRowScorer({ ...base, model, circuit, ...(onBatch ? { hooks: { onBatch } } : {}) });
    return { scorer, circuit };
  };
}

/** Which step refused a version, for the reason text and `models check`. */
export type PrepareStep = 'load' | 'schema' | 'session' | 'warm-up';

const STEP_TEXT: Record<PrepareStep, string> = {
  load: 'cannot be read',
  schema: 'does not fit its reader schema',
  session: 'cannot open an inference session',
  'warm-up': 'fails its warm-up inference',
};

export class PrepareError extends ScorerError {
  override name = 'PrepareError';
  readonly version: string;
  readonly step: PrepareStep;
  constructor(version: string, step: PrepareStep, cause: unknown) {
    const message = cause instanceof Error ? cause.message : String(cause);
    super(cause instanceof ScorerError ? cause.code : 'MODEL_UNAVAILABLE', `version ${version} ${STEP_TEXT[step]}: ${message}`, { cause });
    this.version = version;
    this.step = step;
  }
}

/** Loads, checks, opens and warms up `version` of the repository `dir`; throws PrepareError. */
export async function prepareVersion(dir: string, version: string, createScorer: CreateScorer, hooks: ScorerHooks = {}, now: () => number = Date.now): Promise<PreparedVersion> {
  let model: LoadedModel;
  try {
    model = loadVersion(dir, version);
  } catch (err) {
    throw new PrepareError(version, 'load', err);
  }
  return prepareModel(model, createScorer, hooks, now);
}

/** Checks, opens and warms up a loaded model (a repository version, or MODEL_PATH's); throws PrepareError. */
export async function prepareModel(model: LoadedModel, createScorer: CreateScorer, hooks: ScorerHooks = {}, now: () => number = Date.now, source: 'MODEL_PATH' | 'MODEL_REPOSITORY' = 'MODEL_REPOSITORY'): Promise<PreparedVersion> {
  const { version } = model.manifest;
  try {
    // Only a check: the chunk processor builds each version's decoder and vectorizer (stages/version-stages.ts).
    new Vectorizer(model.manifest, avro.Type.forSchema(model.readerSchema), source);
  } catch (err) {
    throw new PrepareError(version, 'schema', err);
  }
  let opened: VersionScorer;
  try {
    opened = await createScorer(model, hooks);
  } catch (err) {
    throw new PrepareError(version, 'session', err);
  }
  const { scorer, circuit } = opened;
  try {
    await scorer.warmUp();
  } catch (err) {
    await scorer.close(1_000).catch(() => undefined);
    throw new PrepareError(version, 'warm-up', err);
  }
  return { version, model, scorer, circuit, loadedAt: now() };
}
