import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, observeMany, zeroCounters } from '../../../src/ops/metrics.js';

const OURS = /^(scorer_|kafka_consumergroup_)/;

const EXPECTED: Record<string, string> = {
  kafka_consumergroup_lag: 'gauge',
  kafka_consumergroup_lag_sum: 'gauge',
  kafka_consumergroup_lag_seconds: 'gauge',
  kafka_consumergroup_lag_status: 'gauge',
  scorer_fetch_lag: 'gauge',
  scorer_records_consumed_total: 'counter',
  scorer_records_scored_total: 'counter',
  scorer_records_dead_lettered_total: 'counter',
  scorer_batch_size_rows: 'histogram',
  scorer_batch_fill_wait_seconds: 'histogram',
  scorer_inference_duration_seconds: 'histogram',
  scorer_end_to_end_latency_seconds: 'histogram',
  scorer_transactions_total: 'counter',
  scorer_transaction_duration_seconds: 'histogram',
  scorer_version_records_scored_total: 'counter',
  scorer_version_records_failed_total: 'counter',
  scorer_version_inference_duration_seconds: 'histogram',
  scorer_version_score: 'histogram',
  scorer_rebalances_total: 'counter',
  scorer_partitions_assigned: 'gauge',
  scorer_partitions_paused: 'gauge',
  scorer_in_flight_rows: 'gauge',
  scorer_model_info: 'gauge',
  scorer_circuit_open: 'gauge',
  scorer_ready: 'gauge',
  scorer_retries_total: 'counter',
  scorer_deployment_changes_total: 'counter',
  scorer_canary_rollbacks_total: 'counter',
  scorer_canary_traffic_ratio: 'gauge',
  scorer_canary_guard_state: 'gauge',
  scorer_model_versions_loaded: 'gauge',
};

describe('createMetrics', () => {
  it('registers exactly the documented metrics with their types', async () => {
    const registry = new Registry();
    createMetrics(registry);
    const ours = (await registry.getMetricsAsJSON()).filter((m) => OURS.test(m.name));
    expect(Object.fromEntries(ours.map((m) => [m.name, String(m.type)]))).toEqual(EXPECTED);
  });

  it('follows Prometheus naming', async () => {
    const registry = new Registry();
    createMetrics(registry);
    for (const m of (await registry.getMetricsAsJSON()).filter((x) => OURS.test(x.name))) {
      expect(m.name).toMatch(/^[a-z_][a-z0-9_]*$/);
      expect(m.help.length).toBeGreaterThan(0);
      // Counters, and only counters, end in _total.
      expect(m.name.endsWith('_total')).toBe(String(m.type) === 'counter');
      // Durations are in seconds, named so.
      if (/duration|latency|wait/.test(m.name)) expect(m.name).toMatch(/_seconds$/);
    }
  });

  it('includes Node.js process metrics', async () => {
    const registry = new Registry();
    createMetrics(registry);
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds']));
  });

  it('gives each registry its own metrics, so tests can run side by side', () => {
    const a = createMetrics(new Registry());
    const b = createMetrics(new Registry());
    a.rebalances.inc();
    expect(a.registry).not.toBe(b.registry);
    expect(() => createMetrics(a.registry)).toThrow(/already been registered/);
  });

  it('exposes observations in the text format', async () => {
    const m = createMetrics(new Registry());
    m.consumerGroupLag.set({ group: 'g', topic: 'features', partition: '0' }, 42);
    m.consumerGroupLagSum.set({ group: 'g', topic: 'features' }, 42);
    m.consumerGroupLagSeconds.set({ group: 'g', topic: 'features', partition: '0' }, 1.5);
    m.fetchLag.set({ topic: 'features', partition: '0' }, 7);
    m.recordsConsumed.inc({ topic: 'features' }, 10);
    m.recordsScored.inc({ topic: 'features', model: 'churn' }, 9);
    m.recordsDeadLettered.inc({ topic: 'features', code: 'BAD_MAGIC_BYTE' });
    m.batchSize.observe(9);
    m.batchFillWait.observe(0.002);
    m.inferenceDuration.observe({ model: 'churn' }, 0.0003);
    m.endToEndLatency.observe(0.04);
    m.transactions.inc({ result: 'committed' });
    m.transactions.inc({ result: 'aborted' });
    m.transactionDuration.observe(0.004);
    m.rebalances.inc();
    m.partitionsAssigned.set(6);
    m.partitionsPaused.set(1);
    m.inFlightRows.set(128);
    m.modelInfo.set({ name: 'churn', version: '1.0.0', sha256: 'abc' }, 1);
    m.circuitOpen.set(0);
    m.ready.set(1);
    m.retries.inc({ stage: 'decode', code: 'REGISTRY_UNAVAILABLE' });

    const text = await m.registry.metrics();
    for (const line of [
      'kafka_consumergroup_lag{group="g",topic="features",partition="0"} 42',
      'kafka_consumergroup_lag_sum{group="g",topic="features"} 42',
      'kafka_consumergroup_lag_seconds{group="g",topic="features",partition="0"} 1.5',
      'scorer_fetch_lag{topic="features",partition="0"} 7',
      'scorer_records_consumed_total{topic="features"} 10',
      'scorer_records_scored_total{topic="features",model="churn"} 9',
      'scorer_records_dead_lettered_total{topic="features",code="BAD_MAGIC_BYTE"} 1',
      'scorer_batch_size_rows_bucket{le="8"} 0',
      'scorer_batch_size_rows_bucket{le="16"} 1',
      'scorer_batch_size_rows_bucket{le="8192"} 1',
      'scorer_batch_fill_wait_seconds_count 1',
      'scorer_inference_duration_seconds_count{model="churn"} 1',
      'scorer_end_to_end_latency_seconds_bucket{le="0.005"} 0',
      'scorer_end_to_end_latency_seconds_bucket{le="60"} 1',
      'scorer_transactions_total{result="committed"} 1',
      'scorer_transactions_total{result="aborted"} 1',
      'scorer_transaction_duration_seconds_bucket{le="0.0025"} 0',
      'scorer_transaction_duration_seconds_bucket{le="0.005"} 1',
      'scorer_rebalances_total 1',
      'scorer_partitions_assigned 6',
      'scorer_partitions_paused 1',
      'scorer_in_flight_rows 128',
      'scorer_model_info{name="churn",version="1.0.0",sha256="abc"} 1',
      'scorer_circuit_open 0',
      'scorer_ready 1',
      'scorer_retries_total{stage="decode",code="REGISTRY_UNAVAILABLE"} 1',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toContain('# TYPE scorer_end_to_end_latency_seconds histogram');
  });

  it('zeroCounters starts every dead-letter code, transient retry, transaction and deployment-change result at 0, so increase() sees the first one', async () => {
    const metrics = createMetrics(new Registry());
    zeroCounters(metrics, 'features');
    const text = await metrics.registry.metrics();
    for (const code of ['BAD_MAGIC_BYTE', 'UNKNOWN_SCHEMA_ID', 'UNSUPPORTED_SCHEMA_TYPE', 'INCOMPATIBLE_SCHEMA', 'MALFORMED_PAYLOAD', 'INVALID_FEATURE', 'INFERENCE_FAILED'])
      expect(text).toContain(`scorer_records_dead_lettered_total{topic="features",code="${code}"} 0`);
    expect(text).toContain('scorer_retries_total{stage="decode",code="REGISTRY_UNAVAILABLE"} 0');
    expect(text).toContain('scorer_retries_total{stage="produce",code="KAFKA_UNAVAILABLE"} 0');
    expect(text).toContain('scorer_transactions_total{result="committed"} 0');
    expect(text).toContain('scorer_transactions_total{result="aborted"} 0');
    expect(text).toContain('scorer_deployment_changes_total{result="applied"} 0');
    expect(text).toContain('scorer_deployment_changes_total{result="refused"} 0');
    // Fatal codes are not retries of a transient failure: not pre-created.
    expect(text).not.toContain('PRODUCER_FENCED');
  });

  describe('observeMany', () => {
    // On bounds, between them, above the last (only +Inf), at 0 and below.
    const values = [0.005, 0.0049, 0.04, 0.1, 0.10001, 59.9, 60, 61, 1_000, 0, -0.5, 0.25, 0.25];

    it('gives the exposition that one observe() per value gives', async () => {
      const each = createMetrics(new Registry());
      for (const v of values) each.endToEndLatency.observe(v);
      const many = createMetrics(new Registry());
      observeMany(many.endToEndLatency, values.length, (i) => values[i] as number);
      observeMany(many.endToEndLatency, 0, () => Number.NaN); // nothing to observe: nothing read
      const text = async (r: Registry) => (await r.metrics()).split('\n').filter((l) => l.startsWith('scorer_end_to_end_latency_seconds')).join('\n');
      expect(await text(many.registry)).toBe(await text(each.registry));
      expect(await text(many.registry)).toContain('scorer_end_to_end_latency_seconds_count 13');
    });

    it("counts into prom-client's own series (the fields it was written against are there)", () => {
      const m = createMetrics(new Registry());
      m.endToEndLatency.observe(1);
      const internals = m.endToEndLatency as unknown as { upperBounds: number[]; hashMap: Record<string, { sum: number; count: number; bucketValues: Record<number, number> }> };
      expect(internals.upperBounds).toContain(1);
      expect(internals.hashMap['']).toMatchObject({ sum: 1, count: 1, bucketValues: expect.objectContaining({ 1: 1 }) });
    });

    it('refuses a value that is not a number, as observe() does', () => {
      const m = createMetrics(new Registry());
      expect(() => observeMany(m.endToEndLatency, 2, (i) => (i === 0 ? 1 : Number.NaN))).toThrow(/not a valid number/);
    });
  });
});
