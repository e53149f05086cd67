/**
 * The model manifest: the JSON file beside the .onnx (`<name>.onnx` -> `<name>.manifest.json`)
 * that says which event fields feed which input columns, and what the outputs mean.
 * Loaded and validated once at start; a bad manifest stops the process (CONFIG_INVALID).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ScorerError } from '../errors.js';

export interface OutputSpec {
  /** Output tensor name in the ONNX graph. */
  name: string;
  dtype: 'float32' | 'int64';
  shape?: number[];
  /** Class names by column, for probability outputs. */
  classes?: string[];
}

export interface Manifest {
  name: string;
  version: string;
  description?: string;
  input: { name: string; dtype: 'float32'; width: number };
  /** Field names inside the event's `features` record, in input-column order. */
  features: string[];
  outputs: Record<string, OutputSpec>;
  /** The primary score: which output and which column of it. */
  score: { output: string; column: number; meaning?: string };
  /** Label = score >= threshold ? labels.atOrAbove : labels.below. Absent: no label. */
  threshold?: number;
  labels?: { below: string; atOrAbove: string };
  /** Repo-relative path of the reader schema this model is meant for. */
  eventSchema?: string;
}

export interface LoadedModel {
  manifest: Manifest;
  modelPath: string;
  manifestPath: string;
  /** sha256 of the .onnx file, for the model-info metric and the start-up log. */
  sha256: string;
}

export function manifestPathFor(modelPath: string): string {
  return join(dirname(modelPath), `${basename(modelPath).replace(/\.onnx$/i, '')}.manifest.json`);
}

function bad(manifestPath: string, what: string): never {
  throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: manifest ${manifestPath}: ${what}`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

export function validateManifest(raw: unknown, manifestPath: string): Manifest {
  if (!isObj(raw)) bad(manifestPath, 'expected a JSON object');
  const { name, version, input, features, outputs, score, threshold, labels } = raw;
  if (!isStr(name)) bad(manifestPath, `name: expected a non-empty string, got ${JSON.stringify(name)}`);
  if (!isStr(version)) bad(manifestPath, `version: expected a non-empty string, got ${JSON.stringify(version)}`);
  if (!isObj(input) || !isStr(input.name) || input.dtype !== 'float32' || !Number.isInteger(input.width) || (input.width as number) < 1) {
    bad(manifestPath, `input: expected { name, dtype: "float32", width: positive integer }, got ${JSON.stringify(input)}`);
  }
  if (!Array.isArray(features) || features.length === 0 || !features.every(isStr)) bad(manifestPath, 'features: expected a non-empty array of field names');
  if (features.length !== input.width) bad(manifestPath, `features: ${features.length} names but input.width is ${String(input.width)}`);
  if (new Set(features).size !== features.length) bad(manifestPath, 'features: names must be unique');
  if (!isObj(outputs) || Object.keys(outputs).length === 0) bad(manifestPath, 'outputs: expected an object of output specs');
  for (const [key, spec] of Object.entries(outputs)) {
    if (!isObj(spec) || !isStr(spec.name) || (spec.dtype !== 'float32' && spec.dtype !== 'int64')) {
      bad(manifestPath, `outputs.${key}: expected { name, dtype: "float32" | "int64" }`);
    }
  }
  if (!isObj(score) || !isStr(score.output) || !Number.isInteger(score.column) || (score.column as number) < 0) {
    bad(manifestPath, 'score: expected { output, column: integer >= 0 }');
  }
  const scoreOut = outputs[score.output];
  if (!isObj(scoreOut) || scoreOut.dtype !== 'float32') bad(manifestPath, `score.output: "${score.output}" must name a float32 entry of outputs`);
  if (threshold !== undefined && (typeof threshold !== 'number' || !Number.isFinite(threshold))) bad(manifestPath, 'threshold: expected a finite number');
  if (labels !== undefined && (!isObj(labels) || !isStr(labels.below) || !isStr(labels.atOrAbove))) bad(manifestPath, 'labels: expected { below, atOrAbove }');
  if ((threshold === undefined) !== (labels === undefined)) bad(manifestPath, 'threshold and labels go together');
  return raw as unknown as Manifest;
}

export function loadModel(modelPath: string): LoadedModel {
  if (!existsSync(modelPath)) throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: no file at ${modelPath}`);
  const manifestPath = manifestPathFor(modelPath);
  if (!existsSync(manifestPath)) throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: the manifest ${manifestPath} is missing (it must sit beside the .onnx file)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: manifest ${manifestPath} is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = validateManifest(raw, manifestPath);
  const sha256 = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
  return { manifest, modelPath, manifestPath, sha256 };
}
