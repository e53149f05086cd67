/**
 * The Open Inference Protocol v2 endpoint (KServe / Triton / Seldon "V2" REST API) on the
 * scorer's HTTP port, when INFER_HTTP=true:
 *   GET  /v2                                   server metadata
 *   GET  /v2/health/live, /v2/health/ready     liveness, readiness (model warm, not stopping, circuit closed)
 *   GET  /v2/models/<name>[/versions/<v>]      model metadata from the manifest
 *   GET  /v2/models/<name>[/versions/<v>]/ready
 *   POST /v2/models/<name>[/versions/<v>]/infer
 * Without a version, the stable version answers; `/versions/<v>` names any version the current
 * deployment serves (stable, canary, shadow: MODEL_REPOSITORY), so a candidate can be asked
 * directly. A request holds its generation (like a chunk) until answered: a deployment change
 * never unloads the version under it. Requests are scored by the stream's own RowScorer: their rows join the same micro-batches as
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
import type { Lease, Served } from '../model/generation.js';
import type { LoadedModel, Manifest } from '../model/manifest.js';
import type { RouteHandler } from '../ops/http.js';
import type { InferHttpMetrics } from '../ops/metrics.js';
import { labelOf } from '../stages/encode.js';
import type { RowOutcome, RowScorer } from '../stages/infer/infer.js';
import { SCORER_VERSION } from '../version.js';
import { EventRows } from './event-rows.js';
import { type ModelInput, RequestError, parseInferRequest } from './oip-request.js';

export interface OipOptions {
  /** The stream's model generations: one held per request. */
  models: { acquire(): Lease };
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

/** What the endpoint needs of one version, built once per loaded version. */
interface VersionView {
  manifest: Manifest;
  input: ModelInput;
  classes: string[] | undefined;
  outputNames: string[];
  metadata: Record<string, unknown>;
}

function versionView({ manifest, readerSchema }: LoadedModel): VersionView {
  const classes = manifest.outputs[manifest.score.output]?.classes;
  return {
    manifest,
    classes,
    input: { name: manifest.input.name, width: manifest.input.width, rows: new EventRows({ manifest, readerSchema: readerSchema as avro.Schema, requireEnvelope: false }) },
    outputNames: ['score', ...(manifest.labels ? ['label'] : []), ...(classes ? ['scores'] : [])],
    metadata: {
      name: manifest.name,
      platform: 'onnxruntime_onnx',
      inputs: [{ name: manifest.input.name, datatype: 'FP32', shape: [-1, manifest.input.width], parameters: { features: manifest.features } }],
      outputs: [
        { name: 'score', datatype: 'FP32', shape: [-1], ...(manifest.score.meaning !== undefined && { parameters: { meaning: manifest.score.meaning } }) },
        ...(manifest.labels ? [{ name: 'label', datatype: 'BYTES', shape: [-1], parameters: { threshold: manifest.threshold, ...manifest.labels } }] : []),
        ...(classes ? [{ name: 'scores', datatype: 'FP32', shape: [-1, classes.length], parameters: { classes } }] : []),
      ],
    },
  };
}

/** The versions a generation serves, stable first. */
const servedVersions = (m: Lease): Served[] => [m.stable, ...(m.canary ? [m.canary] : []), ...(m.shadow ? [m.shadow] : [])];

export function createOipHandler(opts: OipOptions): RouteHandler {
  const { models, limits, metrics, logger } = opts;
  const views = new WeakMap<LoadedModel, VersionView>();
  const acquire = (): Lease => {
    try {
      return models.acquire();
    } catch {
      throw new RequestError('shutting down: the models are closed', 503); // after stop() closed them, before the HTTP server
    }
  };
  const viewOf = (model: LoadedModel): VersionView => {
    let v = views.get(model);
    if (v === undefined) views.set(model, (v = versionView(model)));
    return v;
  };
  let queuedRows = 0;

  const answer = (res: ServerResponse, started: number, name: string, status: number, body: unknown, headers?: Record<string, string>): void => {
    send(res, status, body, headers);
    metrics.requests.inc({ model: name, status: String(status) });
    metrics.duration.observe({ model: name }, (performance.now() - started) / 1000);
  };

  /** Scores the rows on the shared scorer; rejects with RequestError 503/504 when full, late or the model is failing. */
  async function score(scorer: Pick<RowScorer, 'score'>, features: Float32Array, rows: number): Promise<RowOutcome[]> {
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

  async function infer(req: IncomingMessage, res: ServerResponse, started: number, served: Served): Promise<void> {
    if (!opts.ready()) throw new RequestError('not ready (starting, shutting down, or the inference circuit is open)', 503);
    const { manifest, input, outputNames, classes } = viewOf(served.model);
    const request = parseInferRequest(await readJson(req, limits.maxBodyBytes), input);
    const unknown = request.outputs?.find((o) => !outputNames.includes(o));
    if (unknown !== undefined) throw new RequestError(`outputs: '${unknown}' is not an output of ${manifest.name} (${outputNames.join(', ')})`);
    const { chunk } = request;
    const [firstBad] = chunk.failures;
    if (firstBad !== undefined) throw new RequestError(`row ${firstBad[0]}: ${firstBad[1].code}: ${firstBad[1].message}`);
    const outcomes = chunk.rows > 0 ? await score(served.scorer, chunk.features, chunk.rows) : [];
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
    answer(res, started, manifest.name, 200, { model_name: manifest.name, model_version: manifest.version, ...(request.id !== undefined && { id: request.id }), outputs });
  }

  return async (req, res, path) => {
    if (path !== '/v2' && !path.startsWith('/v2/')) return false;
    const started = performance.now();
    const method = req.method ?? 'GET';
    const m = MODEL_PATH.exec(path);
    const isInfer = m?.[3] === '/infer';
    const wanted = isInfer ? 'POST' : 'GET';
    let lease: Lease | undefined;
    let name = '';
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
        const [, wantedName, version, action] = m as RegExpExecArray;
        // Held until answered: a deployment change never unloads the version a request scores with.
        lease = acquire();
        name = lease.stable.model.manifest.name;
        const versions = servedVersions(lease);
        if (decodeURIComponent(wantedName as string) !== name) throw new RequestError(`model '${decodeURIComponent(wantedName as string)}' is not served here (this scorer serves '${name}')`, 404);
        const served = version === undefined ? lease.stable : versions.find((v) => v.version === decodeURIComponent(version));
        if (served === undefined) throw new RequestError(`model ${name} version '${decodeURIComponent(version as string)}' is not served here (this scorer serves ${versions.map((v) => v.version).join(', ')})`, 404);
        if (action === undefined) send(res, 200, { ...viewOf(served.model).metadata, versions: version === undefined ? versions.map((v) => v.version) : [served.version] });
        else if (action === '/ready') send(res, opts.ready() ? 200 : 503, { name, ready: opts.ready() });
        else await infer(req, res, started, served);
      }
    } catch (err) {
      if (!(err instanceof RequestError)) throw err; // a bug: http.ts answers 500 and logs it
      if (err.status >= 500) logger.warn({ status: err.status, path }, err.message);
      const headers: Record<string, string> = err.status === 503 ? { 'retry-after': '1' } : {};
      if (isInfer) answer(res, started, name, err.status, { error: err.message }, headers);
      else send(res, err.status, { error: err.message }, headers);
      // An unread body (413 before reading it all) would otherwise stall the connection.
      if (!req.complete) req.resume();
    } finally {
      lease?.release();
    }
    return true;
  };
}
