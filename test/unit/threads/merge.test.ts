import { Registry, collectDefaultMetrics } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLagMetrics, createMetrics } from '../../../src/ops/metrics.js';
import type { HealthState } from '../../../src/ops/http.js';
import { mergeHealth, mergeMetrics, mergeProgress } from '../../../src/threads/merge.js';

/** A pipeline's registry as createMetrics builds it, with a few values set. */
function pipeline(scored: number, ready: 0 | 1, circuit: 0 | 1) {
  const registry = new Registry();
  const m = createMetrics(registry);
  m.recordsScored.inc({ topic: 'in', model: 'churn' }, scored);
  m.batchSize.observe(scored);
  m.ready.set(ready);
  m.circuitOpen.set(circuit);
  m.modelInfo.set({ name: 'churn', version: '1.0.0', sha256: 'ab' }, 1);
  m.partitionsAssigned.set(3);
  return registry;
}

const value = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('mergeMetrics', () => {
  it('adds the pipelines up under unchanged names and labels, each metric by its aggregator', async () => {
    const own = new Registry();
    collectDefaultMetrics({ register: own }); // as the supervisor has them
    const lag = createLagMetrics(own);
    lag.consumerGroupLagSum.set({ group: 'g', topic: 'in' }, 42);
    const [a, b] = [pipeline(100, 1, 0), pipeline(50, 0, 1)];
    const text = await mergeMetrics(await own.getMetricsAsJSON(), [await a.getMetricsAsJSON(), await b.getMetricsAsJSON()]).metrics();
    expect(value(text, 'scorer_records_scored_total{topic="in",model="churn"}')).toBe(150); // counters: sum
    expect(value(text, 'scorer_batch_size_rows_count')).toBe(2); // histograms: sum
    expect(value(text, 'scorer_batch_size_rows_sum')).toBe(150);
    expect(value(text, 'scorer_partitions_assigned')).toBe(6); // per-pipeline counts: sum
    expect(value(text, 'scorer_ready')).toBe(0); // ready only when every pipeline is
    expect(value(text, 'scorer_circuit_open')).toBe(1); // open when any is
    expect(value(text, 'scorer_model_info{name="churn",version="1.0.0",sha256="ab"}')).toBe(1); // the same model: not 2
    expect(value(text, 'kafka_consumergroup_lag_sum{group="g",topic="in"}')).toBe(42); // the supervisor's lag poller
    // Every metric a single pipeline exports is there, none twice.
    const names = (t: string) => t.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(names(text).sort()).toEqual([...new Set([...names(await a.metrics())])].sort());
  });

  it('takes process-wide figures (CPU, RSS) from the supervisor only, not once per thread', async () => {
    const own = new Registry();
    createMetrics(own); // the supervisor's process_* (and nodejs_*) defaults
    const text = await mergeMetrics(await own.getMetricsAsJSON(), [await pipeline(1, 1, 0).getMetricsAsJSON(), await pipeline(1, 1, 0).getMetricsAsJSON()]).metrics();
    const ownText = await own.metrics();
    const cpu = (t: string) => value(t, 'process_cpu_user_seconds_total') ?? NaN;
    // A fresh sample is taken per registry read: the merged figure is the supervisor's, within scheduling noise, not three times it.
    expect(cpu(text)).toBeLessThan(cpu(ownText) * 2 + 0.5);
    expect(text.split('\n').filter((l) => l.startsWith('nodejs_version_info')).length).toBe(1);
  });
});

const healthy = (extra: Partial<HealthState['checks']> = {}): HealthState => ({
  live: true,
  ready: true,
  checks: { model: true, registry: true, topics: true, shuttingDown: false, consumerJoined: true, circuitOpen: false, ...extra },
});

describe('mergeHealth', () => {
  it('is ready only when every pipeline is', () => {
    expect(mergeHealth([healthy(), healthy()], false)).toEqual({ live: true, ready: true, checks: { ...healthy().checks, pipelines: true } });
    const one = mergeHealth([healthy(), { ...healthy({ consumerJoined: false }), ready: false }], false);
    expect(one.ready).toBe(false);
    expect(one.live).toBe(true);
    expect(one.checks.consumerJoined).toBe('pipeline 0: true, pipeline 1: false');
  });

  it('is neither ready nor live when a pipeline does not answer, and not ready while shutting down or with no pipeline yet', () => {
    const silent = mergeHealth([healthy(), 'no answer within 2000 ms'], false);
    expect(silent).toMatchObject({ live: false, ready: false, checks: { pipelines: 'pipeline 1: no answer within 2000 ms' } });
    expect(mergeHealth([healthy(), healthy()], true)).toMatchObject({ live: true, ready: false, checks: { shuttingDown: true } });
    expect(mergeHealth([], false)).toMatchObject({ live: true, ready: false });
  });
});

describe('mergeProgress', () => {
  it('keeps the oldest pending record of a partition two pipelines report during a rebalance', () => {
    const merged = mergeProgress([
      [[0, { oldestPendingAt: 200, paused: false }], [1, { oldestPendingAt: undefined, paused: false }]],
      [[0, { oldestPendingAt: 100, paused: true }], [2, { oldestPendingAt: 50, paused: false }]],
    ]);
    expect(Object.fromEntries(merged)).toEqual({
      0: { oldestPendingAt: 100, paused: true },
      1: { oldestPendingAt: undefined, paused: false },
      2: { oldestPendingAt: 50, paused: false },
    });
  });
});
