/**
 * Entry point (`npm start`, the `kafka-onnx-scorer` command). Builds the stages from validated
 * configuration, in dependency order, and owns the lifecycle:
 *   start: config -> http (liveness) -> model + warm-up -> registry -> topics -> producers -> consumer -> ready
 *   SIGHUP: re-read MODEL_DEPLOYMENT (a refused change keeps the current deployment);
 *   stop (SIGTERM/SIGINT): not ready -> stop fetching (the running chunk commits) -> close inference
 *        -> disconnect -> flush logs, within SHUTDOWN_TIMEOUT_MS; a second signal aborts at once.
 * Exit codes: 0 clean stop, 1 crash, drain timeout or a permanent start-up failure (e.g. the registry
 * refused the output schema), 2 bad configuration (before connecting).
 */
import v8 from 'node:v8';
import type { Logger } from 'pino';
import { type Config, loadConfig, redactedConfig } from './config.js';
import { ScorerError } from './errors.js';
import { createLogger, flushLogger } from './ops/logger.js';
import { SCORER_VERSION } from './version.js';

export const EXIT = { ok: 0, crash: 1, config: 2 } as const;

/**
 * The collector's settings, before the pipeline starts. HEAP_GROWING_PERCENT: V8 lets the old
 * generation grow to its live size times a factor it picks (up to 4x); the records of a drain die
 * old, so the peak is mostly garbage (bench/README.md, phase C). The flag is read at each GC, so
 * setting it here is the same as `node --heap-growing-percent=N` (which NODE_OPTIONS refuses); one
 * given on the command line wins.
 */
function applyGcSettings(percent: number, logger: Logger): void {
  if (onCommandLine('heap-growing-percent')) {
    logger.info({ execArgv: process.execArgv }, 'HEAP_GROWING_PERCENT not applied: --heap-growing-percent is on the node command line');
  } else if (percent > 0) {
    v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  }
  // Allocation-site pretenuring off: the records of a transaction in flight survive a scavenge or
  // two, so V8 takes their allocation sites for long-lived ones and allocates there straight in the
  // old generation, where most of them die soon after: the old generation then fills in ~0.5 s
  // and is marked and compacted twice as often (bench/README.md, phase I: 57 -> 28 mark-compacts
  // in a run, the scorer's CPU on the live stream -12 %, the backlog's rate and peak RSS
  // unchanged). `--allocation-site-pretenuring` on the command line wins.
  if (!onCommandLine('allocation-site-pretenuring')) v8.setFlagsFromString('--no-allocation-site-pretenuring');
}

/** True when the V8 flag `name` is on the node command line, either way (`--name`, `--no-name`, `--name=value`). */
const onCommandLine = (name: string): boolean => process.execArgv.some((a) => a.replace(/^--(no-)?/, '').split('=')[0] === name);

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ScorerError && err.code === 'CONFIG_INVALID') {
      process.stderr.write(`kafka-onnx-scorer: invalid configuration\n${err.message}\n`);
      return EXIT.config;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  logger.info({ config: redactedConfig(config), version: SCORER_VERSION }, 'starting');
  applyGcSettings(config.heapGrowingPercent, logger);
  // PIPELINE_THREADS > 1: the pipelines in worker threads (src/threads/); 1: on this thread, as it always ran.
  // Imported when chosen: a supervisor thread that loaded the pipeline's modules (onnxruntime, avsc, …) would only carry their heap.
  const start = config.pipelineThreads > 1 ? (await import('./threads/supervisor.js')).startPipelines : (await import('./app.js')).startScorer;
  const scorer = await start(config, logger).catch(async (err: unknown) => {
    // Our own errors carry a message that names the setting or subject and what to do: make it the log line (no stack: not a bug).
    if (err instanceof ScorerError) logger.fatal({ code: err.code, ...(err.cause instanceof Error && { cause: err.cause.message }) }, err.message);
    else logger.fatal({ err }, 'start-up failed');
    await flushLogger(logger);
    return err instanceof ScorerError && err.code === 'CONFIG_INVALID' ? EXIT.config : EXIT.crash;
  });
  if (typeof scorer === 'number') return scorer;

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: aborting in-flight work and exiting now');
        void flushLogger(logger).finally(() => resolve(EXIT.crash));
        return;
      }
      logger.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down');
      void scorer
        .stop(config.shutdownTimeoutMs)
        .then((clean) => resolve(clean ? EXIT.ok : EXIT.crash))
        .finally(() => void flushLogger(logger));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP re-reads MODEL_DEPLOYMENT (and never ends the process, which is Node's default for it).
    process.on('SIGHUP', () => {
      if (scorer.reloadDeployment()) logger.info('SIGHUP: re-reading MODEL_DEPLOYMENT');
      else logger.warn('SIGHUP: no MODEL_DEPLOYMENT to re-read (it applies with MODEL_REPOSITORY); ignored');
    });
    scorer.crashed.then(async (err) => {
      // Ours (a missing ACL, say) names what to change: its message is the log line, as at start.
      if (err instanceof ScorerError) logger.fatal({ code: err.code, ...(err.cause instanceof Error && { cause: err.cause.message }) }, `consumer stopped: ${err.message}; exiting`);
      else logger.fatal({ err }, 'consumer crashed; exiting');
      await scorer.stop(Math.min(config.crashStopMs, config.shutdownTimeoutMs)).catch(() => false);
      await flushLogger(logger);
      resolve(EXIT.crash);
    });
  });
}
