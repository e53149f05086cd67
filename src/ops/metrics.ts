/**
 * Every metric the scorer exports, in one place, registered on an injected registry (each test
 * gets a fresh one). Names follow Prometheus conventions (_total, _seconds); consumer lag uses
 * the kafka_consumergroup_* names kafka_exporter made standard, so existing dashboards chart it.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';

// 1, 2, 4, ... 8192 rows: BATCH_MAX_SIZE is usually a power of two.
const ROW_BUCKETS = exponentialBuckets(1, 2, 14);
// Sub-millisecond to seconds: light models infer a batch in tens of microseconds.
const FAST_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
// Event time to commit: a transaction round trip is milliseconds; minutes of lag are an incident.
const E2E_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(registry: Registry = new Registry()) {
  const r = [registry];
  // Node.js process metrics: event-loop lag, heap, GC pauses, CPU, file descriptors.
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    /** gauge, messages: broker offset (high watermark, or last stable offset under read_committed) minus the group's committed offset, polled every LAG_POLL_INTERVAL_MS. */
    consumerGroupLag: new Gauge({ name: 'kafka_consumergroup_lag', help: 'Messages the consumer group is behind, per partition (end offset - committed offset).', labelNames: ['group', 'topic', 'partition'] as const, registers: r }),
    /** gauge, messages: kafka_consumergroup_lag summed over the partitions of a topic. */
    consumerGroupLagSum: new Gauge({ name: 'kafka_consumergroup_lag_sum', help: 'Messages the consumer group is behind, summed over partitions.', labelNames: ['group', 'topic'] as const, registers: r }),
    /** gauge, seconds: now - timestamp of the first record of the oldest fetched batch not yet committed; 0 when caught up. */
    consumerGroupLagSeconds: new Gauge({ name: 'kafka_consumergroup_lag_seconds', help: 'Age of the oldest unscored event, per partition (0 when caught up).', labelNames: ['group', 'topic', 'partition'] as const, registers: r }),
    /** gauge, messages: high watermark - our fetch position, from each fetched batch (no broker round trip). */
    fetchLag: new Gauge({ name: 'scorer_fetch_lag', help: 'High watermark minus the fetch position, per partition, as of the last fetched batch.', labelNames: ['topic', 'partition'] as const, registers: r }),
    /** counter, records: input records handed to the pipeline (including ones later dead-lettered). */
    recordsConsumed: new Counter({ name: 'scorer_records_consumed_total', help: 'Input records consumed.', labelNames: ['topic'] as const, registers: r }),
    /** counter, records: scored events committed to the output topic. */
    recordsScored: new Counter({ name: 'scorer_records_scored_total', help: 'Records scored and committed to the output topic.', labelNames: ['topic', 'model'] as const, registers: r }),
    /** counter, records: dead letters committed, by ScorerError code. */
    recordsDeadLettered: new Counter({ name: 'scorer_records_dead_lettered_total', help: 'Records committed to the dead-letter topic, by error code.', labelNames: ['topic', 'code'] as const, registers: r }),
    /** histogram, rows: rows per inference batch. */
    batchSize: new Histogram({ name: 'scorer_batch_size_rows', help: 'Rows per inference batch.', buckets: ROW_BUCKETS, registers: r }),
    /** histogram, seconds: from a batch's first row to its dispatch to the model. */
    batchFillWait: new Histogram({ name: 'scorer_batch_fill_wait_seconds', help: 'Time from the first row of a batch to its dispatch.', buckets: FAST_SECONDS, registers: r }),
    /** histogram, seconds: one inference call (session.run, or the worker round trip). */
    inferenceDuration: new Histogram({ name: 'scorer_inference_duration_seconds', help: 'Duration of one batch inference.', labelNames: ['model'] as const, buckets: FAST_SECONDS, registers: r }),
    /** histogram, seconds: event timestamp to the commit of its scored event (includes producer-side delay). */
    endToEndLatency: new Histogram({ name: 'scorer_end_to_end_latency_seconds', help: 'Time from the event timestamp to the commit of its score.', buckets: E2E_SECONDS, registers: r }),
    /** counter, transactions: per-partition transactions, by outcome. */
    transactions: new Counter({ name: 'scorer_transactions_total', help: 'Transactions by result (committed, aborted).', labelNames: ['result'] as const, registers: r }),
    /** counter, rebalances: group rebalances this instance took part in. */
    rebalances: new Counter({ name: 'scorer_rebalances_total', help: 'Consumer group rebalances.', registers: r }),
    /** gauge, partitions: input partitions assigned to this instance. */
    partitionsAssigned: new Gauge({ name: 'scorer_partitions_assigned', help: 'Input partitions assigned to this instance.', registers: r }),
    /** gauge, partitions: assigned partitions paused by backpressure or retries. */
    partitionsPaused: new Gauge({ name: 'scorer_partitions_paused', help: 'Assigned partitions currently paused.', registers: r }),
    /** gauge, rows: rows fetched but not yet committed (the backpressure measure). */
    inFlightRows: new Gauge({ name: 'scorer_in_flight_rows', help: 'Rows fetched and not yet committed.', registers: r }),
    /** gauge, always 1: the loaded model, as labels (join on it in PromQL). */
    modelInfo: new Gauge({ name: 'scorer_model_info', help: 'The loaded model (value is always 1).', labelNames: ['name', 'version', 'sha256'] as const, registers: r }),
    /** gauge, 0/1: 1 while the inference circuit breaker is open (batches refused). */
    circuitOpen: new Gauge({ name: 'scorer_circuit_open', help: '1 while the inference circuit breaker is open.', registers: r }),
    /** gauge, 0/1: the /readyz answer. */
    ready: new Gauge({ name: 'scorer_ready', help: '1 when the scorer is ready (what /readyz answers).', registers: r }),
    /** counter, retries: transient failures retried, by stage and ScorerError code. */
    retries: new Counter({ name: 'scorer_retries_total', help: 'Transient failures retried, by stage and error code.', labelNames: ['stage', 'code'] as const, registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
