/** Small shared fixtures for tests: repository paths, a valid churn event, a catcher for ScorerErrors, temp folders. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';
import { ScorerError } from '../../src/errors.js';
import type { FeatureEvent } from '../../src/stages/vectorize.js';

/** A path inside the repository, from its root (tests live at different depths). */
export const repoPath = (rel: string): string => fileURLToPath(new URL(`../../${rel}`, import.meta.url));

/** A JSON file of the repository (a manifest, a schema, a fixture), by its path from the root. */
export const readRepoJson = <T>(rel: string): T => JSON.parse(readFileSync(repoPath(rel), 'utf8')) as T;

/** A valid churn feature record with distinct values per column, so a column written to the wrong slot shows. */
export const CHURN_FEATURES: Record<string, number | boolean> = {
  tenure_months: 24,
  monthly_charges: 79.5,
  total_charges: 1908,
  contract_months: 12,
  num_products: 3,
  has_autopay: true,
  support_tickets_90d: 2,
  late_payments_12m: 1,
  sessions_30d: 41,
  avg_session_minutes: 12.25,
  days_since_last_login: 5,
  data_usage_gb: 7.75,
  discount_pct: 10,
  nps_score: 8,
};

/** A valid churn event; `features` overrides single fields. */
export const churnEvent = (features: Record<string, unknown> = {}): FeatureEvent => ({
  event_id: 'e-1',
  event_time: 1_700_000_000_000,
  entity_id: 'c-1',
  features: { ...CHURN_FEATURES, ...features },
});

/** Runs fn and returns the ScorerError it throws (failing the test if it throws anything else or nothing). */
export function thrown(fn: () => unknown): ScorerError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScorerError);
    return err as ScorerError;
  }
  throw new Error('expected a ScorerError, nothing was thrown');
}

const made: string[] = [];
// Registered when a test file first imports this module (each file has its own module graph), so
// it runs after that file: a hook registered from inside a running test would never run.
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh folder under the OS temp dir, deleted with everything in it after the test file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
