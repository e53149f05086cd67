/**
 * Which model a job scores with. Today: MODEL_PATH's model, and `--version` must name its
 * version (a backfill that asks for another version is refused, not silently run with the
 * wrong one). This is the seam for the model repository (MODEL_REPOSITORY, src/model/): there a
 * version picks its folder, so a backfill can re-score last week's events with a candidate.
 */
import type { Config } from '../config.js';
import { type LoadedModel, loadModel } from '../model/manifest.js';
import { UsageError } from './command.js';

export function chooseModel(config: Pick<Config, 'model'>, version?: string): LoadedModel {
  const model = loadModel(config.model.path);
  if (version !== undefined && version !== model.manifest.version) {
    throw new UsageError(`--version: expected ${model.manifest.version} (the version of MODEL_PATH's model ${model.manifest.name}; other versions need a model repository), got '${version}'`);
  }
  return model;
}
