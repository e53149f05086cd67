/**
 * The models the stream serves, as the service wires them: MODEL_PATH's one model for the
 * process's life, or MODEL_REPOSITORY's versions as MODEL_DEPLOYMENT says (the model set, its
 * file watcher, SIGHUP and the canary guard's store). Either way the chunk processor takes one
 * generation per chunk (`acquire`), readiness reads the stable version's circuit, and the
 * versions' batches, circuits and scores reach the metrics here.
 */
import { hostname } from 'node:os';
import type { Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { KafkaRolloutStore, rolloutTopic } from '../kafka/rollout-store.js';
import type { Metrics } from '../ops/metrics.js';
import { stageLogger } from '../ops/logger.js';
import { DeploymentWatcher } from './deployment-watcher.js';
import type { ActiveModels, Lease } from './generation.js';
import { loadModel } from './manifest.js';
import { ModelSet, type ModelSetHooks } from './model-set.js';
import type { ModelsView } from './models-view.js';
import { prepareModel, rowScorerFactory } from './prepare.js';
import type { Role } from './served.js';
import { singleModel } from './single.js';

export interface ServingModels {
  /** One generation per chunk: held from its transaction's start to its commit or abort. */
  acquire(): Lease;
  /** The generation serving now (readiness, the circuit, GET /models). */
  current(): ActiveModels;
  /** GET /models; undefined with MODEL_PATH. */
  snapshot: (() => ModelsView) | undefined;
  /** SIGHUP: re-reads MODEL_DEPLOYMENT now; false when there is none to read. */
  reload(): boolean;
  close(deadlineMs: number): Promise<void>;
}

export interface ServingModelsOptions {
  config: Pick<Config, 'model' | 'batch' | 'infer' | 'circuit' | 'kafka' | 'topics'>;
  kafka: Kafka;
  metrics: Metrics;
  logger: Logger;
  /** Creates a shadow's topic if missing (ensureTopics). */
  ensureTopic(topic: string): Promise<void>;
}

/** The versions' batches, circuits and scores -> metrics and the log; the shadow stays out of the stream's own histograms and circuit. */
function metricHooks(metrics: Metrics, logger: Logger, current: () => ActiveModels | undefined): Required<ModelSetHooks> {
  return {
    onBatch: (version, role, { rows, fillWaitMs, inferMs }) => {
      metrics.versionInferenceDuration.observe({ version, role }, inferMs / 1000);
      if (role === 'shadow') return;
      metrics.batchSize.observe(rows);
      metrics.batchFillWait.observe(fillWaitMs / 1000);
      metrics.inferenceDuration.observe({ model: current()?.stable.model.manifest.name ?? '' }, inferMs / 1000);
    },
    onCircuit: (version, role, open) => {
      if (role === 'stable') metrics.circuitOpen.set(open ? 1 : 0);
      if (role === 'stable') logger.warn({ version, open }, open ? 'circuit opened: whole batches keep failing; consumption paused' : 'circuit closed');
      else logger.warn({ version, role, open }, open ? `the ${role} version's circuit opened: its batches keep failing` : `the ${role} version's circuit closed`);
    },
    onScore: ({ version, role, outcomes }) => {
      const m = current();
      // Only while there is something to compare: a lone stable version costs nothing per row.
      if (outcomes === undefined || m === undefined || (m.canary === undefined && m.shadow === undefined)) return;
      const h = metrics.versionScore.labels({ version, role });
      for (const o of outcomes) if (o.ok) h.observe(o.score);
    },
  };
}

export async function startServingModels({ config, kafka, metrics, logger, ensureTopic }: ServingModelsOptions): Promise<ServingModels> {
  const createScorer = rowScorerFactory({ batch: config.batch, infer: config.infer, circuit: config.circuit });
  let current: (() => ActiveModels) | undefined;
  const hooks = metricHooks(metrics, logger, () => current?.());
  const source = config.model;

  if (source.kind === 'file') {
    const model = loadModel(source.path);
    const version = model.manifest.version;
    const role: Role = 'stable';
    const prepared = await prepareModel(model, createScorer, {
      onBatch: (info) => hooks.onBatch(version, role, info),
      onCircuit: (open) => hooks.onCircuit(version, role, open),
    }, Date.now, 'MODEL_PATH');
    const { loadedAt: _loadedAt, ...served } = prepared;
    const single = singleModel(served);
    current = single.current;
    metrics.modelInfo.set({ name: model.manifest.name, version, sha256: model.sha256 }, 1);
    metrics.modelVersionsLoaded.set(1);
    return { ...single, snapshot: undefined, reload: () => false, close: (deadlineMs) => prepared.scorer.close(deadlineMs) };
  }

  const log = stageLogger(logger, 'models');
  const store = new KafkaRolloutStore({ kafka, topic: rolloutTopic(config.kafka.transactionalIdPrefix), groupId: config.kafka.groupId, replicationFactor: config.topics.replicationFactor, logger: log });
  let watcher: DeploymentWatcher | undefined;
  let set: ModelSet | undefined;
  try {
    await store.start();
    let started: (s: ModelSet) => void = () => undefined;
    const ready = new Promise<ModelSet>((r) => (started = r));
    watcher = source.deployment === undefined ? undefined : new DeploymentWatcher({
      file: source.deployment,
      // Changes seen while the first deployment loads wait for it; then they apply one at a time, in order.
      onChange: (e) => void ready.then((s) => ('text' in e ? s.apply(e.text, e.source) : s.refuse(e.error, e.source))),
    });
    const text = watcher?.start();
    set = await ModelSet.start({
      repository: source.repository,
      ...(source.deployment !== undefined && { deploymentFile: source.deployment }),
      createScorer,
      logger: log,
      metrics,
      instance: `${hostname()}/${process.pid}`,
      store,
      hooks,
      reservedTopics: [config.topics.input, config.topics.output, config.topics.dlq],
      ensureTopic,
      closeDeadlineMs: config.infer.closeTimeoutMs,
    }, text);
    started(set);
  } catch (err) {
    watcher?.close();
    await store.stop();
    throw err;
  }
  const models = set;
  current = () => models.current();
  return {
    acquire: () => models.acquire(),
    current: () => models.current(),
    snapshot: () => models.snapshot(),
    reload: () => {
      if (watcher === undefined) return false;
      watcher.reload();
      return true;
    },
    close: async (deadlineMs) => {
      watcher?.close();
      await Promise.allSettled([models.close(deadlineMs), store.stop()]);
    },
  };
}
