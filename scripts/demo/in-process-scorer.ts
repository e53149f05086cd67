/**
 * The scorer, started in the demo's own process on the run's topics: its connection and topic
 * settings are the demo's, tuning variables (BATCH_*, INFER_*, FETCH_*, ...) come from the
 * environment, its logs go to the run's log file, and its HTTP port is 8080 when free. It serves
 * the model repository models/churn with a canary: 10 % of keys to 1.1.0, the rest to 1.0.0
 * (the deployment file is .stack/demo/deployment.json: edit it while the demo runs to swap).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { type Config, loadConfig } from '../../src/config.js';
import { ScorerError, describeError } from '../../src/errors.js';
import { createLogger } from '../../src/ops/logger.js';
import { type RunningScorer, startScorer } from '../../src/app.js';
import { ROOT } from '../lib/feature-events.js';
import type { StackInfo } from '../stack/stack.js';
import type { Terminal } from './format.js';
import type { Interrupts } from './interrupts.js';
import type { LogSink } from './log-sink.js';
import { PARTITIONS, type RunNames } from './runs.js';

const PREFERRED_HTTP_PORT = 8080;
const DEPLOYMENT = { stable: '1.0.0', canary: { version: '1.1.0', percent: 10 } };
/** Tuning variables passed through to the scorer; everything about where it connects is the demo's. */
const PASS_THROUGH = /^(BATCH_|INFER_|FETCH_|CIRCUIT_|PARTITIONS_CONSUMED_CONCURRENTLY$|MAX_IN_FLIGHT_ROWS$|RESUME_IN_FLIGHT_ROWS$|KAFKA_(SESSION_TIMEOUT|HEARTBEAT_INTERVAL|TRANSACTION_TIMEOUT)_MS$|SHUTDOWN_TIMEOUT_MS$|LOG_LEVEL$|HTTP_HOST$)/;

export interface DemoScorer {
  running: RunningScorer;
  config: Config;
  /** Where its /metrics, /readyz and /healthz answer. */
  baseUrl: string;
  /** Filled in when the scorer's consumer crashes (its `crashed` promise settles). */
  crash: { happened: boolean; error: unknown };
}

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((r) => {
    const srv = createServer();
    srv.once('error', () => r(false));
    srv.listen(port, host, () => srv.close(() => r(true)));
  });
}

/**
 * Starts the scorer and prints where it answers. Returns the exit code instead when it cannot
 * start (1, said on stderr) or a Ctrl-C came while it started (0, after stopping it cleanly).
 */
export async function startDemoScorer(stack: StackInfo, names: RunNames, log: LogSink, term: Terminal, interrupts: Interrupts): Promise<DemoScorer | number> {
  const { st, print, rel } = term;
  const host = process.env.HTTP_HOST ?? '127.0.0.1';
  const passed = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && PASS_THROUGH.test(k)));
  const deployment = resolve(ROOT, '.stack/demo/deployment.json');
  mkdirSync(resolve(ROOT, '.stack/demo'), { recursive: true });
  writeFileSync(deployment, `${JSON.stringify(DEPLOYMENT, null, 2)}\n`);
  const configFor = (port: number): Config =>
    loadConfig({
      LOG_LEVEL: 'warn',
      ...passed,
      KAFKA_BROKERS: stack.kafkaBrokers,
      SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
      ...stack.securityEnv,
      INPUT_TOPIC: names.input,
      OUTPUT_TOPIC: names.output,
      DLQ_TOPIC: names.dlq,
      GROUP_ID: names.group,
      KAFKA_CLIENT_ID: 'kafka-onnx-scorer-demo',
      TOPIC_PARTITIONS: String(PARTITIONS),
      MODEL_REPOSITORY: resolve(ROOT, 'models/churn'),
      MODEL_DEPLOYMENT: deployment,
      HTTP_HOST: host,
      HTTP_PORT: String(port),
    });
  let config: Config;
  try {
    config = configFor((await portFree(PREFERRED_HTTP_PORT, host)) ? PREFERRED_HTTP_PORT : 0);
  } catch (err) {
    process.stderr.write(`demo: ${err instanceof ScorerError ? err.message : describeError(err)}\n`);
    return 1;
  }
  const logger = createLogger(config.logLevel, { destination: log });
  print(`${st.bold('scorer')}    starting in this process (model ${rel(config.model.kind === 'file' ? config.model.path : config.model.repository)}; logs at ${config.logLevel} to ${rel(log.path)})`);
  const start = async (): Promise<RunningScorer> => {
    try {
      return await startScorer(config, logger);
    } catch (err) {
      // Someone took port 8080 between the check and the bind: any free port will do.
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || config.http.port === 0) throw err;
      config = configFor(0);
      return startScorer(config, logger);
    }
  };
  let running: RunningScorer;
  try {
    const starting = start();
    starting.catch(() => undefined);
    await Promise.race([starting, interrupts.promise]);
    running = await starting; // after a Ctrl-C too: it is stopped cleanly below
  } catch (err) {
    process.stderr.write(`demo: the scorer did not start: ${describeError(err)}\n  (log: ${rel(log.path)})\n`);
    return 1;
  }
  if (interrupts.aborted) {
    print('\ninterrupted before producing: stopping the scorer.');
    await running.stop(config.shutdownTimeoutMs);
    return 0;
  }
  const baseUrl = `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${running.httpPort}`;
  const m = running.model.manifest;
  const inference = config.infer.mode === 'worker' ? `${config.infer.workers} inference worker thread${config.infer.workers === 1 ? '' : 's'}` : 'inference on the main thread';
  print(`          ready: model ${m.name} ${m.version} (sha256 ${running.model.sha256.slice(0, 12)}…), batches of up to ${config.batch.maxSize} rows, ${inference}`);
  print(`          canary: ${DEPLOYMENT.canary.percent} % of keys to ${DEPLOYMENT.canary.version} (edit ${rel(deployment)} to swap, roll back or add a shadow)`);
  print(`${st.bold('models')}    ${st.cyan(`${baseUrl}/models`)}`);
  print(`${st.bold('metrics')}   ${st.cyan(`${baseUrl}/metrics`)}`);
  print(`${st.bold('ready')}     ${st.cyan(`${baseUrl}/readyz`)}   ${st.dim(`(health: ${baseUrl}/healthz)`)}`);
  const crash = { happened: false, error: undefined as unknown };
  void running.crashed.then((err) => {
    crash.happened = true;
    crash.error = err;
  });
  return { running, config, baseUrl, crash };
}
