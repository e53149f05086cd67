/**
 * MODEL_PATH: one model for the process's life, served as a generation that never changes —
 * stable only, no canary, no shadow — so the chunk processor has one path for both sources.
 */
import type { ActiveModels, Lease, Served } from './generation.js';
import { Router } from './routing.js';

export function singleModel(stable: Served): { acquire(): Lease; current(): ActiveModels } {
  const models: ActiveModels = {
    generation: 1,
    stable,
    canary: undefined,
    shadow: undefined,
    router: new Router({ canaryPercent: 0, shadowPercent: 0 }),
    pick: () => stable,
    shadowed: () => false,
  };
  const lease: Lease = { ...models, release: () => undefined };
  return { acquire: () => lease, current: () => models };
}
