/**
 * The Open Inference Protocol v2 endpoint (KServe / Triton / Seldon "V2" REST API) on the
 * scorer's HTTP port, when INFER_HTTP=true:
 *   GET  /v2                                   server metadata
 *   GET  /v2/health/live, /v2/health/ready     liveness, readiness (model warm, not stopping, circuit closed)
 *   GET  /v2/models/<name>[/versions/<v>]      model metadata from the manifest
 *   GET  /v2/models/<name>[/versions/<v>]/ready
 *   POST /v2/models/<name>[/versions/<v>]/infer
 * Requests are scored by the stream's own RowScorer: their rows join the same micro-batches as
 * the Kafka rows (dynamic batching across both) on the same inference workers. Bounded: at most
 * INFER_HTTP_MAX_QUEUED_ROWS rows wait (else 503 + Retry-After), each request waits at most
 * INFER_HTTP_TIMEOUT_MS (else 504), bodies are at most INFER_HTTP_MAX_BODY_BYTES (else 413).
 * Bad input is a 400 whose message names the input, row and field (oip-request.ts). REST only:
 * see the README for why there is no gRPC listener.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type avro from 'avsc';
import type { Logger } from 'pino';
import { ScorerError } from '../errors.js';
import type { LoadedModel } from '../model/manifest.js';
import type { RouteHandler } from '../ops/http.js';
import type { InferHttpMetrics } from '../ops/metrics.js';
import { labelOf } from '../stages/encode.js';
import type { RowOutcome, RowScorer } from '../stages/infer/infer.js';
import { SCORER_VERSION } from '../version.js';
import { EventRows } from './event-rows.js';
import { type ModelInput, RequestError, parseInferRequest } from './oip-request.js';

export interface OipOptions {
  model: LoadedModel;
  readerSchema: avro.Schema;
  scorer: Pick<RowScorer, 'score'>;
  limits: { maxQueuedRows: number; timeoutMs: number; maxBodyBytes: number };
  /** True while requests can be scored (model warm, not shutting down, circuit closed). */
  ready(): boolean;
  metrics: InferHttpMetrics;
  logger: Logger;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
const MODEL_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...JSON_HEADERS, ...headers }).end(JSON.stringify(body));
}

/** The body as JSON, at most maxBytes; RequestError 413 beyond, 400 for invalid JSON. */
async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw new RequestError(`body: ${declared} bytes; at most ${maxBytes} (INFER_HTTP_MAX_BODY_BYTES)`, 413);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new RequestError(`body: more than ${maxBytes} bytes (INFER_HTTP_MAX_BODY_BYTES)`, 413);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new RequestError(`body: invalid JSON (${(err as Error).message})`);
  }
}

export function createOipHandler(opts: OipOptions): RouteHandler {
  const { model, scorer, limits, metrics, logger } = opts;
  const { manifest } = model;
  const scoreOutput = manifest.outputs[manifest.score.output];
  const classes = scoreOutput?.classes;
  const input: ModelInput = { name: manifest.input.name, width: manifest.input.width, rows: new EventRows({ manifest, readerSchema: opts.readerSchema, requireEnvelope: false }) };
  const outputNames = ['score', ...(manifest.labels ? ['label'] : []), ...(classes ? ['scores'] : [])];
  const metadata = {
    name: manifest.name,
    versions: [manifest.version],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: manifest.input.name, datatype: 'FP32', shape: [-1, manifest.input.width], parameters: { features: manifest.features } }],
    outputs: [
      { name: 'score', datatype: 'FP32', shape: [-1], ...(manifest.score.meaning !== undefined && { parameters: { meaning: manifest.score.meaning } }) },
      ...(manifest.labels ? [{ name: 'label', datatype: 'BYTES', shape: [-1], parameters: { threshold: manifest.threshold, ...manifest.labels } }] : []),
      ...(classes ? [{ name: 'scores', datatype: 'FP32', shape: [-1, classes.length], parameters: { classes } }] : []),
    ],
  };
  let queuedRows = 0;

  const answer = (res: ServerResponse, started: number, status: number, body: unknown, headers?: Record<string, string>): void => {
    send(res, status, body, headers);
    metrics.requests.inc({ model: manifest.name, status: String(status) });
    metrics.duration.observe({ model: manifest.name }, (performance.now() - started) / 1000);
  };

  /** Scores the rows on the shared scorer; rejects with RequestError 503/504 when full, late or the model is failing. */
  async function score(features: Float32Array, rows: number): Promise<RowOutcome[]> {
    if (rows > limits.maxQueuedRows) throw new RequestError(`${rows} rows in one request; at most ${limits.maxQueuedRows} (INFER_HTTP_MAX_QUEUED_ROWS)`, 413);
    if (queuedRows + rows > limits.maxQueuedRows) throw new RequestError(`queue full: ${queuedRows} rows waiting, at most ${limits.maxQueuedRows} (INFER_HTTP_MAX_QUEUED_ROWS); retry later`, 503);
    queuedRows += rows;
    metrics.queuedRows.set(queuedRows);
    // Counted until the model answers, not until we give up: a timed-out request's rows still occupy the batcher.
    const scored = scorer.score(features, rows).finally(() => {
      queuedRows -= rows;
      metrics.queuedRows.set(queuedRows);
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RequestError(`no scores within ${limits.timeoutMs} ms (INFER_HTTP_TIMEOUT_MS)`, 504)), limits.timeoutMs);
    });
    try {
      return await Promise.race([scored, late]);
    } catch (err) {
      if (err instanceof ScorerError && err.kind === 'fatal') throw new RequestError(`the model cannot score now: ${err.code}: ${err.message}`, 503);
      throw err;
    } finally {
      clearTimeout(timer);
      scored.catch(() => undefined); // answered (or given up on) already
    }
  }

  async function infer(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    if (!opts.ready()) throw new RequestError('not ready (starting, shutting down, or the inference circuit is open)', 503);
    const request = parseInferRequest(await readJson(req, limits.maxBodyBytes), input);
    const unknown = request.outputs?.find((o) => !outputNames.includes(o));
    if (unknown !== undefined) throw new RequestError(`outputs: '${unknown}' is not an output of ${manifest.name} (${outputNames.join(', ')})`);
    const { chunk } = request;
    const [firstBad] = chunk.failures;
    if (firstBad !== undefined) throw new RequestError(`row ${firstBad[0]}: ${firstBad[1].code}: ${firstBad[1].message}`);
    const outcomes = chunk.rows > 0 ? await score(chunk.features, chunk.rows) : [];
    const failed = outcomes.findIndex((o) => !o.ok);
    if (failed >= 0) {
      const { error } = outcomes[failed] as Extract<RowOutcome, { ok: false }>;
      throw new RequestError(`row ${failed}: ${error.code}: ${error.message}`);
    }
    metrics.rows.inc({ model: manifest.name }, chunk.rows);
    const ok = outcomes as Extract<RowOutcome, { ok: true }>[];
    const n = ok.length;
    const all = [
      { name: 'score', datatype: 'FP32', shape: [n], data: ok.map((o) => o.score) },
      ...(manifest.labels ? [{ name: 'label', datatype: 'BYTES', shape: [n], data: ok.map((o) => labelOf(manifest, o.score)) }] : []),
      ...(classes ? [{ name: 'scores', datatype: 'FP32', shape: [n, classes.length], data: ok.flatMap((o) => classes.map((c) => o.scores[c] as number)) }] : []),
    ];
    const outputs = request.outputs === undefined ? all : all.filter((o) => request.outputs?.includes(o.name));
    answer(res, started, 200, { model_name: manifest.name, model_version: manifest.version, ...(request.id !== undefined && { id: request.id }), outputs });
  }

  return async (req, res, path) => {
    if (path !== '/v2' && !path.startsWith('/v2/')) return false;
    const started = performance.now();
    const method = req.method ?? 'GET';
    const m = MODEL_PATH.exec(path);
    const isInfer = m?.[3] === '/infer';
    const wanted = isInfer ? 'POST' : 'GET';
    try {
      if (m === null && !['/v2', '/v2/health/live', '/v2/health/ready'].includes(path)) throw new RequestError(`no such endpoint: ${path}`, 404);
      if (method !== wanted) {
        send(res, 405, { error: `${path}: use ${wanted}` }, { allow: wanted });
        return true;
      }
      if (path === '/v2') send(res, 200, { name: 'kafka-onnx-scorer', version: SCORER_VERSION, extensions: [] });
      else if (path === '/v2/health/live') send(res, 200, { live: true });
      else if (path === '/v2/health/ready') send(res, opts.ready() ? 200 : 503, { ready: opts.ready() });
      else {
        const [, name, version, action] = m as RegExpExecArray;
        if (decodeURIComponent(name as string) !== manifest.name) throw new RequestError(`model '${decodeURIComponent(name as string)}' is not served here (this scorer serves '${manifest.name}')`, 404);
        if (version !== undefined && decodeURIComponent(version) !== manifest.version) throw new RequestError(`model ${manifest.name} version '${decodeURIComponent(version)}' is not served here (this scorer serves ${manifest.version})`, 404);
        if (action === undefined) send(res, 200, metadata);
        else if (action === '/ready') send(res, opts.ready() ? 200 : 503, { name: manifest.name, ready: opts.ready() });
        else await infer(req, res, started);
      }
    } catch (err) {
      if (!(err instanceof RequestError)) throw err; // a bug: http.ts answers 500 and logs it
      if (err.status >= 500) logger.warn({ status: err.status, path }, err.message);
      const headers: Record<string, string> = err.status === 503 ? { 'retry-after': '1' } : {};
      if (isInfer) answer(res, started, err.status, { error: err.message }, headers);
      else send(res, err.status, { error: err.message }, headers);
      // An unread body (413 before reading it all) would otherwise stall the connection.
      if (!req.complete) req.resume();
    }
    return true;
  };
}
