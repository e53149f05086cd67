/**
 * The service: builds every stage from configuration, in dependency order, and returns once it
 * is consuming (ready); `stop` drains in the reverse order within a deadline (lifecycle.ts).
 *   http (liveness) -> topics -> models + warm-up -> output schema -> producers -> consumer -> lag
 * The models are MODEL_PATH's one model or MODEL_REPOSITORY's versions as MODEL_DEPLOYMENT says
 * (model/serving.ts); a deployment change swaps them at each partition's next transaction.
 * With INFER_HTTP=true the HTTP port also answers Open Inference Protocol requests (serve/oip.ts).
 * Used by main.ts, the demo and the benchmark (which run it in-process), so it never exits the process.
 */
import type { Admin, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import type { Config } from './config.js';
import { ScorerError, isTransient } from './errors.js';
import { createGroupConsumer, createKafka, createRegistryRest, createSchemaRegistry } from './kafka/clients.js';
import { authorizationFailure, checkBrokerTls, explainConnectFailure, notAuthorized, principalOf } from './kafka/access.js';
import { stableOffsetsAdmin } from './kafka/kafkajs-kip447.js';
import { prepareOutputSchema } from './kafka/registry.js';
import { ensureTopics } from './kafka/topics.js';
import { Lifecycle } from './lifecycle.js';
import type { LoadedModel } from './model/manifest.js';
import { type ServingModels, startServingModels } from './model/serving.js';
import { Health } from './ops/health.js';
import { type HealthState, type HttpServer, startHttpServer } from './ops/http.js';
import { LagPoller } from './ops/lag.js';
import { stageLogger } from './ops/logger.js';
import { startTracing } from './ops/tracing.js';
import { type Metrics, createInferHttpMetrics, createMetrics, observeMany, zeroCounters } from './ops/metrics.js';
import { ChunkProcessor } from './stages/chunk.js';
import { ConsumeStage, type PartitionProgress } from './stages/consume.js';
import { PartitionProducers, type TransactionListener } from './stages/produce.js';
import { PipelineProducers } from './stages/produce-pipeline.js';
import { versionStages } from './stages/version-stages.js';
import { createOipHandler } from './serve/oip.js';
import { readSchema } from './serve/engine.js';
import { SCORER_VERSION } from './version.js';

export interface RunningScorer {
  metrics: Metrics;
  registry: Registry;
  /** The stable version's model at start (MODEL_PATH's model). */
  model: LoadedModel;
  /** The served versions: the current generation, GET /models. */
  models: ServingModels;
  httpPort: number;
  health(): HealthState;
  /** SIGHUP: re-reads MODEL_DEPLOYMENT; false when there is none. */
  reloadDeployment(): boolean;
  /** Resolves true when everything drained and closed within the deadline. Idempotent. */
  stop(deadlineMs: number): Promise<boolean>;
  /** Resolves if the consumer crashes for good. */
  crashed: Promise<unknown>;
  /** A partition's progress in this pipeline (PIPELINE_THREADS: the supervisor's lag poller reads it). */
  progress(partition: number): PartitionProgress;
}

export interface StartOptions {
  registry?: Registry;
  /**
   * PIPELINE_THREADS > 1 (src/threads/): one of several pipelines in a worker thread. The
   * supervisor on the main thread owns the HTTP server and the lag poller, so this one starts neither.
   */
  embedded?: boolean;
  /** Which pipeline of the process this is (PIPELINE_THREADS > 1), part of EOS v2's transactional ids. */
  pipeline?: number;
  /** Turns tracing on with this exporter instead of the configured ones (tests). */
  spanExporter?: SpanExporter;
}

export async function startScorer(config: Config, logger: Logger, { registry = new Registry(), embedded = false, pipeline = 0, spanExporter }: StartOptions = {}): Promise<RunningScorer> {
  const metrics = createMetrics(registry);
  zeroCounters(metrics, config.topics.input);
  const health = new Health(metrics);
  const lifecycle = new Lifecycle(logger);
  let models: ServingModels | undefined;
  // [threads] embedded: no HTTP server (the supervisor's serves every pipeline).
  let http: HttpServer | undefined;
  if (!embedded) {
    const server = await startHttpServer({
      port: config.http.port,
      host: config.http.host,
      registry,
      health: () => health.state(),
      ...(config.model.kind === 'repository' && { models: () => models?.snapshot?.() ?? { loading: true } }),
      logger: stageLogger(logger, 'http'),
    });
    lifecycle.onStop('http', () => server.close());
    http = server;
  }
  try {
    // tracing: stopped after the consumer, so the last transactions' spans are exported.
    const tracing = await startTracing(config.tracing, { groupId: config.kafka.groupId, logger, ...(spanExporter && { exporter: spanExporter }) });
    lifecycle.onStop('tracing', () => tracing.shutdown());
    // kafka: the client, the admin and the topics (a shadow's topic too, when a deployment names one).
    // A certificate or SASL refusal stops the start at once, naming the setting (kafka/access.ts), instead of kafkajs's retries.
    await checkBrokerTls(config);
    const kafka = createKafka(config, stageLogger(logger, 'kafka'));
    const admin = kafka.admin();
    await admin.connect().catch((err: unknown) => {
      throw explainConnectFailure(config, err) ?? err;
    });
    lifecycle.onStop('admin', () => admin.disconnect());
    const topicLogger = stageLogger(logger, 'topics');
    await ensureTopics(admin, config, topicLogger);
    health.pass('topics');

    // models: loaded, checked against their reader schemas, warmed up with a real inference (model/serving.ts).
    const served = await startServingModels({ config, kafka, metrics, logger, ensureTopic: (t) => ensureTopics(admin, config, topicLogger, [t]) });
    models = served;
    lifecycle.onStop('inference', () => served.close(config.infer.closeTimeoutMs));
    const stable = served.current().stable;
    const { manifest } = stable.model;
    health.pass('model');
    logger.info({ model: manifest.name, version: manifest.version, sha256: stable.model.sha256, mode: config.infer.mode, source: config.model.kind }, 'model loaded and warmed up');
    if (config.inferHttp.enabled) {
      // Requests share the stream's batcher and workers (serve/oip.ts); idle, it costs nothing.
      const ready = (): boolean => ((c) => c.model === true && c.shuttingDown !== true && c.circuitOpen !== true)(health.state().checks);
      // [threads] INFER_HTTP with PIPELINE_THREADS > 1 is refused by config.ts, so an embedded pipeline never gets here.
      http?.mount(createOipHandler({ models: served, limits: config.inferHttp, ready, metrics: createInferHttpMetrics(registry), logger: stageLogger(logger, 'oip') }));
    }

    // registry: the output schema, registered under the topic-name strategy subject (or the id configured for it), read back.
    const schemaRegistry = createSchemaRegistry(config);
    const outputSchema = readSchema('schemas/scored-event.avsc', 'output');
    const { subject, schemaId: outputSchemaId, source } = await prepareOutputSchema(createRegistryRest(config), {
      outputTopic: config.topics.output,
      schema: outputSchema,
      ...(config.registry.outputSchemaId !== undefined && { schemaId: config.registry.outputSchemaId }),
      logger,
    });
    health.pass('registry');
    logger.info({ subject, schemaId: outputSchemaId, source }, source === 'registered' ? 'output schema registered' : 'output schema id checked');

    // producers, the chunk processor, the consumer.
    const onTransaction: TransactionListener = (result, seconds) => {
      metrics.transactions.inc({ result });
      if (seconds !== undefined) metrics.transactionDuration.observe(seconds);
    };
    const producers = createProducers(config, { kafka, admin, pipeline, logger: stageLogger(logger, 'produce'), onTransaction });
    const processor = new ChunkProcessor({
      models: served,
      stages: versionStages({ registry: schemaRegistry, registryTimeoutMs: config.registry.timeoutMs, outputSchema, outputSchemaId, scorerVersion: SCORER_VERSION, deadLetterMaxBytes: config.topics.dlqMaxMessageBytes }),
      committer: producers,
      outputTopic: config.topics.output,
      dlqTopic: config.topics.dlq,
      logger: stageLogger(logger, 'pipeline'),
      now: Date.now,
      tracer: tracing.chunks,
    });
    let crash: (err: unknown) => void = () => undefined;
    const crashed = new Promise<unknown>((r) => (crash = r));
    const consume = new ConsumeStage({
      consumer: createGroupConsumer(kafka, config),
      topic: config.topics.input,
      handler: processor,
      leases: producers,
      circuit: { cooldownMs: config.circuit.cooldownMs },
      metrics,
      logger: stageLogger(logger, 'consume'),
      partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
      chunkMaxRecords: config.kafka.chunkMaxRecords,
      retry: config.kafka.partitionRetry,
      inFlight: { max: config.backpressure.maxInFlightRows, resume: config.backpressure.resumeInFlightRows },
      onChunk: (_partition, result) => {
        const now = Date.now();
        metrics.recordsScored.inc({ topic: config.topics.input, model: manifest.name }, result.scored);
        for (const [code, n] of Object.entries(result.deadLettered)) metrics.recordsDeadLettered.inc({ topic: config.topics.input, code }, n);
        const { eventTimes } = result;
        observeMany(metrics.endToEndLatency, eventTimes.length, (i) => (now - (eventTimes[i] as number)) / 1000);
        for (const { version, role, scored, failed } of result.versions) {
          if (scored > 0) metrics.versionRecordsScored.inc({ version, role }, scored);
          if (failed > 0) metrics.versionRecordsFailed.inc({ version, role }, failed);
        }
      },
      // The group's consumer crashes on a missing ACL of its own (join, fetch): say which one.
      onCrash: (err) => crash(consumerAccess(config, err)),
    });
    // Readiness and the consume stage's cool-down follow the stable version's circuit (a canary's or shadow's never).
    health.watch({ consumerJoined: () => consume.joined, circuitOpen: () => served.current().stable.circuit.open });
    lifecycle.onStop('consumer', () => consume.stop());
    await consume.start().catch((err: unknown) => {
      throw consumerAccess(config, err);
    });
    if (!embedded) {
      // [threads] embedded: the supervisor's one lag poller covers every pipeline.
      const lag = new LagPoller({ admin, groupId: config.kafka.groupId, topic: config.topics.input, metrics, logger: stageLogger(logger, 'lag'), progress: (p) => consume.progress(p) });
      lag.start(config.lagPollIntervalMs);
      lifecycle.onStop('lag', async () => lag.stop());
    }
    logger.info({ input: config.topics.input, output: config.topics.output, dlq: config.topics.dlq, groupId: config.kafka.groupId }, 'consuming');

    return {
      metrics,
      registry,
      model: stable.model,
      models: served,
      httpPort: http?.port ?? 0,
      health: () => health.state(),
      reloadDeployment: () => served.reload(),
      crashed,
      progress: (p) => consume.progress(p),
      stop: async (deadlineMs) => {
        health.shuttingDown();
        const clean = await lifecycle.stop(deadlineMs);
        logger.info({ clean }, clean ? 'stopped cleanly' : `drain did not finish within ${deadlineMs} ms`);
        return clean;
      },
    };
  } catch (err) {
    await lifecycle.stop(config.shutdownTimeoutMs);
    if (isTransient(err)) throw new ScorerError(err.code, `start-up failed: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * The produce stage of EOS_MODE: v1, a transactional producer per input partition (fenced by its
 * transactional id); v2, a few per pipeline (fenced by the group generation, KIP-447).
 */
function createProducers(config: Config, { kafka, admin, pipeline, logger, onTransaction }: { kafka: Kafka; admin: Admin; pipeline: number; logger: Logger; onTransaction: TransactionListener }): PartitionProducers | PipelineProducers {
  const { kafka: k, topics } = config;
  const common = { kafka, groupId: k.groupId, inputTopic: topics.input, transactionalIdPrefix: k.transactionalIdPrefix, transactionTimeoutMs: k.transactionTimeoutMs, retry: k.producerRetry, logger, onTransaction, principal: principalOf(config) };
  if (k.eos.mode === 'v1') return new PartitionProducers({ ...common, admin });
  return new PipelineProducers({
    ...common,
    admin: stableOffsetsAdmin(admin),
    transactionalIdBase: `${k.transactionalIdPrefix}-${k.groupId}-${k.eos.instanceId}-${pipeline}`,
    slots: k.eos.producers,
    parallelRecords: k.eos.parallelRecords,
  });
}

/** A consumer crash explained when it is a missing ACL (the group, the input topic), else as it came. */
function consumerAccess(config: Config, err: unknown): unknown {
  const type = authorizationFailure(err);
  if (err instanceof ScorerError || type === undefined) return err;
  const needs = type === 'GROUP_AUTHORIZATION_FAILED' ? `Read on group '${config.kafka.groupId}'` : type === 'TOPIC_AUTHORIZATION_FAILED' ? `Read on topic '${config.topics.input}'` : 'the ACL named in the error';
  return notAuthorized(config, err, { action: `consuming ${config.topics.input} as group ${config.kafka.groupId}`, needs });
}
