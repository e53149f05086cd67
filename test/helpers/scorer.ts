/**
 * Runs the real scorer for integration tests: in-process (startScorer) or as a child process
 * (`node --import tsx src/cli.ts`, one OS process, so SIGKILL kills exactly the scorer).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import { inject, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/ops/logger.js';
import { type RunningScorer, startScorer } from '../../src/app.js';
import { ROOT } from '../../scripts/lib/feature-events.js';
import { waitFor } from './kafka.js';
import { freePort, scrape } from './net.js';

/** A test scorer's log file: one directory per broker line (test/integration/lines.ts), so the lines' logs never mix. */
function testLog(name: string): string {
  const dir = resolve(ROOT, '.stack/logs', inject('lineName'));
  mkdirSync(dir, { recursive: true });
  return resolve(dir, `test-${name}.log`);
}

/** The scorer's environment for a test: the local stack, the churn model (or MODEL_REPOSITORY when given), quick group timeouts. */
export function scorerEnv(overrides: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    KAFKA_BROKERS: inject('kafkaBrokers'),
    SCHEMA_REGISTRY_URL: inject('schemaRegistryUrl'),
    // A secure line: TLS, SASL and registry auth as the stack's admin (a test overrides the user).
    ...inject('stackSecurityEnv'),
    MODEL_PATH: resolve(ROOT, 'models/churn.onnx'),
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    // In-process scorers share the test's stdout: only errors (TEST_LOG_LEVEL=info for more). Child processes log to files.
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    // The broker's minimum: a killed or departed instance's partitions move on quickly.
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_HEARTBEAT_INTERVAL_MS: '500',
    SHUTDOWN_TIMEOUT_MS: '20000',
    TOPIC_PARTITIONS: '6',
    // The line's own settings (test/integration/lines.ts), e.g. EOS_MODE=v2.
    ...inject('lineScorerEnv'),
    ...overrides,
  };
  if (overrides.MODEL_REPOSITORY !== undefined && overrides.MODEL_PATH === undefined) delete env.MODEL_PATH;
  return env;
}

/**
 * Starts an in-process scorer; stopped when the calling test ends, passed or failed, unless stopped
 * before. `logger`: where its log goes instead (a test that reads the log); `spanExporter`: tracing on,
 * spans to it. (onTestFinished, not afterAll: an afterAll registered inside a running test never runs.)
 */
export async function startTestScorer(overrides: Record<string, string>, { logger, spanExporter }: { logger?: Logger; spanExporter?: SpanExporter } = {}): Promise<RunningScorer> {
  const config = loadConfig(scorerEnv(overrides));
  const scorer = await startScorer(config, logger ?? createLogger(config.logLevel), spanExporter === undefined ? {} : { spanExporter });
  onTestFinished(() => scorer.stop(20_000).then(() => undefined));
  return scorer;
}

export interface ScorerProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

/** Spawns the scorer as its own process and resolves once /readyz answers 200. Logs go to .stack/logs/<line>/test-<name>.log. */
export async function spawnScorer(name: string, overrides: Record<string, string>): Promise<ScorerProcess> {
  const port = await freePort();
  const env = { ...process.env, ...scorerEnv({ ...overrides, HTTP_PORT: String(port), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info' }) };
  const log = createWriteStream(testLog(name), { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  // When the calling test ends, passed or failed: a child left running outlives the test run.
  onTestFinished(() => {
    if (!gone) child.kill('SIGKILL');
  });
  const state = await waitFor(
    `scorer ${name} ready on :${port}`,
    async () => {
      if (gone) return 'exited';
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      return res?.status === 200 ? 'ready' : undefined;
    },
    90_000,
    200,
  );
  if (state === 'exited') throw new Error(`scorer ${name} exited during start-up (see ${testLog(name)})`);
  return { child, port, exited };
}

/** Records this instance has committed (scored or dead-lettered) since it started. */
export async function processedSoFar(p: ScorerProcess): Promise<number> {
  return (await scrape(p.port, 'scorer_records_scored_total')) + (await scrape(p.port, 'scorer_records_dead_lettered_total'));
}

/** Runs the scorer as its own process until it exits by itself (a start-up failure); its log also goes to .stack/logs/<line>/test-<name>.log. */
export async function runScorerToExit(name: string, overrides: Record<string, string>, timeoutMs = 90_000): Promise<{ code: number | null; log: string; ms: number }> {
  const env = { ...process.env, ...scorerEnv({ ...overrides, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info' }) };
  const file = createWriteStream(testLog(name), { flags: 'a' });
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      file.write(chunk);
    });
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  clearTimeout(timer);
  file.end();
  return { code, log, ms: Date.now() - started };
}

export interface JobProcess {
  child: ChildProcess;
  /** Exit code; stdout is the job's JSON summary line. */
  exited: Promise<{ code: number | null; stdout: string }>;
}

/** Runs `kafka-onnx-scorer <args>` (a job subcommand) as its own process; stderr (logs, progress) to .stack/logs/<line>/test-<name>.log. */
export function spawnJob(name: string, args: string[], overrides: Record<string, string>): JobProcess {
  const env = { ...process.env, ...scorerEnv({ ...overrides, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info' }) };
  const log = createWriteStream(testLog(name), { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<{ code: number | null; stdout: string }>((r) => child.once('exit', (code) => r({ code, stdout })));
  let gone = false;
  void exited.then(() => (gone = true));
  onTestFinished(() => {
    if (!gone) child.kill('SIGKILL');
  });
  return { child, exited };
}
