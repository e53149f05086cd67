/**
 * Merge and split for micro-batches, as pure functions keyed by row index (MLServer
 * `batching/requests.py`): no timers, no sessions, so the splitting logic is tested on its own.
 *
 * A batch is a list of parts; each part is a row range [from, to) of one caller's segment.
 * Batch row i is found by walking the parts in order, so row order in = row order out.
 */
import { ScorerError, isBug } from '../../errors.js';

/** One caller's rows: `rows` rows of float32 features, row-major. */
export interface RowSource {
  readonly features: Float32Array;
  readonly rows: number;
}

/** Rows [from, to) of one segment, as placed in a batch. */
export interface BatchPart<S extends RowSource = RowSource> {
  readonly segment: S;
  readonly from: number;
  readonly to: number;
}

export type RowOutcome =
  | { ok: true; score: number; scores: Record<string, number> }
  | { ok: false; error: ScorerError };

/** The score output of one inference: `data` row-major with `dims[0]` = rows. */
export interface ScoreTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Runs the model on `rows` rows; it may take ownership of (detach) `features`. */
export type RunRows = (features: Float32Array, rows: number) => Promise<RowOutcome[]>;

export const rowsOf = (parts: readonly BatchPart[]): number => parts.reduce((n, p) => n + p.to - p.from, 0);

/**
 * Copies batch rows [from, to) of `parts` into one fresh tensor. Fresh, because the copy is
 * then transferred to a worker (and detached here), while the segments stay intact for a retry.
 */
export function merge(parts: readonly BatchPart[], width: number, from = 0, to = rowsOf(parts)): Float32Array {
  const out = new Float32Array((to - from) * width);
  let batchRow = 0; // batch row index of the current part's first row
  let written = 0;
  for (const { segment, from: pf, to: pt } of parts) {
    const n = pt - pf;
    const lo = Math.max(from, batchRow);
    const hi = Math.min(to, batchRow + n);
    if (lo < hi) {
      const segRow = pf + (lo - batchRow);
      out.set(segment.features.subarray(segRow * width, (segRow + hi - lo) * width), written * width);
      written += hi - lo;
    }
    batchRow += n;
    if (batchRow >= to) break;
  }
  return out;
}

/** Cuts row-indexed batch results back into one array per part, in part order. */
export function split<T>(rowResults: readonly T[], parts: readonly BatchPart[]): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (const p of parts) {
    const n = p.to - p.from;
    out.push(rowResults.slice(at, at + n));
    at += n;
  }
  if (at !== rowResults.length) throw new RangeError(`split: ${rowResults.length} results for ${at} rows`);
  return out;
}

/** How the score output's columns are named in `scores`, computed once per model. */
export interface ScoreSpec {
  /** Manifest key of the score output (used for `${output}_${col}` names). */
  output: string;
  column: number;
  classes?: readonly string[];
}

/**
 * Turns the score tensor into one outcome per row. A non-finite value anywhere in a row's scores
 * is that row's INFERENCE_FAILED (dead letter), never a NaN written into an output event.
 * A tensor of the wrong shape is the model's fault, not a row's: fatal for the whole batch.
 */
export function toOutcomes(tensor: ScoreTensor, rows: number, spec: ScoreSpec): RowOutcome[] {
  const { data, dims } = tensor;
  const cols = rows === 0 ? 0 : data.length / rows;
  if (dims[0] !== rows || !Number.isInteger(cols) || spec.column >= cols) {
    throw new ScorerError('BATCH_INFERENCE_FAILED', `score output "${spec.output}" has shape [${dims.join(', ')}]: expected ${rows} rows with column ${spec.column}`);
  }
  const names = Array.from({ length: cols }, (_, c) => spec.classes?.[c] ?? `${spec.output}_${c}`);
  const out: RowOutcome[] = new Array<RowOutcome>(rows);
  for (let r = 0; r < rows; r++) {
    const scores: Record<string, number> = {};
    let finite = true;
    for (let c = 0; c < cols; c++) {
      const v = data[r * cols + c] as number;
      finite &&= Number.isFinite(v);
      scores[names[c] as string] = v;
    }
    out[r] = finite
      ? { ok: true, score: data[r * cols + spec.column] as number, scores }
      : { ok: false, error: new ScorerError('INFERENCE_FAILED', `non-finite score from the model: ${JSON.stringify(scores)}`) };
  }
  return out;
}

/** Errors that say "the model or our code is broken", which splitting would only repeat. */
const notRowScoped = (err: unknown): boolean => (err instanceof ScorerError && err.kind === 'fatal') || isBug(err);

/**
 * Runs the batch; when the run throws, splits the batch in halves, recursively down to single
 * rows, so one poison row fails alone and the others are scored. Rows are re-merged from the
 * segments for each retry (a run may have detached the tensor it was given).
 * Costs about 2·log2(n) extra runs per poison row; a fatal error or a bug is rethrown unsplit.
 */
export async function isolate(run: RunRows, parts: readonly BatchPart[], width: number): Promise<RowOutcome[]> {
  const attempt = async (from: number, to: number): Promise<RowOutcome[]> => {
    try {
      const outcomes = await run(merge(parts, width, from, to), to - from);
      if (outcomes.length !== to - from) throw new RangeError(`run returned ${outcomes.length} outcomes for ${to - from} rows`);
      return outcomes;
    } catch (err) {
      if (notRowScoped(err)) throw err;
      if (to - from === 1) {
        const msg = err instanceof Error ? err.message : String(err);
        return [{ ok: false, error: new ScorerError('INFERENCE_FAILED', `the model failed on this row alone: ${msg}`, { cause: err }) }];
      }
      const mid = from + Math.ceil((to - from) / 2);
      const left = await attempt(from, mid);
      const right = await attempt(mid, to);
      return left.concat(right);
    }
  };
  const rows = rowsOf(parts);
  return rows === 0 ? [] : attempt(0, rows);
}
