/**
 * Which model a job (backfill, score-file) scores with: MODEL_PATH's model, or a version of
 * MODEL_REPOSITORY — `--version` when given, else the deployment's stable version (MODEL_DEPLOYMENT,
 * or the repository's highest release), so a backfill can re-score last week's events with a
 * candidate before it is promoted. With MODEL_PATH, `--version` must name its version (a job that
 * asks for another version is refused, not silently run with the wrong one).
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';
import { ScorerError } from '../errors.js';
import { parseDeployment } from '../model/deployment.js';
import { type LoadedModel, loadModel } from '../model/manifest.js';
import { defaultVersion, loadVersion, scanRepository } from '../model/repository.js';
import { UsageError } from './command.js';

export function chooseModel(config: Pick<Config, 'model'>, version?: string): LoadedModel {
  const source = config.model;
  if (source.kind === 'file') {
    const model = loadModel(source.path);
    if (version !== undefined && version !== model.manifest.version) {
      throw new UsageError(`--version: expected ${model.manifest.version} (the version of MODEL_PATH's model ${model.manifest.name}; other versions need MODEL_REPOSITORY), got '${version}'`);
    }
    return model;
  }
  const scan = scanRepository(source.repository);
  if (version !== undefined) {
    if (!scan.versions.includes(version)) throw new UsageError(`--version: expected a version of MODEL_REPOSITORY ${source.repository} (${scan.versions.join(', ')}), got '${version}'`);
    return loadVersion(source.repository, version);
  }
  if (source.deployment === undefined) return loadVersion(source.repository, defaultVersion(scan));
  let text: string;
  try {
    text = readFileSync(source.deployment, 'utf8');
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `MODEL_DEPLOYMENT: cannot read ${source.deployment}: ${(err as Error).message}`);
  }
  return loadVersion(source.repository, parseDeployment(text, { file: source.deployment, versions: scan.versions }).stable);
}
