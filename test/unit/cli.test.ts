/**
 * The process contract: bad configuration stops the scorer before it connects to anything, with
 * exit code 2 and a message naming each variable and what was wrong.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

// Each test starts a real `node --import tsx src/cli.ts`, which compiles the CLI's import graph
// before it reads the environment: about 0.4 s on a quiet machine, 2.6 s with `stress-ng --cpu 2`
// beside the unit run, 7.7 s on a machine ten times oversubscribed, so vitest's 5 s default is a
// coin toss on a busy CI runner. It cannot be made cheaper without testing less: the process
// contract (exit code, stderr) can only be checked on a process. A hung CLI is killed first,
// so it fails as a wrong exit status instead of a timeout.
const CLI_KILL_MS = 20_000;
const CLI_TEST_TIMEOUT_MS = 30_000;

function runCli(env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli.ts')], {
    cwd: ROOT,
    // Only what we pass: no KAFKA_BROKERS etc. leaking in from the developer's shell.
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: CLI_KILL_MS,
  });
}

describe('kafka-onnx-scorer command', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('exits 2 naming every missing required variable, before connecting', () => {
    const r = runCli({});
    expect(r.status).toBe(2);
    for (const name of ['KAFKA_BROKERS', 'INPUT_TOPIC', 'OUTPUT_TOPIC', 'DLQ_TOPIC', 'SCHEMA_REGISTRY_URL', 'MODEL_PATH']) {
      expect(r.stderr).toContain(`${name}: expected`);
    }
  });

  it('exits 2 for an invalid value, quoting it, and never echoes a secret', () => {
    const r = runCli({
      KAFKA_BROKERS: '127.0.0.1:9092',
      INPUT_TOPIC: 'in',
      OUTPUT_TOPIC: 'out',
      DLQ_TOPIC: 'dlq',
      SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1',
      MODEL_PATH: resolve(ROOT, 'models/churn.onnx'),
      BATCH_MAX_SIZE: 'abc',
      KAFKA_SASL_PASSWORD: 'hunter2-very-secret',
      OTEL_TRACES_SAMPLER: 'ratio',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("BATCH_MAX_SIZE: expected an integer from 1 to 65536, got 'abc'");
    expect(r.stderr).toContain("OTEL_TRACES_SAMPLER: expected one of always_on|"); // the OTel variables too, in the same report
    expect(r.stderr + r.stdout).not.toContain('hunter2-very-secret');
  });
});
