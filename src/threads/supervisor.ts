/**
 * PIPELINE_THREADS > 1: N pipelines in the worker threads of one process, the way Kafka Streams
 * runs num.stream.threads. Each is a whole scorer (pipeline-worker.ts) with its own consumer-group
 * member, transactional producers (so exactly once and zombie fencing are as between instances),
 * inference and event loop. This thread owns what the process has once: the topics, the HTTP
 * server (/metrics merging the pipelines' registries, /healthz and /readyz over all of them; merge.ts),
 * the lag poller, and the decisions to stop: SIGTERM drains every pipeline within the deadline; a
 * pipeline that crashes ends the process with the crash exit code (main.ts), so it is restarted whole.
 */
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config.js';
import { ScorerError, isTransient } from '../errors.js';
import { createKafka } from '../kafka/clients.js';
import { ensureTopics } from '../kafka/topics.js';
import { Lifecycle } from '../lifecycle.js';
import { type HealthState, startHttpServer } from '../ops/http.js';
import { LagPoller } from '../ops/lag.js';
import { stageLogger } from '../ops/logger.js';
import { createLagMetrics } from '../ops/metrics.js';
import type { PartitionProgress } from '../stages/consume.js';
import { type MetricsJson, type PipelineHealth, mergeHealth, mergeMetrics, mergeProgress } from './merge.js';
import { PipelineThread } from './pipeline-thread.js';

/** Below the probes' 3 s timeout (k8s/base/deployment.yaml): a pipeline that cannot answer in 2 s is wedged. */
const ASK_TIMEOUT_MS = 2_000;

export interface RunningPipelines {
  threads: number;
  httpPort: number;
  health(): Promise<HealthState>;
  /** SIGHUP: every pipeline re-reads MODEL_DEPLOYMENT (signals reach the main thread only); false when there is none. */
  reloadDeployment(): boolean;
  /** Resolves true when every pipeline drained and closed within the deadline. Idempotent. */
  stop(deadlineMs: number): Promise<boolean>;
  /** Resolves with the reason when any pipeline crashes for good. */
  crashed: Promise<unknown>;
}

/** /metrics: this thread's own metrics and every pipeline's, merged at each scrape. */
class MergedRegistry extends Registry {
  readonly #own: Registry;
  readonly #pipelines: () => Promise<MetricsJson[]>;
  constructor(own: Registry, pipelines: () => Promise<MetricsJson[]>) {
    super();
    this.#own = own;
    this.#pipelines = pipelines;
  }
  override async metrics(): Promise<string> {
    const [own, pipelines] = await Promise.all([this.#own.getMetricsAsJSON(), this.#pipelines()]);
    return mergeMetrics(own, pipelines).metrics();
  }
}

/**
 * One pipeline's configuration: the process's memory bounds shared out, so that FETCH_MAX_BYTES
 * (bytes per fetch response, which stay alive until their chunks commit) and MAX_IN_FLIGHT_ROWS /
 * RESUME_IN_FLIGHT_ROWS bound the process whatever PIPELINE_THREADS is (README "Memory").
 */
export function pipelineConfig(config: Config): Config {
  const n = config.pipelineThreads;
  const share = (v: number, min: number): number => Math.max(min, Math.floor(v / n));
  const maxInFlightRows = share(config.backpressure.maxInFlightRows, 1);
  return {
    ...config,
    kafka: { ...config.kafka, fetch: { ...config.kafka.fetch, maxBytes: share(config.kafka.fetch.maxBytes, 1) } },
    backpressure: { maxInFlightRows, resumeInFlightRows: Math.min(share(config.backpressure.resumeInFlightRows, 0), maxInFlightRows - 1) },
  };
}

export async function startPipelines(config: Config, logger: Logger): Promise<RunningPipelines> {
  const own = new Registry();
  // Process-wide figures (CPU, RSS) and this thread's Node metrics; the pipelines report their own threads'.
  collectDefaultMetrics({ register: own });
  const lagMetrics = createLagMetrics(own);
  const lifecycle = new Lifecycle(logger);
  const threads: PipelineThread[] = [];
  let shuttingDown = false;
  const health = async (): Promise<HealthState> => {
    const states = await Promise.all(threads.map((t) => t.ask({ type: 'health' }, ASK_TIMEOUT_MS).catch((err: unknown): PipelineHealth => (err instanceof Error ? err.message : String(err)))));
    return mergeHealth(states, shuttingDown);
  };
  const registry = new MergedRegistry(own, () => Promise.all(threads.map((t) => t.ask({ type: 'metrics' }, ASK_TIMEOUT_MS))));
  // GET /models: the first pipeline's model set (every pipeline reads the same repository and deployment file).
  const models = async (): Promise<unknown> => (threads[0] === undefined ? { loading: true } : threads[0].ask({ type: 'models' }, ASK_TIMEOUT_MS));
  const http = await startHttpServer({ port: config.http.port, host: config.http.host, registry, health, ...(config.model.kind === 'repository' && { models }), logger: stageLogger(logger, 'http') });
  lifecycle.onStop('http', () => http.close());
  let stopDeadlineMs = config.shutdownTimeoutMs;
  let clean = true;
  try {
    // Topics once, here: N pipelines creating the same missing topic at once would race.
    const kafka = createKafka(config, stageLogger(logger, 'kafka'));
    const admin = kafka.admin();
    await admin.connect();
    lifecycle.onStop('admin', () => admin.disconnect());
    await ensureTopics(admin, config, stageLogger(logger, 'topics'));
    const partitionCount = (await admin.fetchTopicOffsets(config.topics.input)).length;

    lifecycle.onStop('pipelines', async () => {
      const results = await Promise.all(threads.map((t) => t.stop(stopDeadlineMs)));
      clean = results.every(Boolean);
    });
    const perPipeline = pipelineConfig(config);
    for (let i = 0; i < config.pipelineThreads; i++) threads.push(new PipelineThread(i, perPipeline));
    const starts = await Promise.allSettled(threads.map((t) => t.started));
    const failed = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;

    // One lag poller for the process; lag in seconds needs each pipeline's oldest pending record.
    let progress = new Map<number, PartitionProgress>();
    const lag = new LagPoller({
      admin,
      groupId: config.kafka.groupId,
      topic: config.topics.input,
      metrics: lagMetrics,
      logger: stageLogger(logger, 'lag'),
      progress: (p) => progress.get(p),
      beforePoll: async () => {
        const partitions = Array.from({ length: Math.max(partitionCount, lag.last.length) }, (_, p) => p);
        progress = mergeProgress(await Promise.all(threads.map((t) => t.ask({ type: 'progress', partitions }, ASK_TIMEOUT_MS).catch(() => []))));
      },
    });
    lag.start(config.lagPollIntervalMs);
    lifecycle.onStop('lag', async () => lag.stop());
    logger.info({ threads: threads.length }, 'pipelines started');

    return {
      threads: threads.length,
      httpPort: http.port,
      health,
      reloadDeployment: () => {
        if (config.model.kind !== 'repository' || config.model.deployment === undefined) return false;
        for (const t of threads) t.ask({ type: 'reload' }).catch((err: unknown) => logger.warn({ err: String(err), pipeline: t.index }, 'SIGHUP: the pipeline did not re-read MODEL_DEPLOYMENT'));
        return true;
      },
      crashed: Promise.race(threads.map((t) => t.crashed)),
      stop: async (deadlineMs) => {
        shuttingDown = true;
        stopDeadlineMs = deadlineMs;
        const inTime = await lifecycle.stop(deadlineMs);
        logger.info({ clean: inTime && clean }, inTime && clean ? 'stopped cleanly' : `drain did not finish within ${deadlineMs} ms`);
        return inTime && clean;
      },
    };
  } catch (err) {
    shuttingDown = true;
    await lifecycle.stop(config.shutdownTimeoutMs);
    if (isTransient(err)) throw new ScorerError(err.code, `start-up failed: ${err.message}`, { cause: err });
    throw err;
  }
}
