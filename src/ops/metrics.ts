/**
 * Every metric the scorer exports, in one place, registered on an injected registry (each test
 * gets a fresh one). Names follow Prometheus conventions (_total, _seconds); consumer lag uses
 * the kafka_consumergroup_* names kafka_exporter made standard, so existing dashboards chart it.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import { ErrorCodes } from '../errors.js';

// 1, 2, 4, ... 8192 rows: BATCH_MAX_SIZE is usually a power of two.
const ROW_BUCKETS = exponentialBuckets(1, 2, 14);
// Sub-millisecond to seconds: light models infer a batch in tens of microseconds.
const FAST_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
// Scores are probabilities for the reference models: twenty 0.05-wide bins (and +Inf above 1).
const SCORE_BUCKETS = Array.from({ length: 20 }, (_, i) => Math.round((i + 1) * 5) / 100);
// Event time to commit: a transaction round trip is milliseconds; minutes of lag are an incident.
const E2E_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The consumer-lag gauges (src/ops/lag.ts), apart because with PIPELINE_THREADS > 1 one lag
 * poller on the main thread sets them while the pipelines' registries hold the rest (src/threads/).
 */
export function createLagMetrics(registry: Registry) {
  const r = [registry];
  return {
    /** gauge, messages: broker offset (high watermark, or last stable offset under read_committed) minus the group's committed offset, polled every LAG_POLL_INTERVAL_MS. */
    consumerGroupLag: new Gauge({ name: 'kafka_consumergroup_lag', help: 'Messages the consumer group is behind, per partition (end offset - committed offset).', labelNames: ['group', 'topic', 'partition'] as const, registers: r }),
    /** gauge, messages: kafka_consumergroup_lag summed over the partitions of a topic. */
    consumerGroupLagSum: new Gauge({ name: 'kafka_consumergroup_lag_sum', help: 'Messages the consumer group is behind, summed over partitions.', labelNames: ['group', 'topic'] as const, registers: r }),
    /** gauge, seconds: now - timestamp of the first record of the oldest fetched batch not yet committed; 0 when caught up. */
    consumerGroupLagSeconds: new Gauge({ name: 'kafka_consumergroup_lag_seconds', help: 'Age of the oldest unscored event, per partition (0 when caught up).', labelNames: ['group', 'topic', 'partition'] as const, registers: r }),
    /** gauge, 0/1 state set: the partition's lag status (OK, WARN, STALL, STOP, ERR; src/ops/lag-status.ts), 1 for the current one. */
    consumerGroupLagStatus: new Gauge({ name: 'kafka_consumergroup_lag_status', help: 'Lag status per partition (Burrow rules): 1 for the current status, 0 for the others.', labelNames: ['group', 'topic', 'partition', 'status'] as const, registers: r }),
  };
}

export type LagMetrics = ReturnType<typeof createLagMetrics>;

/*
 * `aggregator`: how src/threads/merge.ts combines one metric across the pipelines of a
 * PIPELINE_THREADS process (prom-client's AggregatorRegistry; the default is sum, right for
 * counters, histograms and per-pipeline counts). Gauges of a state all pipelines share say otherwise.
 */
export function createMetrics(registry: Registry = new Registry()) {
  const r = [registry];
  // Node.js process metrics: event-loop lag, heap, GC pauses, CPU, file descriptors.
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    ...createLagMetrics(registry),
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
    /** histogram, seconds: one committed transaction, its first request to the commit's answer (the commit part of scored_time -> visible). */
    transactionDuration: new Histogram({ name: 'scorer_transaction_duration_seconds', help: 'Duration of one committed transaction (records, offsets and commit).', buckets: FAST_SECONDS, registers: r }),
    /** counter, rebalances: group rebalances this instance took part in. */
    rebalances: new Counter({ name: 'scorer_rebalances_total', help: 'Consumer group rebalances.', registers: r }),
    /** gauge, partitions: input partitions assigned to this instance. */
    partitionsAssigned: new Gauge({ name: 'scorer_partitions_assigned', help: 'Input partitions assigned to this instance.', registers: r }),
    /** gauge, partitions: assigned partitions paused by backpressure or retries. */
    partitionsPaused: new Gauge({ name: 'scorer_partitions_paused', help: 'Assigned partitions currently paused.', registers: r }),
    /** gauge, rows: rows fetched but not yet committed (the backpressure measure). */
    inFlightRows: new Gauge({ name: 'scorer_in_flight_rows', help: 'Rows fetched and not yet committed.', registers: r }),
    /** gauge, always 1: the loaded model, as labels (join on it in PromQL). */
    modelInfo: new Gauge({ name: 'scorer_model_info', help: 'The loaded model (value is always 1).', labelNames: ['name', 'version', 'sha256'] as const, aggregator: 'first', registers: r }),
    /** gauge, 0/1: 1 while the inference circuit breaker is open (batches refused). */
    circuitOpen: new Gauge({ name: 'scorer_circuit_open', help: '1 while the inference circuit breaker is open.', aggregator: 'max', registers: r }),
    /** gauge, 0/1: the /readyz answer. */
    ready: new Gauge({ name: 'scorer_ready', help: '1 when the scorer is ready (what /readyz answers).', aggregator: 'min', registers: r }),
    // Model rollout (src/model/model-set.ts). Alert rules use these names: never rename them.
    /** counter, changes: deployment changes (MODEL_DEPLOYMENT edits, SIGHUP) applied whole or refused whole (the current deployment kept), by result applied|refused. */
    deploymentChanges: new Counter({ name: 'scorer_deployment_changes_total', help: 'Deployment changes, by result (applied, refused: the current deployment kept scoring).', labelNames: ['result'] as const, registers: r }),
    /** counter, rollbacks: canaries the guard rolled back (traffic to 0), by canary version. */
    canaryRollbacks: new Counter({ name: 'scorer_canary_rollbacks_total', help: 'Automatic canary rollbacks, by canary version.', labelNames: ['version'] as const, registers: r }),
    /** gauge, ratio 0..1: share of keys the canary scores now (0 without a canary or after a rollback). */
    canaryTrafficRatio: new Gauge({ name: 'scorer_canary_traffic_ratio', help: 'Share of keys routed to the canary version (0..1).', aggregator: 'max', registers: r }),
    /** gauge, 0/1 per state: the canary guard's state, 1 for the current one (none, unguarded, observing, healthy, rolled_back, promoted). */
    canaryGuardState: new Gauge({ name: 'scorer_canary_guard_state', help: 'Canary guard state: 1 for the current state, 0 for the others.', labelNames: ['state'] as const, aggregator: 'max', registers: r }),
    /** gauge, versions: model versions loaded and warmed up (stable, canary, shadow; old ones until their last chunk is done). */
    modelVersionsLoaded: new Gauge({ name: 'scorer_model_versions_loaded', help: 'Model versions loaded (sessions open).', aggregator: 'max', registers: r }),
    // Per model version and role (stable, canary, shadow): compare a candidate with stable.
    /** counter, records: scored events committed, by the version that scored them and its role (shadow: to the shadow topic). */
    versionRecordsScored: new Counter({ name: 'scorer_version_records_scored_total', help: 'Scored events committed, by model version and role.', labelNames: ['version', 'role'] as const, registers: r }),
    /** counter, records: records a version could not score (stable/canary: dead-lettered; shadow: no shadow event), by version and role. */
    versionRecordsFailed: new Counter({ name: 'scorer_version_records_failed_total', help: 'Records a model version failed (dead-lettered; for the shadow: dropped), by version and role.', labelNames: ['version', 'role'] as const, registers: r }),
    /** histogram, seconds: one batch inference, by version and role. */
    versionInferenceDuration: new Histogram({ name: 'scorer_version_inference_duration_seconds', help: 'Duration of one batch inference, by model version and role.', labelNames: ['version', 'role'] as const, buckets: FAST_SECONDS, registers: r }),
    /** histogram, score: the scores a version gives, by version and role; observed only while a canary or shadow serves (nothing to compare otherwise). */
    versionScore: new Histogram({ name: 'scorer_version_score', help: 'Scores given, by model version and role (while a canary or shadow serves).', labelNames: ['version', 'role'] as const, buckets: SCORE_BUCKETS, registers: r }),
    /** counter, retries: transient failures retried, by stage and ScorerError code. */
    retries: new Counter({ name: 'scorer_retries_total', help: 'Transient failures retried, by stage and error code.', labelNames: ['stage', 'code'] as const, registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The fields of prom-client 15.1's Histogram that observeMany updates (test/unit/ops/metrics.test.ts pins them). */
interface HistogramSeries {
  sum: number;
  count: number;
  bucketValues: Record<number, number>;
}
interface HistogramInternals {
  upperBounds?: readonly number[];
  hashMap?: Record<string, HistogramSeries | undefined>;
}

/**
 * Observes `count` values of an unlabelled histogram, as that many `observe()` calls would.
 * prom-client's observe() allocates a label object, a closure and a hash string per call: for the
 * end-to-end latency, one observation per scored event, that was a tenth of everything the
 * scorer allocated (bench/README.md). The first value goes through observe() (which creates
 * and validates the series), the rest are counted into the same series; if prom-client's
 * fields are not what this was written against, every value goes through observe().
 */
export function observeMany(histogram: Histogram, count: number, valueAt: (i: number) => number): void {
  if (count === 0) return;
  histogram.observe(valueAt(0));
  const { upperBounds, hashMap } = histogram as unknown as HistogramInternals;
  const series = hashMap?.[''];
  if (upperBounds === undefined || series === undefined || typeof series.sum !== 'number' || typeof series.bucketValues !== 'object') {
    for (let i = 1; i < count; i++) histogram.observe(valueAt(i));
    return;
  }
  for (let i = 1; i < count; i++) {
    const v = valueAt(i);
    if (!Number.isFinite(v)) throw new TypeError(`Value is not a valid number: ${v}`);
    series.sum += v;
    series.count += 1;
    // An indexed loop: a for-of over the (frozen) bounds allocated an iterator result per step.
    for (let b = 0; b < upperBounds.length; b++) {
      const bound = upperBounds[b] as number;
      if (v <= bound) {
        series.bucketValues[bound] = (series.bucketValues[bound] ?? 0) + 1;
        break;
      }
    }
  }
}

/**
 * Starts the counters that alert rules take increase() of at 0, per label set known up front. A
 * labelled counter appears only on its first increment, and increase() cannot see that first step
 * (a series that starts at 1 has not increased), so the first dead letter of a code, the first
 * aborted transaction or retry would never alert, and their panels would say "No data".
 */
export function zeroCounters(metrics: Metrics, inputTopic: string): void {
  for (const [code, { kind, stage }] of Object.entries(ErrorCodes)) {
    if (kind === 'permanent') metrics.recordsDeadLettered.inc({ topic: inputTopic, code }, 0);
    if (kind === 'transient') metrics.retries.inc({ stage, code }, 0);
  }
  for (const result of ['committed', 'aborted']) metrics.transactions.inc({ result }, 0);
  for (const result of ['applied', 'refused']) metrics.deploymentChanges.inc({ result }, 0);
}

/**
 * The Open Inference Protocol endpoint's own metrics (src/serve/oip.ts), registered only when
 * INFER_HTTP=true. Its rows also show in the shared scorer_batch_* and inference histograms.
 */
export function createInferHttpMetrics(registry: Registry) {
  const r = [registry];
  return {
    /** counter, requests: infer requests answered, by HTTP status (200, 400, 404, 413, 503, 504, ...). */
    requests: new Counter({ name: 'scorer_infer_http_requests_total', help: 'Open Inference Protocol infer requests, by HTTP status.', labelNames: ['model', 'status'] as const, registers: r }),
    /** histogram, seconds: body received -> response written, for answered infer requests. */
    duration: new Histogram({ name: 'scorer_infer_http_request_duration_seconds', help: 'Duration of one infer request (parse, batch, infer, answer).', labelNames: ['model'] as const, buckets: FAST_SECONDS, registers: r }),
    /** counter, rows: rows scored for infer requests. */
    rows: new Counter({ name: 'scorer_infer_http_rows_total', help: 'Rows scored for infer requests.', labelNames: ['model'] as const, registers: r }),
    /** gauge, rows: rows of infer requests accepted and not yet answered by the model (bounded by INFER_HTTP_MAX_QUEUED_ROWS). */
    queuedRows: new Gauge({ name: 'scorer_infer_http_queued_rows', help: 'Rows of infer requests waiting for the model.', registers: r }),
  };
}

export type InferHttpMetrics = ReturnType<typeof createInferHttpMetrics>;
