// The RowScorer on real onnxruntime-node and the real reference models (models/*.onnx), in both
// modes. Worker threads are real too; only their constructor is wrapped, so a test can kill one.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker as WorkerType } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../../../helpers/fixtures.js';
import { CircuitBreaker } from '../../../../src/stages/infer/circuit.js';
import { createRowScorer } from '../../../../src/stages/infer/infer.js';
import type { RowOutcome, RowScorer, RowScorerOptions } from '../../../../src/stages/infer/infer.js';
import { loadModel } from '../../../../src/model/manifest.js';
import type { LoadedModel } from '../../../../src/model/manifest.js';

const workers = vi.hoisted(() => [] as WorkerType[]);
vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  class Worker extends real.Worker {
    constructor(...args: ConstructorParameters<typeof real.Worker>) {
      super(...args);
      workers.push(this);
    }
  }
  return { ...real, Worker };
});

// Genuinely slow, not racy: most tests here start real worker threads, each of which loads tsx,
// onnxruntime and a session before its first batch (~1 s quiet, 4-5 s with the machine loaded),
// and one scores 8,192 rows of the 256-wide mlp. 30 s for this file only (vi.setConfig is
// file-scoped); the global 5 s default stays for every other unit test.
vi.setConfig({ testTimeout: 30_000 });

const file = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
const churn = loadModel(file('../../../../models/churn.onnx'));
const mlp = loadModel(file('../../../../models/mlp.onnx'));
const WIDTH = churn.manifest.input.width;
const fixture = JSON.parse(readFileSync(file('../../../fixtures/churn-expected.json'), 'utf8')) as { rows: number[][]; onnxruntimeProbability: number[] };

/** Deterministic uniform [0, 1) (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randomRows = (rows: number, width: number, seed: number): Float32Array => {
  const next = rng(seed);
  return Float32Array.from({ length: rows * width }, () => next() * 100);
};

/** What onnxruntime-node itself says, one direct session.run on the same rows. */
let direct: ort.InferenceSession;
async function directProbabilities(features: Float32Array, rows: number): Promise<Float32Array> {
  const out = await direct.run({ features: new ort.Tensor('float32', features.slice(), [rows, WIDTH]) }, ['probabilities']);
  return out.probabilities?.data as Float32Array;
}

type Options = Partial<Omit<RowScorerOptions, 'batch' | 'infer'>> & { batch?: Partial<RowScorerOptions['batch']>; infer?: Partial<RowScorerOptions['infer']> };
const breaker = (failureThreshold = 5, onChange?: (open: boolean) => void): CircuitBreaker =>
  new CircuitBreaker({ failureThreshold, cooldownMs: 30_000, ...(onChange && { onChange }) });
const open: RowScorer[] = [];
async function scorer(opts: Options = {}): Promise<RowScorer> {
  const s = await createRowScorer({
    model: opts.model ?? churn,
    batch: { maxSize: 256, maxDelayMs: 5, idleDispatch: true, ...opts.batch },
    infer: { mode: 'worker', workers: 1, intraOpThreads: 1, graphOptimization: 'all', spinning: false, ...opts.infer },
    circuit: opts.circuit ?? breaker(),
    ...(opts.hooks && { hooks: opts.hooks }),
  });
  open.push(s);
  return s;
}

const scoreOf = (o: RowOutcome | undefined): number => (o?.ok === true ? o.score : Number.NaN);

beforeAll(async () => {
  direct = await ort.InferenceSession.create(churn.modelPath);
});
afterAll(async () => {
  await Promise.all(open.map((s) => s.close(1_000)));
  await direct.release();
});

describe.each(['worker', 'main'] as const)('createRowScorer, %s mode', (mode) => {
  it('scores exactly what a direct session.run gives, with class-named scores', async () => {
    const s = await scorer({ infer: { mode, workers: 2 } });
    await s.warmUp();
    const rows = fixture.rows.length;
    const features = new Float32Array(rows * WIDTH);
    fixture.rows.forEach((r, i) => features.set(r, i * WIDTH));
    const expected = await directProbabilities(features, rows);
    const out = await s.score(features, rows);
    expect(out).toHaveLength(rows);
    out.forEach((o, r) => {
      expect(o).toEqual({ ok: true, score: expected[2 * r + 1], scores: { stay: expected[2 * r], churn: expected[2 * r + 1] } });
      expect(scoreOf(o)).toBeCloseTo(fixture.onnxruntimeProbability[r] as number, 6);
    });
    expect(s.inFlightRows).toBe(0);
  });

  it('gives 20 concurrent callers their own rows back, in order, in batches of at most maxSize', async () => {
    const batches: number[] = [];
    const s = await scorer({ infer: { mode, workers: 2 }, batch: { maxSize: 256 }, hooks: { onBatch: ({ rows }) => batches.push(rows) } });
    const size = rng(42);
    const sizes = Array.from({ length: 20 }, () => 1 + Math.floor(size() * 700));
    const inputs = sizes.map((n, i) => randomRows(n, WIDTH, i + 1));
    const expected = await Promise.all(inputs.map((f, i) => directProbabilities(f, sizes[i] as number)));
    const pending = inputs.map((f, i) => s.score(f, sizes[i] as number));
    expect(s.inFlightRows).toBe(sizes.reduce((a, b) => a + b, 0));
    const results = await Promise.all(pending);
    results.forEach((out, i) => {
      expect(out).toHaveLength(sizes[i] as number);
      out.forEach((o, r) => expect(scoreOf(o)).toBe(expected[i]?.[2 * r + 1]));
    });
    expect(Math.max(...batches)).toBeLessThanOrEqual(256);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(s.inFlightRows).toBe(0);
  });

  it('fails a row with a non-finite score alone; the rest of its batch is scored', async () => {
    const s = await scorer({ infer: { mode } });
    const features = randomRows(5, WIDTH, 7);
    features.fill(Number.NaN, 2 * WIDTH, 3 * WIDTH);
    const out = await s.score(features, 5);
    expect(out.map((o) => o.ok)).toEqual([true, true, false, true, true]);
    expect(out[2]?.ok === false && out[2].error.code).toBe('INFERENCE_FAILED');
  });
});

describe('dispatch policy on a real model', () => {
  it('idle dispatch: light load goes in small batches at once, however long maxDelayMs is', async () => {
    const seen: { rows: number; fillWaitMs: number }[] = [];
    // A deadline far beyond the test's own timeout: a batcher that waited for it could not pass.
    // How long a row did wait is the event loop's business on a busy machine, so it is bounded
    // by a tenth of the deadline, not by a few milliseconds (a test of behaviour, not of speed).
    const maxDelayMs = 60_000;
    const s = await scorer({ batch: { idleDispatch: true, maxDelayMs }, hooks: { onBatch: (b) => seen.push(b) } });
    for (let i = 0; i < 5; i++) await s.score(randomRows(1, WIDTH, i), 1);
    expect(seen.map((b) => b.rows)).toEqual([1, 1, 1, 1, 1]);
    for (const b of seen) expect(b.fillWaitMs).toBeLessThan(maxDelayMs / 10);
  });

  it('without idle dispatch, a lone row waits for maxDelayMs', async () => {
    const seen: number[] = [];
    const s = await scorer({ batch: { idleDispatch: false, maxDelayMs: 60 }, hooks: { onBatch: (b) => seen.push(b.fillWaitMs) } });
    await s.score(randomRows(1, WIDTH, 1), 1);
    expect(seen[0]).toBeGreaterThanOrEqual(59);
  });
});

describe('lifecycle', () => {
  it('close() flushes queued work, then refuses new work; it is idempotent', async () => {
    const s = await scorer({ batch: { idleDispatch: false, maxDelayMs: 600_000, maxSize: 100_000 } });
    const pending = [s.score(randomRows(3, WIDTH, 1), 3), s.score(randomRows(2, WIDTH, 2), 2)];
    await Promise.resolve();
    const closing = s.close(5_000);
    expect(s.close(5_000)).toBe(closing);
    const [a, b] = await Promise.all(pending);
    expect(a?.every((o) => o.ok)).toBe(true);
    expect(b).toHaveLength(2);
    await closing;
    expect(s.inFlightRows).toBe(0);
    await expect(s.score(randomRows(1, WIDTH, 3), 1)).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' });
  });

  it('rejects rows not scored by the close deadline with MODEL_UNAVAILABLE', async () => {
    const s = await scorer({ model: mlp, batch: { maxSize: 4_096 } });
    const width = mlp.manifest.input.width;
    const running = expect(s.score(randomRows(4_096, width, 1), 4_096)).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' }); // ~0.3 s of inference
    // The scheduler dispatches on a microtask: after one, the first batch is on the (only)
    // worker and the second waits in the batcher for a free slot.
    await Promise.resolve();
    const queued = expect(s.score(randomRows(4_096, width, 2), 4_096)).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' });
    await Promise.resolve();
    await s.close(1);
    await running;
    await queued;
    expect(s.inFlightRows).toBe(0);
  });

  it.each(['worker', 'main'] as const)('a model path that does not exist rejects with MODEL_UNAVAILABLE (%s)', async (mode) => {
    const missing: LoadedModel = { ...churn, modelPath: '/nonexistent/churn.onnx' };
    await expect(scorer({ model: missing, infer: { mode } })).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE', message: expect.stringContaining('/nonexistent/churn.onnx') });
  });

  it.each(['worker', 'main'] as const)('a file that is not a model rejects with MODEL_UNAVAILABLE naming it (%s)', async (mode) => {
    const path = join(tempDir('scorer-'), 'broken.onnx');
    writeFileSync(path, 'not an onnx model');
    await expect(scorer({ model: { ...churn, modelPath: path }, infer: { mode, workers: 2 } })).rejects.toMatchObject({
      code: 'MODEL_UNAVAILABLE',
      message: expect.stringContaining(path),
    });
  });

  it('a dead worker fails its in-flight batch with MODEL_UNAVAILABLE and is restarted once', async () => {
    const before = workers.length;
    const s = await scorer();
    const worker = (): WorkerType => workers.at(-1) as WorkerType;
    // Termination is requested first, then the batch is posted (on the scheduler's microtask) to
    // the dying worker, which never answers. Terminating a thread inside session.run instead
    // would abort the process (see WorkerRunner.close), so a test must not race one.
    void worker().terminate();
    const inFlight = s.score(randomRows(3, WIDTH, 1), 3);
    await Promise.resolve(); // the scheduler's microtask has dispatched the batch
    expect(s.inFlightRows).toBe(3);
    await expect(inFlight).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE', message: expect.stringContaining('exited') });
    expect(workers.length).toBe(before + 2); // the restart began on 'exit'

    const again = await s.score(randomRows(2, WIDTH, 2), 2); // waits for the new worker
    expect(again.every((o) => o.ok)).toBe(true);

    await worker().terminate(); // no second restart: with no live worker left, the scorer refuses work
    await vi.waitFor(() => expect(s.score(randomRows(1, WIDTH, 4), 1)).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' }));
    expect(workers.length).toBe(before + 2);
  });
});

describe('circuit', () => {
  it('never dead-letters a batch whose every row fails; opens after N such batches and closes on the next success', async () => {
    const circuit: boolean[] = [];
    const s = await scorer({ circuit: breaker(2, (o) => circuit.push(o)) });
    // NaN in, NaN out: every row of the batch fails, as with a broken model.
    const nan = (): Float32Array => new Float32Array(3 * WIDTH).fill(Number.NaN);
    await expect(s.score(nan(), 3)).rejects.toMatchObject({ code: 'BATCH_INFERENCE_FAILED' });
    expect(circuit).toEqual([]);
    await expect(s.score(nan(), 3)).rejects.toMatchObject({ code: 'BATCH_INFERENCE_FAILED' });
    expect(circuit).toEqual([true]);
    const ok = await s.score(randomRows(1, WIDTH, 1), 1);
    expect(ok[0]?.ok).toBe(true);
    expect(circuit).toEqual([true, false]);
  });

  it('dead-letters a lone failing row while the model is known good', async () => {
    const s = await scorer({ circuit: breaker(2) });
    expect((await s.score(randomRows(1, WIDTH, 2), 1))[0]?.ok).toBe(true);
    const [lone] = await s.score(new Float32Array(WIDTH).fill(Number.NaN), 1);
    expect(lone?.ok === false && lone.error.code).toBe('INFERENCE_FAILED');
  });
});
