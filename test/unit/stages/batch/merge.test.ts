// Merge/split/isolate are pure: a fake `run` that throws when a given row is in its input is
// the right tool here, since what is under test is the splitting logic, not the model.
import { describe, expect, it } from 'vitest';
import { isolate, merge, rowsOf, split, toOutcomes } from '../../../../src/stages/batch/merge.js';
import type { BatchPart, RowOutcome, RunRows } from '../../../../src/stages/batch/merge.js';
import { ScorerError } from '../../../../src/errors.js';

const WIDTH = 3;
/** A segment whose row r holds [id*1000 + r, id*1000 + r, id*1000 + r]: every row is recognisable. */
const segment = (id: number, rows: number) => ({
  features: Float32Array.from({ length: rows * WIDTH }, (_, i) => id * 1000 + Math.floor(i / WIDTH)),
  rows,
});
const part = (s: ReturnType<typeof segment>, from: number, to: number): BatchPart => ({ segment: s, from, to });
const firstCol = (t: Float32Array): number[] => Array.from({ length: t.length / WIDTH }, (_, r) => t[r * WIDTH] as number);

describe('merge', () => {
  const a = segment(1, 5);
  const b = segment(2, 3);
  const parts = [part(a, 2, 5), part(b, 0, 2)];

  it('copies the parts row ranges into one tensor, in order', () => {
    const t = merge(parts, WIDTH);
    expect(t).toHaveLength(5 * WIDTH);
    expect(firstCol(t)).toEqual([1002, 1003, 1004, 2000, 2001]);
    expect(Array.from(t.subarray(0, WIDTH))).toEqual([1002, 1002, 1002]);
  });

  it('copies any batch-row range, across part boundaries', () => {
    expect(firstCol(merge(parts, WIDTH, 1, 4))).toEqual([1003, 1004, 2000]);
    expect(firstCol(merge(parts, WIDTH, 3, 4))).toEqual([2000]);
  });

  it('returns a fresh buffer: detaching it leaves the segments intact', () => {
    const t = merge(parts, WIDTH);
    expect(t.buffer).not.toBe(a.features.buffer);
    structuredClone(t, { transfer: [t.buffer as ArrayBuffer] });
    expect(t.length).toBe(0);
    expect(a.features[2 * WIDTH]).toBe(1002);
  });
});

describe('split', () => {
  it('gives each part its own slice of the row results, in part order', () => {
    const parts = [part(segment(1, 5), 3, 5), part(segment(2, 1), 0, 1), part(segment(3, 9), 0, 3)];
    expect(rowsOf(parts)).toBe(6);
    expect(split(['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], parts)).toEqual([['r0', 'r1'], ['r2'], ['r3', 'r4', 'r5']]);
  });

  it('refuses results that do not match the rows (a bug, not a record error)', () => {
    expect(() => split([1, 2], [part(segment(1, 3), 0, 3)])).toThrow(RangeError);
  });
});

describe('toOutcomes', () => {
  const spec = { output: 'probabilities', column: 1, classes: ['stay', 'churn'] };

  it('takes the score column and names the row by class', () => {
    const out = toOutcomes({ data: Float32Array.of(0.75, 0.25, 0.5, 0.5), dims: [2, 2] }, 2, spec);
    expect(out).toEqual([
      { ok: true, score: 0.25, scores: { stay: 0.75, churn: 0.25 } },
      { ok: true, score: 0.5, scores: { stay: 0.5, churn: 0.5 } },
    ]);
  });

  it('names columns output_col when there are no classes; a [N] output is one column', () => {
    const out = toOutcomes({ data: Float32Array.of(0.5, 2), dims: [2] }, 2, { output: 'y', column: 0 });
    expect(out).toEqual([
      { ok: true, score: 0.5, scores: { y_0: 0.5 } },
      { ok: true, score: 2, scores: { y_0: 2 } },
    ]);
  });

  it('fails a row with a non-finite score alone', () => {
    const out = toOutcomes({ data: Float32Array.of(0.5, 0.5, NaN, 1, 0.1, Infinity), dims: [3, 2] }, 3, spec);
    expect(out.map((o) => o.ok)).toEqual([true, false, false]);
    expect(out[1]?.ok === false && out[1].error.code).toBe('INFERENCE_FAILED');
  });

  it('treats an output of the wrong shape as the model failing, not the rows', () => {
    const bad = (): RowOutcome[] => toOutcomes({ data: new Float32Array(4), dims: [4] }, 4, spec);
    expect(bad).toThrow(expect.objectContaining({ code: 'BATCH_INFERENCE_FAILED' }));
  });
});

describe('isolate', () => {
  /**
   * A fake model: scores each row with its first feature; throws when any row of its input is
   * poison. Records each call's rows so the test can see how the batch was split.
   */
  function fakeRun(poison: Set<number>, calls: number[][] = []): RunRows {
    return async (features, rows) => {
      const ids = firstCol(features);
      expect(ids).toHaveLength(rows);
      calls.push(ids);
      const bad = ids.find((id) => poison.has(id));
      if (bad !== undefined) throw new Error(`kernel failed on ${bad}`);
      return ids.map((id) => ({ ok: true, score: id, scores: { y_0: id } }));
    };
  }
  const a = segment(1, 6);
  const b = segment(2, 3);
  const parts = [part(a, 0, 6), part(b, 0, 3)]; // 9 rows

  it('runs a healthy batch once', async () => {
    const calls: number[][] = [];
    const out = await isolate(fakeRun(new Set(), calls), parts, WIDTH);
    expect(calls).toHaveLength(1);
    expect(out.map((o) => o.ok && o.score)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 2000, 2001, 2002]);
  });

  it('isolates one poison row by halving; every other row is scored, in order', async () => {
    const calls: number[][] = [];
    const out = await isolate(fakeRun(new Set([1004]), calls), parts, WIDTH);
    expect(out.map((o) => (o.ok ? o.score : 'x'))).toEqual([1000, 1001, 1002, 1003, 'x', 1005, 2000, 2001, 2002]);
    const failed = out[4];
    expect(failed?.ok === false && failed.error).toBeInstanceOf(ScorerError);
    expect(failed?.ok === false && failed.error.code).toBe('INFERENCE_FAILED');
    expect(failed?.ok === false && failed.error.message).toMatch(/kernel failed on 1004/);
    expect(calls.length).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(9)));
    expect(calls).toContainEqual([1004]);
  });

  it('isolates several poison rows, including ones in different segments', async () => {
    const out = await isolate(fakeRun(new Set([1000, 1005, 2002])), parts, WIDTH);
    expect(out.map((o) => o.ok)).toEqual([false, true, true, true, true, false, true, true, false]);
  });

  it('fails every row when every row fails alone', async () => {
    const out = await isolate(fakeRun(new Set([1000, 1001, 1002, 1003, 1004, 1005, 2000, 2001, 2002])), parts, WIDTH);
    expect(out.every((o) => !o.ok)).toBe(true);
  });

  it('works on a run that detaches its input (worker transfer)', async () => {
    const inner = fakeRun(new Set([2001]));
    const detaching: RunRows = async (features, rows) => {
      const copy = structuredClone(features, { transfer: [features.buffer as ArrayBuffer] });
      return inner(copy, rows);
    };
    const out = await isolate(detaching, parts, WIDTH);
    expect(out.map((o) => o.ok)).toEqual([true, true, true, true, true, true, true, false, true]);
  });

  it('rethrows fatal errors and bugs instead of splitting', async () => {
    let calls = 0;
    const lost: RunRows = async () => {
      calls++;
      throw new ScorerError('MODEL_UNAVAILABLE', 'worker died');
    };
    await expect(isolate(lost, parts, WIDTH)).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' });
    expect(calls).toBe(1);
    const bug: RunRows = async () => {
      throw new TypeError('x is not a function');
    };
    await expect(isolate(bug, parts, WIDTH)).rejects.toBeInstanceOf(TypeError);
  });

  it('handles an empty batch without running', async () => {
    expect(await isolate(fakeRun(new Set()), [], WIDTH)).toEqual([]);
  });
});
