/**
 * The supervisor's handle on one pipeline thread (pipeline-worker.ts): requests with replies
 * (protocol.ts), and whether it started, crashed or exited. A thread that exits rejects what it
 * was asked, so no request waits for ever on a dead pipeline.
 */
import type { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { PIPELINE_ROLE, type PipelineEvent, type PipelineInit, type Replies, type Request, fromWire } from './protocol.js';
import { spawnModule } from './spawn.js';

type Ask = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

// The worker's module next to this one, as .js when compiled or .ts under tsx (tests).
const WORKER_URL = new URL(`./pipeline-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url).href;

export class PipelineThread {
  readonly index: number;
  /** Resolves once its scorer is consuming; rejects with its start-up error. */
  readonly started: Promise<void>;
  /** Resolves with the reason if it crashes, or exits, after starting and before being told to stop. */
  readonly crashed: Promise<Error>;
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #stopping = false;
  #exited: Error | undefined;

  constructor(index: number, config: Config) {
    this.index = index;
    const init: PipelineInit = { role: PIPELINE_ROLE, index, config };
    this.#worker = spawnModule(WORKER_URL, init);
    let start!: { resolve: () => void; reject: (e: Error) => void };
    this.started = new Promise<void>((resolve, reject) => (start = { resolve, reject }));
    let crash!: (e: Error) => void;
    this.crashed = new Promise<Error>((resolve) => (crash = resolve));
    let isStarted = false;
    this.#worker.on('message', (event: PipelineEvent) => {
      if (event.type === 'started') {
        isStarted = true;
        start.resolve();
      } else if (event.type === 'start-failed') start.reject(fromWire(event.error));
      else if (event.type === 'crashed') crash(new Error(`pipeline ${index}: ${fromWire(event.error).message}`));
      else this.#settle(event);
    });
    let lastError: unknown;
    this.#worker.on('error', (err) => (lastError = err));
    this.#worker.on('exit', (code) => {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      const err = new Error(`pipeline ${index}: its thread exited (code ${code})${why}`, { cause: lastError });
      this.#exited = err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      start.reject(err);
      if (isStarted && !this.#stopping) crash(err);
    });
  }

  /** One request; rejects after timeoutMs (when given) or when the thread exits. */
  ask<T extends Request['type']>(req: Ask & { type: T }, timeoutMs?: number): Promise<Replies[T]> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    return new Promise<Replies[T]>((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = <A extends unknown[]>(f: (...a: A) => void) => (...a: A) => {
        clearTimeout(timer);
        f(...a);
      };
      this.#pending.set(id, { resolve: done((v: unknown) => resolve(v as Replies[T])), reject: done(reject) });
      this.#worker.postMessage({ ...req, id });
    });
  }

  /** Drains and closes its scorer within deadlineMs; true when clean. The thread ends afterwards. */
  async stop(deadlineMs: number): Promise<boolean> {
    this.#stopping = true;
    const clean = await this.ask({ type: 'stop', deadlineMs }).catch(() => false);
    // Drained and disconnected: nothing of it is in use any more. (kafkajs and onnxruntime keep timers alive.)
    if (clean) await this.#worker.terminate();
    return clean;
  }

  #settle(event: Extract<PipelineEvent, { type: 'reply' | 'reply-error' }>): void {
    const p = this.#pending.get(event.id);
    this.#pending.delete(event.id);
    if (event.type === 'reply') p?.resolve(event.value);
    else p?.reject(fromWire(event.error));
  }
}
