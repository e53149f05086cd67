/**
 * One pipeline of a PIPELINE_THREADS process, inside a worker thread: the whole stream scorer
 * (startScorer, embedded: no HTTP server and no lag poller, which the supervisor owns) with its own
 * consumer-group member, transactional producers, inference and event loop. It answers the
 * supervisor's requests (protocol.ts) for metrics, health and partition progress, and stops when told.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { type RunningScorer, startScorer } from '../app.js';
import { createLogger, flushLogger } from '../ops/logger.js';
import type { PartitionProgress } from '../stages/consume.js';
import { PIPELINE_ROLE, type PipelineEvent, type PipelineInit, type Replies, type Request, toWire } from './protocol.js';

async function pipelineMain({ index, config }: PipelineInit): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const post = (event: PipelineEvent): void => port.postMessage(event);
  const logger = createLogger(config.logLevel).child({ pipeline: index });
  const registry = new Registry();
  let scorer: RunningScorer | undefined;

  // Listening before start-up: a scrape or probe during start-up gets the registry and checks as they are.
  const answer = async (req: Request): Promise<Replies[Request['type']]> => {
    switch (req.type) {
      case 'metrics':
        return registry.getMetricsAsJSON();
      case 'health':
        return scorer?.health() ?? { live: true, ready: false, checks: { started: false } };
      case 'progress':
        return scorer === undefined ? [] : req.partitions.map((p): [number, PartitionProgress] => [p, (scorer as RunningScorer).progress(p)]);
      case 'reload':
        return scorer?.reloadDeployment() ?? false;
      case 'models':
        return scorer?.models.snapshot?.() ?? { loading: true };
      case 'stop': {
        const clean = (await scorer?.stop(req.deadlineMs)) ?? true;
        await flushLogger(logger).catch(() => undefined);
        return clean;
      }
    }
  };
  port.on('message', (req: Request) => {
    answer(req).then(
      (value) => post({ type: 'reply', id: req.id, value }),
      (err: unknown) => post({ type: 'reply-error', id: req.id, error: toWire(err) }),
    );
  });

  try {
    scorer = await startScorer(config, logger, { registry, embedded: true, pipeline: index });
  } catch (err) {
    await flushLogger(logger).catch(() => undefined);
    post({ type: 'start-failed', error: toWire(err) });
    return;
  }
  post({ type: 'started' });
  void scorer.crashed.then((err) => post({ type: 'crashed', error: toWire(err) }));
}

const init = workerData as PipelineInit | undefined;
if (!isMainThread && init?.role === PIPELINE_ROLE) void pipelineMain(init);
