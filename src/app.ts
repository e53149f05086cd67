/**
 * The service: builds every stage from configuration, in dependency order, and returns once it
 * is consuming (ready); `stop` drains in the reverse order within a deadline (lifecycle.ts).
 *   http (liveness) -> model + warm-up -> output schema -> topics -> producers -> consumer -> lag
 * With INFER_HTTP=true the HTTP port also answers Open Inference Protocol requests (serve/oip.ts).
 * Used by main.ts, the demo and the benchmark (which run it in-process), so it never exits the process.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from './config.js';
import { ScorerError, isTransient } from './errors.js';
import { createGroupConsumer, createKafka, createRegistryRest, createSchemaRegistry } from './kafka/clients.js';
import { prepareOutputSchema } from './kafka/registry.js';
import { ensureTopics } from './kafka/topics.js';
import { Lifecycle } from './lifecycle.js';
import { type LoadedModel, loadModel } from './model/manifest.js';
import { Health } from './ops/health.js';
import { type HealthState, startHttpServer } from './ops/http.js';
import { LagPoller } from './ops/lag.js';
import { stageLogger } from './ops/logger.js';
import { type Metrics, createInferHttpMetrics, createMetrics, zeroCounters } from './ops/metrics.js';
import { ChunkProcessor } from './stages/chunk.js';
import { ConsumeStage } from './stages/consume.js';
import { RowDecoder } from './stages/decode/row-decoder.js';
import { Encoder } from './stages/encode.js';
import { PartitionProducers } from './stages/produce.js';
import { createOipHandler } from './serve/oip.js';
import { readSchema, startEngine } from './serve/engine.js';
import { SCORER_VERSION } from './version.js';

export interface RunningScorer {
  metrics: Metrics;
  registry: Registry;
  model: LoadedModel;
  httpPort: number;
  health(): HealthState;
  /** Resolves true when everything drained and closed within the deadline. Idempotent. */
  stop(deadlineMs: number): Promise<boolean>;
  /** Resolves if the consumer crashes for good. */
  crashed: Promise<unknown>;
}

export async function startScorer(config: Config, logger: Logger, { registry = new Registry() } = {}): Promise<RunningScorer> {
  const metrics = createMetrics(registry);
  zeroCounters(metrics, config.topics.input);
  const health = new Health(metrics);
  const lifecycle = new Lifecycle(logger);
  const http = await startHttpServer({ port: config.http.port, host: config.http.host, registry, health: () => health.state(), logger: stageLogger(logger, 'http') });
  lifecycle.onStop('http', () => http.close());
  try {
    // model: load, check against the reader schema, warm up with a real inference (serve/engine.ts).
    const model = loadModel(config.model.path);
    const { manifest } = model;
    metrics.modelInfo.set({ name: manifest.name, version: manifest.version, sha256: model.sha256 }, 1);
    const { readerSchema, circuit, scorer } = await startEngine({ config, model, metrics, logger });
    lifecycle.onStop('inference', () => scorer.close(config.infer.closeTimeoutMs));
    health.pass('model');
    logger.info({ model: manifest.name, version: manifest.version, sha256: model.sha256, mode: config.infer.mode }, 'model loaded and warmed up');
    if (config.inferHttp.enabled) {
      // Requests share the stream's batcher and workers (serve/oip.ts); idle, it costs nothing.
      const ready = (): boolean => ((c) => c.model === true && c.shuttingDown !== true && c.circuitOpen !== true)(health.state().checks);
      http.mount(createOipHandler({ model, readerSchema, scorer, limits: config.inferHttp, ready, metrics: createInferHttpMetrics(registry), logger: stageLogger(logger, 'oip') }));
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

    // kafka: topics, producers, consumer.
    const kafka = createKafka(config, stageLogger(logger, 'kafka'));
    const admin = kafka.admin();
    await admin.connect();
    lifecycle.onStop('admin', () => admin.disconnect());
    await ensureTopics(admin, config, stageLogger(logger, 'topics'));
    health.pass('topics');

    const producers = new PartitionProducers({
      kafka,
      admin,
      groupId: config.kafka.groupId,
      inputTopic: config.topics.input,
      transactionalIdPrefix: config.kafka.transactionalIdPrefix,
      transactionTimeoutMs: config.kafka.transactionTimeoutMs,
      retry: config.kafka.producerRetry,
      logger: stageLogger(logger, 'produce'),
      onTransaction: (result) => metrics.transactions.inc({ result }),
    });
    const processor = new ChunkProcessor({
      decoder: new RowDecoder({ registry: schemaRegistry, readerSchema, manifest, registryTimeoutMs: config.registry.timeoutMs }),
      scorer,
      encoder: new Encoder({ schema: outputSchema, schemaId: outputSchemaId, manifest }),
      committer: producers,
      outputTopic: config.topics.output,
      dlqTopic: config.topics.dlq,
      deadLetterContext: { scorerVersion: SCORER_VERSION, modelName: manifest.name, modelVersion: manifest.version, maxMessageBytes: config.topics.dlqMaxMessageBytes },
      logger: stageLogger(logger, 'pipeline'),
      now: Date.now,
    });
    let crash: (err: unknown) => void = () => undefined;
    const crashed = new Promise<unknown>((r) => (crash = r));
    const consume = new ConsumeStage({
      consumer: createGroupConsumer(kafka, config),
      topic: config.topics.input,
      handler: processor,
      leases: producers,
      circuit,
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
        for (const t of result.eventTimes) metrics.endToEndLatency.observe((now - t) / 1000);
      },
      onCrash: crash,
    });
    health.watch({ consumerJoined: () => consume.joined, circuitOpen: () => circuit.open });
    lifecycle.onStop('consumer', () => consume.stop());
    await consume.start();
    const lag = new LagPoller({ admin, groupId: config.kafka.groupId, topic: config.topics.input, metrics, logger: stageLogger(logger, 'lag'), progress: (p) => consume.progress(p) });
    lag.start(config.lagPollIntervalMs);
    lifecycle.onStop('lag', async () => lag.stop());
    logger.info({ input: config.topics.input, output: config.topics.output, dlq: config.topics.dlq, groupId: config.kafka.groupId }, 'consuming');

    return {
      metrics,
      registry,
      model,
      httpPort: http.port,
      health: () => health.state(),
      crashed,
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
