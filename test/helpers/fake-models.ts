/**
 * A model generation for chunk-processor tests and benchmarks outside the model set: one stable
 * version (and optionally a shadow scoring every record to its own topic), given its scorer.
 */
import type { Lease, Served } from '../../src/model/generation.js';
import { Router } from '../../src/model/routing.js';
import type { Generations } from '../../src/stages/chunk.js';
import type { RowScorer } from '../../src/stages/infer/infer.js';

type Score = Pick<RowScorer, 'score'>;
const served = (version: string, scorer: Score): Served => ({ version, model: { manifest: { name: 'm', version } }, scorer }) as unknown as Served;

export function oneGeneration(scorer: Score, { shadowTopic }: { shadowTopic?: string } = {}): Generations {
  const stable = served('1', scorer);
  const shadow = shadowTopic === undefined ? undefined : { ...served('2', scorer), topic: shadowTopic, percent: 100 };
  const lease: Lease = {
    generation: 1,
    stable,
    canary: undefined,
    shadow,
    router: new Router({ canaryPercent: 0, shadowPercent: shadow === undefined ? 0 : 100 }),
    pick: () => stable,
    shadowed: () => shadow !== undefined,
    release: () => undefined,
  };
  return { acquire: () => lease };
}
