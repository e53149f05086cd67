/**
 * The session side of the infer stage: session options, loading and running one session, and
 * both ends of an inference worker thread (the thread's entry point at the bottom of this file,
 * and `WorkerRunner`, its client on the main thread). Each worker owns one InferenceSession.
 *
 * Why threads: onnxruntime-node's `session.run` is synchronous native work on the calling thread
 * (only deferred by a setImmediate, onnxruntime-node dist/backend.js), so on the main thread a
 * heavy model stalls fetches, decoding and heartbeats for the whole batch.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { ScoreTensor } from '../batch/merge.js';
import { ScorerError } from '../../errors.js';
import { spawnModule } from '../../threads/spawn.js';

export interface SessionConfig {
  intraOpThreads: number;
  graphOptimization: 'disabled' | 'basic' | 'extended' | 'all';
  /** Let idle intra-op threads busy-wait for the next op (burns cores between calls). */
  spinning: boolean;
}

/** Which graph names this scorer feeds and fetches. */
export interface SessionIo {
  input: string;
  width: number;
  /** Graph name of the score output; the only output fetched and moved between threads. */
  output: string;
}

export function sessionOptions({ intraOpThreads, graphOptimization, spinning }: SessionConfig): ort.InferenceSession.SessionOptions {
  const spin = spinning ? '1' : '0';
  return {
    executionProviders: ['cpu'],
    // Parallelism inside one op (GEMM): the knob that matters for an MLP on CPU.
    intraOpNumThreads: intraOpThreads,
    // Sequential execution never uses the inter-op pool; 1 keeps ORT from spawning one per core.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // 'all' is 1.2-3x faster than 'disabled' on the reference models (DESIGN.md).
    graphOptimizationLevel: graphOptimization,
    // Session config entries (onnxruntime_session_options_config_keys.h); the Node binding
    // flattens nested keys with dots (js/node/src/session_options_helper.cc IterateExtraOptions)
    // and only accepts string values. Spinning off: between micro-batches the intra-op threads
    // sleep instead of burning a core each, at little throughput cost.
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
    // ORT would print every failed run to stderr itself (unstructured, per row while a batch is
    // split); the error reaches our logs, metrics and dead letters through the normal path.
    logSeverityLevel: 4,
  };
}

export class ScoreSession {
  readonly #session: ort.InferenceSession;
  readonly #io: SessionIo;

  private constructor(session: ort.InferenceSession, io: SessionIo) {
    this.#session = session;
    this.#io = io;
  }

  /** Throws a plain Error naming the path when the file does not load or lacks the named input/output. */
  static async load(modelPath: string, config: SessionConfig, io: SessionIo): Promise<ScoreSession> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, sessionOptions(config));
    } catch (err) {
      throw new Error(`cannot load ${modelPath}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const missing = !session.inputNames.includes(io.input)
      ? `input "${io.input}" (it has ${session.inputNames.join(', ')})`
      : !session.outputNames.includes(io.output)
        ? `output "${io.output}" (it has ${session.outputNames.join(', ')})`
        : undefined;
    if (missing !== undefined) {
      await session.release();
      throw new Error(`model ${modelPath} has no ${missing}`);
    }
    return new ScoreSession(session, io);
  }

  async run(features: Float32Array, rows: number): Promise<ScoreTensor> {
    const { input, output, width } = this.#io;
    const feeds = { [input]: new ort.Tensor('float32', features, [rows, width]) };
    const result = await this.#session.run(feeds, [output]);
    const tensor = result[output];
    if (tensor?.type !== 'float32') throw new Error(`output "${output}" is ${tensor?.type ?? 'missing'}, expected float32`);
    return { data: tensor.data as Float32Array, dims: tensor.dims };
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}

// ---- worker thread protocol -------------------------------------------------------------------

/**
 * The array itself when it spans a whole ArrayBuffer, so that buffer can be transferred; else a
 * copy: transferring a view would detach bytes around it, and a SharedArrayBuffer cannot move.
 */
function ownBuffer(a: Float32Array): Float32Array<ArrayBuffer> {
  const { buffer } = a;
  return buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === buffer.byteLength ? (a as Float32Array<ArrayBuffer>) : a.slice();
}

export const WORKER_ROLE = 'kafka-onnx-scorer/infer';

export interface WorkerInit {
  role: typeof WORKER_ROLE;
  modelPath: string;
  config: SessionConfig;
  io: SessionIo;
}

/** main -> worker. `features.buffer` is transferred, not copied. */
export interface RunRequest {
  id: number;
  features: Float32Array;
  rows: number;
}

/** worker -> main. `data.buffer` is transferred back. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'load-failed'; message: string }
  | { type: 'result'; id: number; data: Float32Array; dims: number[] }
  | { type: 'error'; id: number; name: string; message: string };

async function workerMain(init: WorkerInit): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  let session: ScoreSession;
  try {
    session = await ScoreSession.load(init.modelPath, init.config, init.io);
  } catch (err) {
    port.postMessage({ type: 'load-failed', message: (err as Error).message } satisfies WorkerMessage);
    port.close(); // nothing else keeps the thread alive: it exits
    return;
  }
  port.on('message', (req: RunRequest) => {
    session.run(req.features, req.rows).then(
      ({ data, dims }) => {
        // Transfer only a buffer the tensor owns whole; otherwise we would detach someone else's bytes.
        const own = ownBuffer(data);
        port.postMessage({ type: 'result', id: req.id, data: own, dims: [...dims] } satisfies WorkerMessage, [own.buffer]);
      },
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        port.postMessage({ type: 'error', id: req.id, name: e.name, message: e.message } satisfies WorkerMessage);
      },
    );
  });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}

/** Runs batches on one session: on the main thread ('main' mode) or in a worker. */
export interface Runner {
  run(features: Float32Array, rows: number): Promise<ScoreTensor>;
  close(): Promise<void>;
}

export class MainRunner implements Runner {
  readonly #session: ScoreSession;
  #running = new Set<Promise<unknown>>();
  constructor(session: ScoreSession) {
    this.#session = session;
  }
  run(features: Float32Array, rows: number): Promise<ScoreTensor> {
    const p = this.#session.run(features, rows);
    const tracked = p.finally(() => this.#running.delete(tracked)).catch(() => undefined);
    this.#running.add(tracked);
    return p;
  }
  /** After the runs already scheduled: releasing first would pull the session from under them. */
  async close(): Promise<void> {
    await Promise.all(this.#running);
    await this.#session.release();
  }
}

/** A worker running this file (threads/spawn.ts: compiled, or the .ts source under tsx). */
const spawnSelf = (workerData: WorkerInit): Worker => spawnModule(import.meta.url, workerData);

const BUGS: Record<string, ErrorConstructor> = { TypeError, RangeError, ReferenceError };

/** Client of one worker thread. At most one batch is sent at a time (the scorer's slot). */
export class WorkerRunner implements Runner {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (t: ScoreTensor) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #closing = false;
  #closed: Promise<void> | undefined;
  #exited: ScorerError | undefined; // a message to an exited worker would wait forever

  private constructor(worker: Worker, onDeath: (err: ScorerError) => void) {
    this.#worker = worker;
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type !== 'result' && msg.type !== 'error') return;
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (this.#closing && this.#pending.size === 0) void worker.terminate(); // close() was waiting for this answer
      if (msg.type === 'result') {
        p?.resolve({ data: msg.data, dims: msg.dims });
      } else {
        // Rebuild bugs as their own class so they are never taken for a poison row.
        const err = new (BUGS[msg.name] ?? Error)(msg.message);
        p?.reject(err);
      }
    });
    let lastError: unknown;
    worker.on('error', (err) => (lastError = err));
    worker.on('exit', (code) => {
      const err = new ScorerError('MODEL_UNAVAILABLE', `inference worker exited (code ${code})`, { cause: lastError });
      this.#exited = err;
      if (this.#closing) return;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      onDeath(err);
    });
  }

  /** Resolves once the worker's session is loaded; rejects with MODEL_UNAVAILABLE naming the path. */
  static start(init: Omit<WorkerInit, 'role'>, onDeath: (err: ScorerError) => void): Promise<WorkerRunner> {
    const worker = spawnSelf({ ...init, role: WORKER_ROLE });
    return new Promise((resolve, reject) => {
      // Only our own listeners come off: removeAllListeners() would also drop the ones Node's
      // Worker keeps to ref its message port, and later messages would never arrive.
      const off = (): void => {
        worker.off('error', onError).off('exit', onExit).off('message', onMessage);
      };
      const fail = (why: string, cause?: unknown): void => {
        off();
        void worker.terminate();
        reject(new ScorerError('MODEL_UNAVAILABLE', `model ${init.modelPath}: ${why}`, { cause }));
      };
      const onError = (err: Error): void => fail(`inference worker failed to start: ${err.message}`, err);
      const onExit = (code: number): void => fail(`inference worker exited during load (code ${code})`);
      const onMessage = (msg: WorkerMessage): void => {
        if (msg.type !== 'ready') return fail(msg.type === 'load-failed' ? msg.message : `unexpected ${msg.type}`);
        off();
        resolve(new WorkerRunner(worker, onDeath));
      };
      worker.on('error', onError).on('exit', onExit).on('message', onMessage);
    });
  }

  run(features: Float32Array, rows: number): Promise<ScoreTensor> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    // Transferred, not copied (the batch tensor is a fresh merge the caller never reads again).
    const own = ownBuffer(features);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, features: own, rows } satisfies RunRequest, [own.buffer]);
    });
  }

  /**
   * Terminates the worker, but never while it runs a batch: terminating a thread inside
   * session.run aborts the whole process (the binding throws a C++ Napi::Error nobody catches:
   * "terminate called after throwing an instance of 'Napi::Error'"; process.exit() mid-run does
   * the same). So with a run in flight this waits for its answer (one batch at most), drops it,
   * then terminates. Pending callers are rejected at once.
   */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing = true;
      const err = new ScorerError('MODEL_UNAVAILABLE', 'inference worker closed');
      for (const p of this.#pending.values()) p.reject(err); // entries stay: they mark the run still in the thread
      this.#closed =
        this.#pending.size === 0 || this.#exited !== undefined
          ? this.#worker.terminate().then(() => undefined)
          : new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    }
    return this.#closed;
  }
}

const init = workerData as Partial<WorkerInit> | null | undefined;
if (!isMainThread && init?.role === WORKER_ROLE) void workerMain(init as WorkerInit);
