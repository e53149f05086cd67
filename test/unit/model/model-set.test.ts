// The model set with real models (onnxruntime on the main thread): start, swap and unload at a
// chunk boundary, changes refused whole with their reasons, and the guard rolling back,
// promoting and resuming its decisions from a store shared by instances.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type GuardRecord, type RolloutStore, mergeRecords } from '../../../src/model/guard.js';
import { ModelSet, type ModelSetOptions, type Served } from '../../../src/model/model-set.js';
import { type CreateScorer, rowScorerFactory } from '../../../src/model/prepare.js';
import { canaryKey, parseDeployment } from '../../../src/model/deployment.js';
import { createMetrics } from '../../../src/ops/metrics.js';
import { Vectorizer } from '../../../src/stages/vectorize.js';
import { churnEvent, readRepoJson, repoPath } from '../../helpers/fixtures.js';
import { tempRepository } from '../../helpers/repository.js';

// Genuinely slow, not racy: every test opens and warms up real onnxruntime sessions (~2 s for the
// file on a quiet machine, past 5 s for one test with the machine loaded). 30 s for this file only.
vi.setConfig({ testTimeout: 30_000 });

const createScorer = rowScorerFactory({
  batch: { maxSize: 256, maxDelayMs: 1, idleDispatch: true },
  infer: { mode: 'main', workers: 1, intraOpThreads: 1, graphOptimization: 'all', spinning: false },
  circuit: { failureThreshold: 3, cooldownMs: 0 },
});
const sets: ModelSet[] = [];
afterEach(async () => {
  await Promise.all(sets.splice(0).map((s) => s.close(1_000)));
});

/** Guard decisions shared by every set given it, like the compacted topic (without the broker). */
class MemoryStore implements RolloutStore {
  readonly #records = new Map<string, GuardRecord>();
  readonly #listeners: ((r: GuardRecord) => void)[] = [];
  writes: GuardRecord[] = [];
  get(key: string) {
    return this.#records.get(key);
  }
  async write(r: GuardRecord) {
    this.writes.push(r);
    if (mergeRecords(this.#records.get(r.key), r) === r) this.#records.set(r.key, r);
    for (const l of this.#listeners) l(r);
  }
  onRecord(l: (r: GuardRecord) => void) {
    this.#listeners.push(l);
  }
}

function options(repository: string, extra: Partial<ModelSetOptions> = {}) {
  const registry = new Registry();
  const opts: ModelSetOptions = {
    repository, deploymentFile: join(repository, 'deployment.json'), createScorer, logger: pino({ level: 'silent' }),
    metrics: createMetrics(registry), instance: 'pod-a', reservedTopics: ['features', 'scores', 'scores-dlq'], guard: { minLatencySamples: 1 }, ...extra,
  };
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const m = await registry.getSingleMetric(name)?.get();
    return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
  };
  return { opts, metric };
}

async function start(repository: string, deployment: unknown, extra: Partial<ModelSetOptions> = {}) {
  const { opts, metric } = options(repository, extra);
  const set = await ModelSet.start(opts, deployment === undefined ? undefined : JSON.stringify(deployment));
  sets.push(set);
  return { set, metric };
}

/** n churn rows, every `badEvery`-th with support_tickets_90d = 6 (the flaky model's NaN rows). */
function rows(served: Served, n: number, badEvery = 0): Float32Array {
  const vectorizer = new Vectorizer(served.model.manifest, avro.Type.forSchema(served.model.readerSchema));
  const out = new Float32Array(n * vectorizer.width);
  for (let r = 0; r < n; r++) vectorizer.write(churnEvent(badEvery > 0 && r % badEvery === 0 ? { support_tickets_90d: 6 } : {}), out, r);
  return out;
}

const FIXTURE = (name: string) => readRepoJson<{ rows: number[][]; onnxruntimeProbability: number[] }>(`test/fixtures/${name}`);

describe('ModelSet: start and swap', () => {
  it('without a deployment file serves the highest version alone', async () => {
    const { set, metric } = await start(tempRepository(), undefined);
    expect(set.current().stable.version).toBe('1.1.0');
    expect(set.current().canary).toBeUndefined();
    expect(await metric('scorer_model_versions_loaded')).toBe(1);
    expect(await metric('scorer_canary_guard_state', { state: 'none' })).toBe(1);
    expect(set.snapshot()).toMatchObject({ deployment: null, generation: 1, effective: { stable: '1.1.0' }, versions: [{ version: '1.1.0', role: 'stable', traffic: 1 }], guard: null, refusals: [] });
  });

  it('serves each role with its own version, scores equal to onnxruntime for each', async () => {
    const { set, metric } = await start(tempRepository(['1.0.0', '1.1.0', '1.2.0-flaky']), {
      stable: '1.0.0', canary: { version: '1.1.0', percent: 20 }, shadow: { version: '1.2.0-flaky', topic: 'scores-shadow', percent: 50 },
    });
    const m = set.current();
    for (const [served, fixture] of [[m.stable, 'churn-expected.json'], [m.canary as Served, 'churn-1.1.0-expected.json']] as const) {
      const f = FIXTURE(fixture);
      const outcomes = await served.scorer.score(new Float32Array(f.rows.flat()), f.rows.length);
      outcomes.forEach((o, i) => expect(o.ok && Math.abs(o.score - (f.onnxruntimeProbability[i] as number))).toBeLessThan(1e-6));
    }
    const keys = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`customer-${i}`));
    const canary = keys.filter((k) => m.pick(k, 0, 0n).version === '1.1.0').length / keys.length;
    expect(Math.abs(canary - 0.2)).toBeLessThanOrEqual(0.03);
    expect(Math.abs(keys.filter((k) => m.shadowed(k, 0, 0n)).length / keys.length - 0.5)).toBeLessThanOrEqual(0.03);
    expect(await metric('scorer_canary_traffic_ratio')).toBe(0.2);
    expect(await metric('scorer_canary_guard_state', { state: 'unguarded' })).toBe(1);
    expect(set.snapshot().versions.map((v) => [v.version, v.role, v.traffic])).toEqual([['1.0.0', 'stable', 0.8], ['1.1.0', 'canary', 0.2], ['1.2.0-flaky', 'shadow', 0.5]]);
  });

  it('switches at a chunk boundary: a held generation keeps its version until released, then it is unloaded', async () => {
    const dir = tempRepository();
    const { set, metric } = await start(dir, { stable: '1.0.0' });
    const chunk = set.acquire();
    expect(await set.apply(JSON.stringify({ stable: '1.1.0' }), 'watch')).toEqual({ result: 'applied', generation: 2 });
    expect(set.current().stable.version).toBe('1.1.0');
    expect(chunk.stable.version).toBe('1.0.0'); // the running chunk is not switched under its feet ...
    expect((await chunk.stable.scorer.score(rows(chunk.stable, 3), 3)).every((o) => o.ok)).toBe(true); // ... and can still score
    expect(set.snapshot().versions.map((v) => [v.version, v.role])).toEqual([['1.0.0', 'retiring'], ['1.1.0', 'stable']]);
    chunk.release();
    chunk.release(); // idempotent
    expect(set.snapshot().versions.map((v) => v.version)).toEqual(['1.1.0']);
    expect(await metric('scorer_model_versions_loaded')).toBe(1);
    // Rollback is the file pointing back: 1.0.0 is loaded again.
    expect((await set.apply(JSON.stringify({ stable: '1.0.0' }), 'watch')).result).toBe('applied');
    expect(set.current().stable.version).toBe('1.0.0');
    expect(await metric('scorer_deployment_changes_total', { result: 'applied' })).toBe(2);
    expect((await set.apply(JSON.stringify({ stable: '1.0.0' }), 'signal')).result).toBe('unchanged');
  });

  it('refuses a start it cannot serve, with what refused it', async () => {
    const dir = tempRepository(['1.0.0', '1.3.0-nowarmup']);
    const { opts } = options(dir);
    await expect(ModelSet.start(opts, '{"stable": "2.0.0"}')).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('stable: no version "2.0.0" in the repository') });
    await expect(ModelSet.start(opts, JSON.stringify({ stable: '1.0.0', canary: { version: '1.3.0-nowarmup', percent: 5 } }))).rejects.toMatchObject({ message: expect.stringMatching(/^version 1\.3\.0-nowarmup fails its warm-up inference: /) });
  });
});

describe('ModelSet: refused changes', () => {
  it('refuses each bad change whole with its reason; the current deployment keeps scoring', async () => {
    const dir = tempRepository(['1.0.0', '1.1.0', '1.3.0-nowarmup', '1.4.0-misfit']);
    const { set, metric } = await start(dir, { stable: '1.0.0' });
    const cases: [string, RegExp][] = [
      ['{ "stable": "1.1.0", ', /^MODEL_DEPLOYMENT: .*deployment\.json: not valid JSON/],
      ['{ "stable": "9.0.0" }', /stable: no version "9\.0\.0" in the repository/],
      [JSON.stringify({ stable: '1.1.0', canary: { version: '1.3.0-nowarmup', percent: 10 } }), /^version 1\.3\.0-nowarmup fails its warm-up inference: warm-up inference failed: .*Gather/],
      [JSON.stringify({ stable: '1.1.0', canary: { version: '1.4.0-misfit', percent: 10 } }), /^version 1\.4\.0-misfit does not fit its reader schema: MODEL_REPOSITORY: model churn reads features\.loyalty_points, which the reader schema does not have/],
    ];
    for (const [text, reason] of cases) {
      const r = await set.apply(text, 'watch');
      expect(r.result).toBe('refused');
      expect(r.reason).toMatch(reason);
      expect(set.current().generation).toBe(1);
      expect(set.current().stable.version).toBe('1.0.0');
    }
    expect(set.refuse('cannot read deployment.json: ENOENT', 'watch').result).toBe('refused');
    const view = set.snapshot();
    expect(view.refusals.map((r) => r.reason)).toHaveLength(5);
    expect(view.lastChange).toMatchObject({ result: 'refused', source: 'watch', reason: 'cannot read deployment.json: ENOENT' });
    expect(view.versions.map((v) => v.version)).toEqual(['1.0.0']); // what failed was closed, not kept
    expect(await metric('scorer_deployment_changes_total', { result: 'refused' })).toBe(5);
    expect((await set.current().stable.scorer.score(rows(set.current().stable, 2), 2)).every((o) => o.ok)).toBe(true);
  });

  it('refuses a version whose files changed on disk after it was loaded', async () => {
    const dir = tempRepository();
    const { set } = await start(dir, { stable: '1.0.0' });
    cpSync(join(dir, '1.1.0', 'model.onnx'), join(dir, '1.0.0', 'model.onnx'));
    const r = await set.apply(JSON.stringify({ stable: '1.0.0', canary: { version: '1.1.0', percent: 5 } }), 'watch');
    expect(r.reason).toMatch(/^version 1\.0\.0 changed on disk since it was loaded \(sha256 [0-9a-f]{12} -> [0-9a-f]{12}\); publish a new version folder instead$/);
  });
});

describe('ModelSet: canary guard', () => {
  const guarded = (version: string, extra: Record<string, unknown> = {}) => ({
    stable: '1.0.0', canary: { version, percent: 50, guard: { minRows: 200, maxFailureRate: 0.01, maxP99Ratio: 1000, promoteAfterRows: 400, ...extra } },
  });

  it('rolls a failing canary back, counts it, persists it, unloads it, and a restart resumes it', async () => {
    const dir = tempRepository(['1.0.0', '1.2.0-flaky']);
    const store = new MemoryStore();
    const { set, metric } = await start(dir, guarded('1.2.0-flaky'), { store });
    const canary = set.current().canary as Served;
    expect(canary.version).toBe('1.2.0-flaky');
    for (let i = 0; i < 3 && set.current().canary !== undefined; i++) await canary.scorer.score(rows(canary, 100, 10), 100); // 10 % NaN rows
    expect(set.current().canary).toBeUndefined();
    expect(set.current().generation).toBe(2);
    expect(await metric('scorer_canary_rollbacks_total', { version: '1.2.0-flaky' })).toBe(1);
    expect(await metric('scorer_canary_traffic_ratio')).toBe(0);
    expect(await metric('scorer_canary_guard_state', { state: 'rolled_back' })).toBe(1);
    expect(await metric('scorer_canary_guard_state', { state: 'observing' })).toBe(0);
    const view = set.snapshot();
    expect(view.guard).toMatchObject({ state: 'rolled_back', canary: '1.2.0-flaky', lastDecision: { action: 'rollback', reason: 'failure rate 10.00% (20 of 200 rows) above maxFailureRate 1.00%' } });
    expect(view.versions.map((v) => v.version)).toEqual(['1.0.0']);
    expect(view.lastChange).toMatchObject({ source: 'guard', reason: expect.stringContaining('failure rate') });
    expect(store.writes).toHaveLength(1);

    const restarted = await start(dir, guarded('1.2.0-flaky'), { store, instance: 'pod-a-2' });
    expect(restarted.set.current().canary).toBeUndefined();
    expect(restarted.set.snapshot().guard?.state).toBe('rolled_back');
    expect(restarted.set.snapshot().versions.map((v) => v.version)).toEqual(['1.0.0']); // never loaded
  });

  it('rolls back at once a canary that cannot score at all (every row of its batches fails)', async () => {
    const dir = tempRepository(['1.0.0']);
    // The circuit-breaker fixture: passes warm-up, fails every real event.
    mkdirSync(join(dir, '1.5.0-broken'));
    cpSync(repoPath('test/fixtures/broken/broken.onnx'), join(dir, '1.5.0-broken', 'model.onnx'));
    const manifest = readRepoJson<Record<string, unknown>>('test/fixtures/broken/broken.manifest.json');
    writeFileSync(join(dir, '1.5.0-broken', 'manifest.json'), JSON.stringify({ ...manifest, version: '1.5.0-broken', eventSchema: undefined }));
    const { set } = await start(dir, { stable: '1.0.0', canary: { version: '1.5.0-broken', percent: 10 } });
    const canary = set.current().canary as Served;
    await expect(canary.scorer.score(rows(canary, 8), 8)).rejects.toMatchObject({ code: 'BATCH_INFERENCE_FAILED' });
    expect(set.current().canary).toBeUndefined();
    expect(set.snapshot().guard).toMatchObject({ state: 'rolled_back', lastDecision: { reason: expect.stringMatching(/^the canary cannot score: /) } });
  });

  it('promotes a healthy canary step by step; at 100 it is stable and the old stable is unloaded', async () => {
    const { set, metric } = await start(tempRepository(), guarded('1.1.0', { promote: [80, 100] }));
    const percents: number[] = [];
    for (let i = 0; i < 20 && set.current().canary !== undefined; i++) {
      const m = set.acquire();
      percents.push(m.canary?.percent ?? 0);
      await m.stable.scorer.score(rows(m.stable, 10), 10);
      await m.canary?.scorer.score(rows(m.canary, 100), 100);
      m.release();
    }
    expect([...new Set(percents)]).toEqual([50, 80]);
    expect(set.current().stable.version).toBe('1.1.0');
    expect(set.snapshot().versions.map((v) => [v.version, v.role])).toEqual([['1.1.0', 'stable']]);
    expect(await metric('scorer_canary_guard_state', { state: 'promoted' })).toBe(1);
    expect(set.snapshot().guard?.lastDecision?.reason).toMatch(/^healthy for 400 rows \(failure rate 0\.00%, p99 inference .*\): 80% -> 100%$/);
  });

  it('takes a decision recorded while the change was loading, and keeps nothing it loaded for nothing', async () => {
    const dir = tempRepository(['1.0.0', '1.2.0-flaky']);
    const store = new MemoryStore();
    const file = guarded('1.2.0-flaky');
    const key = canaryKey(parseDeployment(JSON.stringify(file), { file: 'f', versions: ['1.0.0', '1.2.0-flaky'] })) as string;
    const decision = { action: 'rollback' as const, at: 1, reason: 'failure rate 9.00% (450 of 5000 rows) above maxFailureRate 1.00%', fromPercent: 50, toPercent: 0 };
    const racing: CreateScorer = async (model, hooks) => {
      if (model.manifest.version === '1.2.0-flaky') await store.write({ key, stable: '1.0.0', canary: '1.2.0-flaky', state: 'rolled_back', step: 0, percent: 0, decision, by: 'pod-b' });
      return createScorer(model, hooks);
    };
    const { set } = await start(dir, { stable: '1.0.0' }, { store, createScorer: racing });
    expect((await set.apply(JSON.stringify(file), 'watch')).result).toBe('applied');
    expect(set.current().canary).toBeUndefined();
    expect(set.snapshot().guard).toMatchObject({ state: 'rolled_back', lastDecision: decision });
    expect(set.snapshot().versions.map((v) => v.version)).toEqual(['1.0.0']);
  });

  it('an instance adopts the rollback another instance decided', async () => {
    const dir = tempRepository(['1.0.0', '1.2.0-flaky']);
    const store = new MemoryStore();
    const a = await start(dir, guarded('1.2.0-flaky'), { store, instance: 'pod-a' });
    const b = await start(dir, guarded('1.2.0-flaky'), { store, instance: 'pod-b' });
    const canary = a.set.current().canary as Served;
    while (a.set.current().canary !== undefined) await canary.scorer.score(rows(canary, 100, 5), 100);
    expect(b.set.current().canary).toBeUndefined();
    expect(b.set.snapshot().lastChange?.reason).toMatch(/\(decided by pod-a\)$/);
    expect(await b.metric('scorer_canary_rollbacks_total', { version: '1.2.0-flaky' })).toBe(0); // counted where decided
  });
});

describe('ModelSet guard state survives a file change that keeps the rollout', () => {
  it('adding a shadow keeps the rolled-back canary rolled back', async () => {
    const dir = tempRepository(['1.0.0', '1.1.0', '1.2.0-flaky']);
    const file = { stable: '1.0.0', canary: { version: '1.2.0-flaky', percent: 50, guard: { minRows: 100 } } };
    const { set } = await start(dir, file);
    const canary = set.current().canary as Served;
    await canary.scorer.score(rows(canary, 100, 2), 100);
    expect(set.current().canary).toBeUndefined();
    expect((await set.apply(JSON.stringify({ ...file, shadow: { version: '1.1.0', topic: 'scores-shadow' } }), 'watch')).result).toBe('applied');
    expect(set.current().canary).toBeUndefined();
    expect(set.current().shadow?.version).toBe('1.1.0');
  });
});
