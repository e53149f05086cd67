/**
 * Assembles the pipeline from configuration and runs it. `startScorer` returns once the scorer
 * is consuming (ready); `stop` drains in order within a deadline. Used by main.ts, the demo and
 * the benchmark (which run it in-process), so it never calls process.exit.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type avro from 'avsc';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createKafka, createSchemaRegistry } from './kafka/clients.js';
import { registerOutputSchema } from './kafka/registry.js';
import type { Config } from './config.js';
import { ConsumeStage } from './stages/consume.js';
import { Decoder } from './stages/decode/decoder.js';
import { Encoder } from './stages/encode.js';
import { ScorerError, isTransient } from './errors.js';
import { type HealthState, startHttpServer } from './ops/http.js';
import { createRowScorer } from './stages/infer/infer.js';
import { LagPoller } from './ops/lag.js';
import { stageLogger } from './ops/logger.js';
import { type LoadedModel, loadModel } from './model/manifest.js';
import { type Metrics, createMetrics } from './ops/metrics.js';
import { Pipeline } from './stages/chunk.js';
import { PartitionProducers } from './stages/produce.js';
import { ensureTopics } from './kafka/topics.js';
import { Vectorizer } from './stages/vectorize.js';
import { PACKAGE_ROOT, SCORER_VERSION } from './version.js';

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

function readSchema(path: string, what: string): avro.Schema {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as avro.Schema;
  } catch (err) {
    throw new ScorerError('CONFIG_INVALID', `MODEL_PATH: cannot read the ${what} schema ${path}: ${(err as Error).message}`);
  }
}

export async function startScorer(config: Config, logger: Logger, { registry = new Registry() } = {}): Promise<RunningScorer> {
  const metrics = createMetrics(registry);
  const checks = { model: false, registry: false, topics: false, shuttingDown: false };
  let consume: ConsumeStage | undefined;
  let circuitOpen = false;
  const health = (): HealthState => {
    const joined = consume?.joined ?? false;
    const ready = checks.model && checks.registry && checks.topics && joined && !checks.shuttingDown && !circuitOpen;
    metrics.ready.set(ready ? 1 : 0);
    return { live: true, ready, checks: { ...checks, consumerJoined: joined, circuitOpen } };
  };
  const http = await startHttpServer({ port: config.http.port, host: config.http.host, registry, health, logger: stageLogger(logger, 'http') });

  const cleanup: (() => Promise<unknown>)[] = [() => http.close()];
  const closeAll = async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch((err: unknown) => logger.warn({ err }, 'cleanup step failed'));
  };
  try {
    // model: load, check against the reader schema, warm up with a real inference.
    const model = loadModel(config.model.path);
    metrics.modelInfo.set({ name: model.manifest.name, version: model.manifest.version, sha256: model.sha256 }, 1);
    const readerSchema = model.readerSchema; // eventSchema resolved against the manifest's folder (manifest.ts)
    const scorer = await createRowScorer({
      model,
      batch: config.batch,
      infer: config.infer,
      circuit: { failureThreshold: config.circuit.failureThreshold },
      hooks: {
        onBatch: ({ rows, fillWaitMs, inferMs }) => {
          metrics.batchSize.observe(rows);
          metrics.batchFillWait.observe(fillWaitMs / 1000);
          metrics.inferenceDuration.observe({ model: model.manifest.name }, inferMs / 1000);
        },
        onCircuit: (open) => {
          circuitOpen = open;
          metrics.circuitOpen.set(open ? 1 : 0);
          logger.warn({ open }, open ? 'circuit opened: whole batches keep failing; consumption paused' : 'circuit closed');
        },
      },
    });
    cleanup.push(() => scorer.close(5_000));
    await scorer.warmUp();
    checks.model = true;
    logger.info({ model: model.manifest.name, version: model.manifest.version, sha256: model.sha256, mode: config.infer.mode }, 'model loaded and warmed up');

    // registry: the output schema, registered under the topic-name strategy subject.
    const schemaRegistry = createSchemaRegistry(config);
    const outputSchema = readSchema(resolve(PACKAGE_ROOT, 'schemas/scored-event.avsc'), 'output');
    const { subject, schemaId: outputSchemaId } = await registerOutputSchema(schemaRegistry, config.topics.output, outputSchema, logger);
    checks.registry = true;
    logger.info({ subject, schemaId: outputSchemaId }, 'output schema registered');

    // kafka: topics, producers, consumer.
    const kafka = createKafka(config, stageLogger(logger, 'kafka'));
    const admin = kafka.admin();
    await admin.connect();
    cleanup.push(() => admin.disconnect());
    await ensureTopics(admin, config, stageLogger(logger, 'topics'));
    checks.topics = true;

    const producers = new PartitionProducers({
      kafka,
      admin,
      groupId: config.kafka.groupId,
      inputTopic: config.topics.input,
      transactionalIdPrefix: config.kafka.transactionalIdPrefix,
      transactionTimeoutMs: config.kafka.transactionTimeoutMs,
      logger: stageLogger(logger, 'produce'),
      onTransaction: (result) => metrics.transactions.inc({ result }),
    });
    const decoder = new Decoder({ registry: schemaRegistry, readerSchema });
    const pipeline = new Pipeline({
      decoder,
      vectorizer: new Vectorizer(model.manifest, decoder.readerType),
      scorer,
      encoder: new Encoder({ schema: outputSchema, schemaId: outputSchemaId, manifest: model.manifest }),
      producers,
      outputTopic: config.topics.output,
      dlqTopic: config.topics.dlq,
      deadLetterContext: { scorerVersion: SCORER_VERSION, modelName: model.manifest.name, modelVersion: model.manifest.version },
      logger: stageLogger(logger, 'pipeline'),
    });
    let crash: (err: unknown) => void = () => undefined;
    const crashed = new Promise<unknown>((r) => (crash = r));
    consume = new ConsumeStage({
      kafka,
      groupId: config.kafka.groupId,
      topic: config.topics.input,
      pipeline,
      producers,
      metrics,
      logger: stageLogger(logger, 'consume'),
      sessionTimeoutMs: config.kafka.sessionTimeoutMs,
      heartbeatIntervalMs: config.kafka.heartbeatIntervalMs,
      partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
      fetch: config.kafka.fetch,
      circuitCooldownMs: config.circuit.cooldownMs,
      inFlight: { max: config.backpressure.maxInFlightRows, resume: config.backpressure.resumeInFlightRows },
      onChunk: (_partition, result) => {
        const now = Date.now();
        metrics.recordsScored.inc({ topic: config.topics.input, model: model.manifest.name }, result.scored);
        for (const [code, n] of Object.entries(result.deadLettered)) metrics.recordsDeadLettered.inc({ topic: config.topics.input, code }, n);
        for (const t of result.eventTimes) metrics.endToEndLatency.observe((now - t) / 1000);
      },
      onCrash: crash,
    });
    const stage = consume;
    cleanup.push(() => stage.stop());
    await stage.start();
    const lag = new LagPoller({ admin, groupId: config.kafka.groupId, topic: config.topics.input, metrics, logger: stageLogger(logger, 'lag'), progress: (p) => stage.progress(p) });
    lag.start(config.lagPollIntervalMs);
    cleanup.push(async () => lag.stop());
    logger.info({ input: config.topics.input, output: config.topics.output, dlq: config.topics.dlq, groupId: config.kafka.groupId }, 'consuming');

    let stopping: Promise<boolean> | undefined;
    return {
      metrics,
      registry,
      model,
      httpPort: http.port,
      health,
      crashed,
      stop: (deadlineMs) => {
        stopping ??= (async () => {
          checks.shuttingDown = true;
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), deadlineMs)));
          const clean = await Promise.race([closeAll().then(() => true), timedOut]);
          clearTimeout(timer);
          logger.info({ clean }, clean ? 'stopped cleanly' : `drain did not finish within ${deadlineMs} ms`);
          return clean;
        })();
        return stopping;
      },
    };
  } catch (err) {
    await closeAll();
    if (isTransient(err)) throw new ScorerError(err.code, `start-up failed: ${err.message}`, { cause: err });
    throw err;
  }
}
