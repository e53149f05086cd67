/**
 * Open Inference Protocol v2 request bodies -> model input rows, as pure functions (no HTTP, no
 * model): https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
 *
 * Three shapes are accepted, all ending in the same float32 rows the stream builds:
 *   1. the feature tensor: one input named as the model's input (the churn model's is "features"), shape
 *      [rows, width] (or [width] for one row), any numeric or BOOL datatype, data flat or nested;
 *   2. one input per feature field (the columnar form MLServer's pandas codec uses), shape [rows];
 *   3. not OIP but what a service has at hand: a feature event (`{"features": {...}}`), or an
 *      array of them, with fields by name (serve/event-rows.ts, the stream's vectorizer).
 * A problem is a RequestError (HTTP 400) whose message names the input, the row and the field.
 */
import { FLOAT32_MAX } from '../stages/decode/wire.js';
import type { DecodedChunk } from '../stages/decode/row-decoder.js';
import type { EventRows } from './event-rows.js';

export class RequestError extends Error {
  override name = 'RequestError';
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

/** OIP tensor datatypes whose JSON data are numbers (or booleans) the model can take. */
const NUMERIC = new Set(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64']);

export interface InferInput {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown;
}

export interface ParsedRequest {
  id?: string;
  /** Output names asked for (undefined: all). */
  outputs?: string[];
  /** The rows, and (for the event forms) the envelopes and per-row failures: the decoder's shape. */
  chunk: DecodedChunk;
}

export interface ModelInput {
  /** The model's input tensor name (manifest `input.name`). */
  name: string;
  width: number;
  rows: EventRows;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Nested JSON arrays (row-major) flattened; a non-array is one element. */
function flatten(data: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(data)) for (const d of data) flatten(d, out);
  else out.push(data);
  return out;
}

function checkInput(raw: unknown, i: number): InferInput {
  if (!isObject(raw)) throw new RequestError(`inputs[${i}]: expected an object with name, shape, datatype and data`);
  const { name, shape, datatype, data } = raw;
  if (typeof name !== 'string' || name === '') throw new RequestError(`inputs[${i}].name: expected a non-empty string`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) throw new RequestError(`inputs[${i}] (${name}).shape: expected an array of non-negative integers`);
  if (typeof datatype !== 'string' || !NUMERIC.has(datatype)) throw new RequestError(`inputs[${i}] (${name}).datatype: expected one of ${[...NUMERIC].join(', ')}, got ${JSON.stringify(datatype)}`);
  if (data === undefined) throw new RequestError(`inputs[${i}] (${name}).data: missing`);
  return { name, shape: shape as number[], datatype, data };
}

/** One JSON value as a float32 model input, exactly as the stream's vectorizer converts it. */
function toFeature(v: unknown, where: () => string): number {
  const x = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  if (typeof x !== 'number') throw new RequestError(`${where()}: expected a number, got ${v === null ? 'null' : typeof v}`);
  if (!Number.isFinite(x) || x > FLOAT32_MAX || x < -FLOAT32_MAX) throw new RequestError(`${where()}: ${x} is not a finite float32`);
  return x;
}

function tensorRows(input: InferInput, model: ModelInput): DecodedChunk {
  const { width } = model;
  const { shape, name } = input;
  const rows = shape.length === 1 && shape[0] === width ? 1 : shape.length === 2 && shape[1] === width ? (shape[0] as number) : undefined;
  if (rows === undefined) throw new RequestError(`inputs[0] (${name}).shape: expected [rows, ${width}] or [${width}], got [${shape.join(', ')}]`);
  const data = flatten(input.data);
  if (data.length !== rows * width) throw new RequestError(`inputs[0] (${name}).data: expected ${rows * width} values for shape [${shape.join(', ')}], got ${data.length}`);
  const features = new Float32Array(rows * width);
  const names = model.rows.features;
  for (let k = 0; k < data.length; k++) {
    features[k] = toFeature(data[k], () => `inputs[0] (${name}).data[${k}] (row ${Math.floor(k / width)}, feature ${names[k % width] ?? '?'})`);
  }
  return { features, rows, rowOf: Int32Array.from({ length: rows }, (_, i) => i), envelopes: new Array(rows), failures: new Map(), schemaIds: [] };
}

function columnRows(inputs: InferInput[], model: ModelInput): DecodedChunk {
  const known = new Set(model.rows.features);
  const byName = new Map<string, unknown[]>();
  let rows: number | undefined;
  inputs.forEach((input, i) => {
    if (!known.has(input.name)) throw new RequestError(`inputs[${i}].name: '${input.name}' is neither the model input '${model.name}' nor one of its features`);
    const data = flatten(input.data);
    if (rows !== undefined && data.length !== rows) throw new RequestError(`inputs[${i}] (${input.name}): ${data.length} values, but earlier inputs have ${rows} rows`);
    rows = data.length;
    byName.set(input.name, data);
  });
  const missing = model.rows.features.find((f) => !byName.has(f));
  if (missing !== undefined) throw new RequestError(`inputs: no input named '${missing}' (every feature of the model is needed, or one '${model.name}' tensor)`);
  const events = Array.from({ length: rows ?? 0 }, (_, r) => ({ features: Object.fromEntries([...byName].map(([f, col]) => [f, col[r]])) }));
  return model.rows.decodeEvents(events);
}

/** Parses an infer request body (already JSON-parsed). Throws RequestError (400) naming what is wrong. */
export function parseInferRequest(body: unknown, model: ModelInput): ParsedRequest {
  if (Array.isArray(body)) return { chunk: model.rows.decodeEvents(body) };
  if (!isObject(body)) throw new RequestError('body: expected a JSON object (an inference request or a feature event)');
  if (body.inputs === undefined) {
    if (body.features === undefined) throw new RequestError("body: expected 'inputs' (an inference request) or 'features' (a feature event)");
    return { chunk: model.rows.decodeEvents([body]) };
  }
  if (!Array.isArray(body.inputs) || body.inputs.length === 0) throw new RequestError('inputs: expected a non-empty array');
  const inputs = body.inputs.map(checkInput);
  let outputs: string[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs) || !body.outputs.every((o) => isObject(o) && typeof o.name === 'string')) throw new RequestError('outputs: expected an array of { name }');
    outputs = body.outputs.map((o) => (o as { name: string }).name);
  }
  const id = typeof body.id === 'string' ? body.id : undefined;
  const tensor = inputs.length === 1 && inputs[0]?.name === model.name;
  return { ...(id !== undefined && { id }), ...(outputs !== undefined && { outputs }), chunk: tensor ? tensorRows(inputs[0] as InferInput, model) : columnRows(inputs, model) };
}
