/**
 * The infer stage as the chunk processor sees it: one RowScorer shared by every partition, made
 * by createRowScorer from a loaded model (the sessions: worker.ts; batching and slots:
 * batching-scorer.ts; whole-batch failures: circuit.ts).
 *
 * Failures, by scope (errors.ts):
 *   - one row: the batch is split until the row fails alone -> { ok: false, INFERENCE_FAILED };
 *   - a whole batch, `failureThreshold` times in a row: the model is broken, not a record ->
 *     the circuit opens and waiting callers reject with BATCH_INFERENCE_FAILED (no dead letters);
 *   - a worker dies: its batch's callers reject with MODEL_UNAVAILABLE; it is restarted once.
 */
import { existsSync } from 'node:fs';
import type { ScoreSpec } from '../batch/merge.js';
import type { BatchPolicy } from '../batch/batcher.js';
import { ScorerError } from '../../errors.js';
import type { LoadedModel } from '../../model/manifest.js';
import { BatchingRowScorer } from './batching-scorer.js';
import type { CircuitBreaker } from './circuit.js';
import { MainRunner, ScoreSession, WorkerRunner } from './worker.js';
import type { Runner, SessionConfig, SessionIo } from './worker.js';
import type { RowOutcome } from '../batch/merge.js';

export type { RowOutcome };

/** The stage contract: accept work, warm up, close within a deadline. */
export interface RowScorer {
  /**
   * Scores `rows` rows of `width` float32 features (row-major in `features`, which the caller
   * will not touch again). Many callers (one per Kafka partition) call concurrently; their rows
   * share micro-batches. Resolves one outcome per row, in order. Rejects only with a fatal
   * ScorerError (MODEL_UNAVAILABLE, BATCH_INFERENCE_FAILED), or a bug (RangeError for bad input).
   */
  score(features: Float32Array, rows: number): Promise<RowOutcome[]>;
  /** Rows accepted and not yet answered: every caller is answered exactly once, so 0 when idle and after close. */
  readonly inFlightRows: number;
  /** One real inference on a zero row on every session; resolves when all answered. */
  warmUp(): Promise<void>;
  /**
   * Stops intake, flushes what is queued and awaits running inference within deadlineMs; then
   * rejects what is left (MODEL_UNAVAILABLE) and terminates the workers. A worker still inside
   * session.run is terminated only when that run returns (one batch at most past the deadline):
   * terminating it mid-run, or exiting the process then, aborts the process. Idempotent.
   */
  close(deadlineMs: number): Promise<void>;
}

export interface RowScorerOptions {
  model: LoadedModel;
  batch: BatchPolicy;
  infer: SessionConfig & { mode: 'worker' | 'main'; workers: number };
  /** Judges whole-batch failures (shared with the consume stage's cool-down and readiness). */
  circuit: CircuitBreaker;
  hooks?: { onBatch?(info: { rows: number; fillWaitMs: number; inferMs: number }): void };
  /** Clock in ms, injectable for tests. */
  now?: () => number;
}

export async function createRowScorer(opts: RowScorerOptions): Promise<RowScorer> {
  const { model, infer } = opts;
  const { manifest, modelPath } = model;
  const scoreOut = manifest.outputs[manifest.score.output];
  if (scoreOut === undefined) throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: manifest ${model.manifestPath}: score.output names no output`);
  if (!existsSync(modelPath)) throw new ScorerError('MODEL_UNAVAILABLE', `model ${modelPath}: no such file`);
  const spec: ScoreSpec = { output: manifest.score.output, column: manifest.score.column, classes: scoreOut.classes };
  const io: SessionIo = { input: manifest.input.name, width: manifest.input.width, output: scoreOut.name };
  const config: SessionConfig = { intraOpThreads: infer.intraOpThreads, graphOptimization: infer.graphOptimization, spinning: infer.spinning };

  const start = (onDeath: (err: ScorerError) => void): Promise<Runner> => WorkerRunner.start({ modelPath, config, io }, onDeath);
  const scorer = new BatchingRowScorer(opts, spec, start);
  if (infer.mode === 'main') {
    try {
      scorer.addSlot(new MainRunner(await ScoreSession.load(modelPath, config, io)));
    } catch (err) {
      throw new ScorerError('MODEL_UNAVAILABLE', (err as Error).message, { cause: err });
    }
    return scorer;
  }
  const started = await Promise.allSettled(Array.from({ length: infer.workers }, (_, i) => start(scorer.deathHandler(i))));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await Promise.allSettled(started.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
    throw failed.reason;
  }
  for (const r of started) if (r.status === 'fulfilled') scorer.addSlot(r.value);
  return scorer;
}
