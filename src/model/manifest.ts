/**
 * The model manifest: the JSON file beside the .onnx (`<name>.onnx` -> `<name>.manifest.json`,
 * or `manifest.json` in a repository version folder) that says which event fields feed which
 * input columns, what the outputs mean, and which reader schema the events are decoded with.
 * Validated when loaded; a bad manifest stops the process at start (CONFIG_INVALID) and is a
 * refused deployment at run time.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type avro from 'avsc';
import { ScorerError } from '../errors.js';
import { PACKAGE_ROOT } from '../version.js';

/** The reader schema of a model whose manifest names none: the reference feature event. */
export const DEFAULT_EVENT_SCHEMA = resolve(PACKAGE_ROOT, 'schemas/feature-event.avsc');

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
  /**
   * The reader schema this model is meant for: a path relative to the manifest's folder (or
   * absolute). Absent: DEFAULT_EVENT_SCHEMA. Manifests written before model repositories gave a
   * path from the package root; that still works when no such file is beside the manifest.
   */
  eventSchema?: string;
}

export interface LoadedModel {
  manifest: Manifest;
  modelPath: string;
  manifestPath: string;
  /** sha256 of the .onnx file, for the model-info metric and the start-up log. */
  sha256: string;
  /** Absolute path of the reader schema (eventSchema resolved, see Manifest). */
  eventSchemaPath: string;
  /** The reader schema, parsed (the decoder and vectorizer are built from it). */
  readerSchema: avro.Schema;
}

/** Where a message comes from: the variable that pointed at the model. */
export type ModelSource = 'MODEL_PATH' | 'MODEL_REPOSITORY';

export interface LoadModelOptions {
  /** Default: `<name>.manifest.json` beside the .onnx file (manifestPathFor). */
  manifestPath?: string;
  /** Names the variable in messages; default MODEL_PATH. */
  source?: ModelSource;
}

export function manifestPathFor(modelPath: string): string {
  return join(dirname(modelPath), `${basename(modelPath).replace(/\.onnx$/i, '')}.manifest.json`);
}

function badManifest(manifestPath: string, what: string, source: ModelSource): never {
  throw new ScorerError('CONFIG_INVALID', `${source}: manifest ${manifestPath}: ${what}`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

export function validateManifest(raw: unknown, manifestPath: string, source: ModelSource = 'MODEL_PATH'): Manifest {
  // Typed on the declaration, so the compiler knows each call ends the function (narrowing).
  const bad: (path: string, what: string) => never = (path, what) => badManifest(path, what, source);
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
  if (raw.eventSchema !== undefined && !isStr(raw.eventSchema)) bad(manifestPath, `eventSchema: expected a path, got ${JSON.stringify(raw.eventSchema)}`);
  return raw as unknown as Manifest;
}

/** Absolute path of a manifest's reader schema (see Manifest.eventSchema), or throws CONFIG_INVALID. */
export function resolveEventSchema(eventSchema: string | undefined, manifestPath: string, source: ModelSource = 'MODEL_PATH'): string {
  if (eventSchema === undefined) return DEFAULT_EVENT_SCHEMA;
  const beside = isAbsolute(eventSchema) ? eventSchema : resolve(dirname(manifestPath), eventSchema);
  if (existsSync(beside)) return beside;
  // The package-root rule of manifests older than repositories (models/*.manifest.json here).
  const legacy = resolve(PACKAGE_ROOT, eventSchema);
  if (!isAbsolute(eventSchema) && existsSync(legacy)) return legacy;
  return badManifest(manifestPath, `eventSchema: no file at ${beside} (the path is relative to the manifest's folder)`, source);
}

function readJson(path: string, what: string, manifestPath: string, source: ModelSource): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return badManifest(manifestPath, `${what} ${path} is not readable JSON: ${(err as Error).message}`, source);
  }
}

/** Reads and validates a model's manifest and reader schema and hashes the .onnx; no session yet. */
export function loadModel(modelPath: string, { manifestPath = manifestPathFor(modelPath), source = 'MODEL_PATH' }: LoadModelOptions = {}): LoadedModel {
  if (!existsSync(modelPath)) throw new ScorerError('CONFIG_INVALID', `${source}: no file at ${modelPath}`);
  if (!existsSync(manifestPath)) throw new ScorerError('CONFIG_INVALID', `${source}: the manifest ${manifestPath} is missing (it must sit beside the .onnx file)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `${source}: manifest ${manifestPath} is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = validateManifest(raw, manifestPath, source);
  const eventSchemaPath = resolveEventSchema(manifest.eventSchema, manifestPath, source);
  const readerSchema = readJson(eventSchemaPath, 'the reader schema', manifestPath, source) as avro.Schema;
  const sha256 = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
  return { manifest, modelPath, manifestPath, sha256, eventSchemaPath, readerSchema };
}
