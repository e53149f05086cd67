/**
 * A loaded version's RowScorer as one role of one deployment generation sees it. The chunk
 * processor scores through these and needs to know nothing of guards or roles:
 *   - every call reports its rows and failed rows (the canary guard's failure rate, the counts
 *     of GET /models), and a rejection (the model cannot score: circuit, dead workers);
 *   - the shadow's never rejects with a ScorerError: its failures become failed outcomes (never
 *     dead letters: the chunk processor drops them), so a broken shadow cannot fail, pause or
 *     retry the main output. Bugs (TypeError, RangeError) still throw.
 * close() is the model set's business (a version is unloaded when no generation uses it), so
 * here it does nothing.
 */
import { ScorerError } from '../errors.js';
import type { RowOutcome, RowScorer } from '../stages/infer/infer.js';

export type Role = 'stable' | 'canary' | 'shadow';

export interface ScoreReport {
  version: string;
  role: Role;
  rows: number;
  /** Rows whose outcome is a failure (INFERENCE_FAILED, non-finite score), or every row of a rejected call. */
  failed: number;
  /** Set when the call was rejected (for the shadow: swallowed). */
  error?: ScorerError;
  /** The call's outcomes (absent when rejected): the score histograms by version read them. */
  outcomes?: readonly RowOutcome[];
}

export function roleScorer(inner: RowScorer, version: string, role: Role, report: (r: ScoreReport) => void): RowScorer {
  return {
    get inFlightRows() {
      return inner.inFlightRows;
    },
    warmUp: () => inner.warmUp(),
    close: () => Promise.resolve(),
    async score(features: Float32Array, rows: number): Promise<RowOutcome[]> {
      let outcomes: RowOutcome[];
      try {
        outcomes = await inner.score(features, rows);
      } catch (err) {
        if (!(err instanceof ScorerError)) throw err;
        report({ version, role, rows, failed: rows, error: err });
        if (role !== 'shadow') throw err;
        return Array.from({ length: rows }, () => ({ ok: false, error: err }));
      }
      let failed = 0;
      for (const o of outcomes) if (!o.ok) failed++;
      report({ version, role, rows, failed, outcomes });
      return outcomes;
    },
  };
}
