import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_KEYS, DEFAULTS, FIXED, loadConfig, redactedConfig } from '../../src/config.js';
import { ScorerError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'scorer-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string): string => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const MODEL = file('model.onnx', 'not really onnx');
const CA = file('ca.pem', '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n');
const CERT = file('cert.pem', '-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n');
const KEY_SECRET = 'PRIVATE-KEY-BYTES-7f3a9c';
const KEY = file('key.pem', `-----BEGIN PRIVATE KEY-----\n${KEY_SECRET}\n-----END PRIVATE KEY-----\n`);
const SASL_SECRET = 'sasl-Sup3r-S3cret-Zq81';
const REGISTRY_SECRET = 'registry-Hunter2-Kx77';

const base = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  KAFKA_BROKERS: 'localhost:9092',
  INPUT_TOPIC: 'features',
  OUTPUT_TOPIC: 'scores',
  DLQ_TOPIC: 'features.dlq',
  SCHEMA_REGISTRY_URL: 'http://localhost:8081',
  MODEL_PATH: MODEL,
  ...extra,
});

/** The problem lines of the CONFIG_INVALID error loadConfig throws. */
function problems(env: NodeJS.ProcessEnv, options?: Parameters<typeof loadConfig>[1]): string[] {
  try {
    loadConfig(env, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ScorerError);
    expect((err as ScorerError).code).toBe('CONFIG_INVALID');
    return (err as ScorerError).message.split('\n').slice(1);
  }
  throw new Error('loadConfig did not throw');
}

describe('loadConfig', () => {
  it('applies defaults to everything optional', () => {
    const c = loadConfig(base());
    expect(c.kafka.brokers).toEqual(['localhost:9092']);
    expect(c.kafka.groupId).toBe(DEFAULTS.GROUP_ID);
    expect(c.kafka.sessionTimeoutMs).toBe(30_000);
    expect(c.kafka.heartbeatIntervalMs).toBe(3_000);
    expect(c.kafka.fetch).toEqual({ maxBytesPerPartition: 1_048_576, maxBytes: 1_048_576, minBytes: 1, maxWaitTimeMs: 100 });
    expect(c.kafka.ssl).toEqual({ enabled: false, rejectUnauthorized: true });
    expect(c.kafka.sasl).toBeUndefined();
    expect(c.topics).toEqual({ input: 'features', output: 'scores', dlq: 'features.dlq', dlqMaxMessageBytes: 1_000_000, partitions: 6, replicationFactor: 1 });
    expect(c.registry).toEqual({ url: 'http://localhost:8081', timeoutMs: FIXED.REGISTRY_TIMEOUT_MS });
    expect(c.batch).toEqual({ maxSize: 512, maxDelayMs: 10, idleDispatch: true });
    expect(c.infer).toEqual({ mode: 'worker', workers: 1, intraOpThreads: 1, graphOptimization: 'all', spinning: false, closeTimeoutMs: FIXED.INFERENCE_CLOSE_MS });
    expect(c.backpressure).toEqual({ maxInFlightRows: 20_000, resumeInFlightRows: 10_000 });
    expect(c.heapGrowingPercent).toBe(100);
    expect(c.circuit).toEqual({ failureThreshold: 5, cooldownMs: 30_000 });
    expect(c.http).toEqual({ port: 8080, host: '0.0.0.0' });
    expect(c).toMatchObject({ logLevel: 'info', lagPollIntervalMs: 5_000, shutdownTimeoutMs: 25_000 });
  });

  it('parses every kind of value', () => {
    const c = loadConfig(base({
      KAFKA_BROKERS: 'a:1, b:65535,[::1]:9093',
      BATCH_MAX_SIZE: '1024',
      BATCH_IDLE_DISPATCH: 'No',
      INFER_SPINNING: 'YES',
      INFER_MODE: 'main',
      LOG_LEVEL: 'DEBUG',
      HTTP_PORT: '0',
    }));
    expect(c.kafka.brokers).toEqual(['a:1', 'b:65535', '[::1]:9093']);
    expect(c.batch).toMatchObject({ maxSize: 1024, idleDispatch: false });
    expect(c.infer).toMatchObject({ mode: 'main', spinning: true });
    expect(c.logLevel).toBe('debug');
    expect(c.http.port).toBe(0);
  });

  it('takes OUTPUT_SCHEMA_ID as the output schema id to check instead of registering', () => {
    expect(loadConfig(base({ OUTPUT_SCHEMA_ID: '42' })).registry).toMatchObject({ url: 'http://localhost:8081', outputSchemaId: 42 });
    expect(loadConfig(base()).registry.outputSchemaId).toBeUndefined();
  });

  it.each([
    ['1', true], ['0', false], ['true', true], ['FALSE', false], ['yes', true], ['no', false],
  ])('reads the boolean %s as %s', (text, value) => {
    expect(loadConfig(base({ INFER_SPINNING: text })).infer.spinning).toBe(value);
  });

  it('names a missing required variable', () => {
    const env = base();
    delete env.MODEL_PATH;
    expect(problems(env)).toEqual(['MODEL_PATH: expected an existing .onnx file (or MODEL_REPOSITORY: an existing directory of model versions), got nothing (required)']);
  });

  it('takes a model repository instead of a model file, with an optional deployment file', () => {
    const env = base({ MODEL_REPOSITORY: dir, MODEL_DEPLOYMENT: file('deployment.json', '{"stable":"1.0.0"}') });
    delete env.MODEL_PATH;
    expect(loadConfig(env).model).toEqual({ kind: 'repository', repository: dir, deployment: join(dir, 'deployment.json') });
    expect(loadConfig(base()).model).toEqual({ kind: 'file', path: MODEL });
  });

  it.each([
    ['both sources', { MODEL_REPOSITORY: dir }, `MODEL_REPOSITORY: expected MODEL_PATH or MODEL_REPOSITORY, not both, got both (MODEL_PATH '${MODEL}')`],
    ['a deployment without a repository', { MODEL_DEPLOYMENT: file('d.json', '{}') }, 'MODEL_DEPLOYMENT: expected MODEL_REPOSITORY to be set (a deployment names versions of a repository), got MODEL_PATH'],
    ['a repository that is no directory', { MODEL_PATH: undefined, MODEL_REPOSITORY: MODEL }, `MODEL_REPOSITORY: expected an existing directory, got '${MODEL}'`],
    ['a deployment that is no .json file', { MODEL_PATH: undefined, MODEL_REPOSITORY: dir, MODEL_DEPLOYMENT: CA }, `MODEL_DEPLOYMENT: expected an existing .json file, got '${CA}'`],
  ])('refuses %s, naming the variable', (_, vars, message) => {
    const env = base(vars as Record<string, string>);
    for (const [k, v] of Object.entries(vars)) if (v === undefined) delete env[k];
    expect(problems(env)).toEqual([message]);
  });

  it.each([
    ['GROUP_ID', '', "GROUP_ID: expected a non-empty string, got ''"],
    ['BATCH_MAX_SIZE', 'abc', "BATCH_MAX_SIZE: expected an integer from 1 to 65536, got 'abc'"],
    ['BATCH_MAX_SIZE', '1.5', "BATCH_MAX_SIZE: expected an integer from 1 to 65536, got '1.5'"],
    ['BATCH_MAX_SIZE', '65537', "BATCH_MAX_SIZE: expected an integer from 1 to 65536, got '65537'"],
    ['BATCH_MAX_SIZE', '0', "BATCH_MAX_SIZE: expected an integer from 1 to 65536, got '0'"],
    ['HTTP_PORT', '-1', "HTTP_PORT: expected an integer from 0 to 65535, got '-1'"],
    ['INFER_MODE', 'gpu', "INFER_MODE: expected one of worker|main, got 'gpu'"],
    ['LOG_LEVEL', 'verbose', "LOG_LEVEL: expected one of fatal|error|warn|info|debug|trace|silent, got 'verbose'"],
    ['EOS_MODE', 'v3', "EOS_MODE: expected one of v1|v2, got 'v3'"],
    ['INFER_SPINNING', 'maybe', "INFER_SPINNING: expected a boolean (true/false/1/0/yes/no), got 'maybe'"],
    ['SCHEMA_REGISTRY_URL', 'localhost:8081', "SCHEMA_REGISTRY_URL: expected an http or https URL, got 'localhost:8081'"],
    ['SCHEMA_REGISTRY_URL', 'ftp://registry', "SCHEMA_REGISTRY_URL: expected an http or https URL, got 'ftp://registry'"],
    ['INPUT_TOPIC', 'bad topic!', "INPUT_TOPIC: expected a Kafka topic name ([a-zA-Z0-9._-]{1,249}), got 'bad topic!'"],
    ['INPUT_TOPIC', '..', "INPUT_TOPIC: expected a Kafka topic name ([a-zA-Z0-9._-]{1,249}), got '..'"],
    ['KAFKA_BROKERS', 'localhost', "KAFKA_BROKERS: expected a comma-separated list of host:port (port 1-65535), got 'localhost'"],
    ['KAFKA_BROKERS', 'a:9092,b:70000', "KAFKA_BROKERS: expected a comma-separated list of host:port (port 1-65535), got 'a:9092,b:70000'"],
    ['MODEL_PATH', join(dir, 'missing.onnx'), `MODEL_PATH: expected an existing .onnx file, got '${join(dir, 'missing.onnx')}'`],
    ['MODEL_PATH', CA, `MODEL_PATH: expected an existing .onnx file, got '${CA}'`],
    ['KAFKA_SSL_CA_FILE', join(dir, 'nope.pem'), `KAFKA_SSL_CA_FILE: expected an existing readable file, got '${join(dir, 'nope.pem')}'`],
    ['OUTPUT_SCHEMA_ID', '0', "OUTPUT_SCHEMA_ID: expected an integer from 1 to 2147483647, got '0'"],
    ['OUTPUT_SCHEMA_ID', 'latest', "OUTPUT_SCHEMA_ID: expected an integer from 1 to 2147483647, got 'latest'"],
  ])('rejects %s=%j', (key, value, message) => {
    expect(problems(base({ [key]: value }))).toEqual([message]);
  });

  it('takes HEAP_GROWING_PERCENT from 0 (V8 decides) to 1000', () => {
    expect(loadConfig(base({ HEAP_GROWING_PERCENT: '0' })).heapGrowingPercent).toBe(0);
    expect(loadConfig(base({ HEAP_GROWING_PERCENT: '50' })).heapGrowingPercent).toBe(50);
    expect(problems(base({ HEAP_GROWING_PERCENT: '-1' }))).toEqual(["HEAP_GROWING_PERCENT: expected an integer from 0 to 1000, got '-1'"]);
    expect(problems(base({ HEAP_GROWING_PERCENT: 'lots' }))).toEqual(["HEAP_GROWING_PERCENT: expected an integer from 0 to 1000, got 'lots'"]);
  });

  it('runs PIPELINE_THREADS pipelines: 1 by default, a number, or auto (the available cores)', async () => {
    const { availableParallelism } = await import('node:os');
    expect(loadConfig(base()).pipelineThreads).toBe(DEFAULTS.PIPELINE_THREADS);
    expect(loadConfig(base({ PIPELINE_THREADS: '2' })).pipelineThreads).toBe(2);
    expect(loadConfig(base({ PIPELINE_THREADS: 'AUTO' })).pipelineThreads).toBe(Math.min(64, availableParallelism()));
    expect(problems(base({ PIPELINE_THREADS: '0' }))).toEqual(["PIPELINE_THREADS: expected an integer from 1 to 64 or 'auto', got '0'"]);
    expect(problems(base({ PIPELINE_THREADS: 'many' }))).toEqual(["PIPELINE_THREADS: expected an integer from 1 to 64 or 'auto', got 'many'"]);
  });

  it('refuses the OIP endpoint with more than one pipeline (no one pipeline to serve it)', () => {
    expect(problems(base({ PIPELINE_THREADS: '2', INFER_HTTP: 'true' }))).toEqual([
      "INFER_HTTP: expected false when PIPELINE_THREADS is above 1 (it is 2: serve OIP from a PIPELINE_THREADS=1 deployment), got 'true'",
    ]);
    expect(loadConfig(base({ PIPELINE_THREADS: '1', INFER_HTTP: 'true' })).inferHttp.enabled).toBe(true);
  });

  it('rejects a topic used twice', () => {
    expect(problems(base({ DLQ_TOPIC: 'features' }))).toEqual(["DLQ_TOPIC: expected a topic other than INPUT_TOPIC's, got 'features'"]);
  });

  it('keeps heartbeats under a third of the session timeout, naming a defaulted value', () => {
    expect(problems(base({ KAFKA_SESSION_TIMEOUT_MS: '6000' }))).toEqual([
      'KAFKA_HEARTBEAT_INTERVAL_MS: expected less than a third of KAFKA_SESSION_TIMEOUT_MS (6000), got 3000 (the default)',
    ]);
    expect(loadConfig(base({ KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_HEARTBEAT_INTERVAL_MS: '1999' })).kafka.heartbeatIntervalMs).toBe(1999);
  });

  it('resumes below the pause threshold', () => {
    expect(problems(base({ MAX_IN_FLIGHT_ROWS: '1000', RESUME_IN_FLIGHT_ROWS: '1000' }))).toEqual([
      "RESUME_IN_FLIGHT_ROWS: expected less than MAX_IN_FLIGHT_ROWS (1000), got '1000'",
    ]);
  });

  it('reports every problem at once, one per line', () => {
    const env = base({ GROUP_ID: '', BATCH_MAX_SIZE: 'abc', OUTPUT_TOPIC: 'features', KAFKA_SASL_MECHANISM: 'plain' });
    delete env.KAFKA_BROKERS;
    let message = '';
    try {
      loadConfig(env);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n')[0]).toBe('invalid configuration (6 problems):');
    expect(problems(env)).toEqual([
      'KAFKA_BROKERS: expected a comma-separated list of host:port (port 1-65535), got nothing (required)',
      "GROUP_ID: expected a non-empty string, got ''",
      "BATCH_MAX_SIZE: expected an integer from 1 to 65536, got 'abc'",
      "OUTPUT_TOPIC: expected a topic other than INPUT_TOPIC's, got 'features'",
      'KAFKA_SASL_USERNAME: expected a non-empty string when KAFKA_SASL_MECHANISM is set, got nothing',
      'KAFKA_SASL_PASSWORD: expected a non-empty string when KAFKA_SASL_MECHANISM is set, got nothing',
    ]);
  });

  describe('security', () => {
    it('builds SASL and registry auth', () => {
      const c = loadConfig(base({
        KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'scorer', KAFKA_SASL_PASSWORD: SASL_SECRET,
        SCHEMA_REGISTRY_USERNAME: 'reg', SCHEMA_REGISTRY_PASSWORD: REGISTRY_SECRET, SCHEMA_REGISTRY_CA_FILE: CA,
      }));
      expect(c.kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'scorer', password: SASL_SECRET });
      expect(c.registry.auth).toEqual({ username: 'reg', password: REGISTRY_SECRET });
      expect(c.registry.ca?.path).toBe(CA);
    });

    it('rejects SASL without a password, without echoing anything secret', () => {
      expect(problems(base({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'scorer' }))).toEqual([
        'KAFKA_SASL_PASSWORD: expected a non-empty string when KAFKA_SASL_MECHANISM is set, got nothing',
      ]);
    });

    it('rejects credentials without a mechanism', () => {
      expect(problems(base({ KAFKA_SASL_USERNAME: 'scorer', KAFKA_SASL_PASSWORD: SASL_SECRET }))).toEqual([
        'KAFKA_SASL_MECHANISM: expected one of plain|scram-sha-256|scram-sha-512 when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set, got nothing',
      ]);
    });

    it('rejects a registry user without a password', () => {
      expect(problems(base({ SCHEMA_REGISTRY_USERNAME: 'reg' }))).toEqual([
        'SCHEMA_REGISTRY_PASSWORD: expected a non-empty string when SCHEMA_REGISTRY_USERNAME is set, got nothing',
      ]);
    });

    it('reads TLS files, implies SSL from them and wants cert and key together', () => {
      const c = loadConfig(base({ KAFKA_SSL_CA_FILE: CA, KAFKA_SSL_CERT_FILE: CERT, KAFKA_SSL_KEY_FILE: KEY, KAFKA_SSL_REJECT_UNAUTHORIZED: 'false' }));
      expect(c.kafka.ssl.enabled).toBe(true);
      expect(c.kafka.ssl.rejectUnauthorized).toBe(false);
      expect(c.kafka.ssl.key?.pem).toContain(KEY_SECRET);
      expect(c.kafka.ssl.ca?.path).toBe(CA);
      expect(problems(base({ KAFKA_SSL_CERT_FILE: CERT }))).toEqual(['KAFKA_SSL_KEY_FILE: expected a file when KAFKA_SSL_CERT_FILE is set, got nothing']);
      expect(problems(base({ KAFKA_SSL: 'false', KAFKA_SSL_CA_FILE: CA }))).toEqual([
        "KAFKA_SSL: expected true or unset when a KAFKA_SSL_*_FILE is set, got 'false'",
      ]);
      expect(loadConfig(base({ KAFKA_SSL: 'true' })).kafka.ssl).toEqual({ enabled: true, rejectUnauthorized: true });
    });

    it('rejects a missing cert file', () => {
      const missing = join(dir, 'missing-cert.pem');
      expect(problems(base({ KAFKA_SSL_CERT_FILE: missing, KAFKA_SSL_KEY_FILE: KEY }))).toEqual([
        `KAFKA_SSL_CERT_FILE: expected an existing readable file, got '${missing}'`,
      ]);
    });

    it('never puts a password or key in a message or in redactedConfig', () => {
      const secrets = base({
        KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'scorer', KAFKA_SASL_PASSWORD: SASL_SECRET,
        SCHEMA_REGISTRY_USERNAME: 'reg', SCHEMA_REGISTRY_PASSWORD: REGISTRY_SECRET,
        KAFKA_SSL_CERT_FILE: CERT, KAFKA_SSL_KEY_FILE: KEY,
      });
      // A failing configuration that holds every secret.
      const message = problems({ ...secrets, BATCH_MAX_SIZE: 'x', SCHEMA_REGISTRY_URL: `ftp://reg:${REGISTRY_SECRET}@host` }).join('\n');
      const redacted = JSON.stringify(redactedConfig(loadConfig({ ...secrets, SCHEMA_REGISTRY_URL: `https://reg:${REGISTRY_SECRET}@host` })));
      for (const text of [message, redacted]) {
        expect(text).not.toContain(SASL_SECRET);
        expect(text).not.toContain(REGISTRY_SECRET);
        expect(text).not.toContain(KEY_SECRET);
      }
      expect(redacted).toContain('[redacted]');
      expect(redacted).toContain(KEY); // the path stays, for debugging
    });

    it('does not echo an invalid secret value', () => {
      expect(problems(base({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: '' }))).toEqual([
        'KAFKA_SASL_PASSWORD: expected a non-empty string, got [redacted]',
      ]);
    });
  });

  describe('CONFIG_FILE', () => {
    it('fills in from the file, the environment winning', () => {
      const path = file('config.json', JSON.stringify({ BATCH_MAX_SIZE: 64, BATCH_MAX_DELAY_MS: '5', INFER_SPINNING: true, GROUP_ID: 'from-file', KAFKA_BROKERS: ['f1:9092', 'f2:9092'] }));
      const env = base({ CONFIG_FILE: path, GROUP_ID: 'from-env' });
      delete env.KAFKA_BROKERS;
      const c = loadConfig(env);
      expect(c.batch).toMatchObject({ maxSize: 64, maxDelayMs: 5 });
      expect(c.infer.spinning).toBe(true);
      expect(c.kafka.groupId).toBe('from-env');
      expect(c.kafka.brokers).toEqual(['f1:9092', 'f2:9092']);
    });

    it('uses an injected readFile', () => {
      const readFile = (p: string): string => {
        expect(p).toBe('/etc/scorer.json');
        return '{"LOG_LEVEL":"warn"}';
      };
      expect(loadConfig(base({ CONFIG_FILE: '/etc/scorer.json' }), { readFile }).logLevel).toBe('warn');
    });

    it('reports bad files without quoting their contents', () => {
      const broken = file('broken.json', `{"KAFKA_SASL_PASSWORD": ${SASL_SECRET}}`);
      const lines = problems(base({ CONFIG_FILE: broken }));
      expect(lines).toEqual([`CONFIG_FILE: expected a readable JSON object file, got '${broken}': invalid JSON`]);
      expect(lines.join()).not.toContain(SASL_SECRET);
      expect(problems(base({ CONFIG_FILE: join(dir, 'absent.json') }))).toEqual([
        `CONFIG_FILE: expected a readable JSON object file, got '${join(dir, 'absent.json')}': unreadable (ENOENT)`,
      ]);
      expect(problems(base({ CONFIG_FILE: file('array.json', '[]') }))).toEqual(['CONFIG_FILE: expected a JSON object, got an array']);
      expect(problems(base({ CONFIG_FILE: file('typo.json', '{"BATCH_SIZE": 3, "BATCH_MAX_DELAY_MS": {"x": 1}}') }))).toEqual([
        "CONFIG_FILE: expected only known keys, got 'BATCH_SIZE'",
        'CONFIG_FILE: BATCH_MAX_DELAY_MS: expected a string, number or boolean, got object',
      ]);
    });
  });
});

describe('EOS_MODE', () => {
  it('v2 by default with a 10 s transaction timeout and producers named after host and pid; v1 defaults the timeout to 60 s; both take an explicit timeout and instance id', () => {
    const v1 = loadConfig(base({ EOS_MODE: 'v1' })).kafka;
    expect(v1.eos.mode).toBe('v1');
    expect(v1.transactionTimeoutMs).toBe(DEFAULTS.KAFKA_TRANSACTION_TIMEOUT_MS);
    const v2 = loadConfig(base()).kafka;
    expect(v2.eos).toMatchObject({ mode: 'v2', producers: FIXED.EOS_V2_PRODUCERS, parallelRecords: FIXED.EOS_V2_PARALLEL_RECORDS });
    expect(v2.eos.instanceId).toMatch(new RegExp(`-${process.pid}$`));
    expect(v2.transactionTimeoutMs).toBe(FIXED.EOS_V2_TRANSACTION_TIMEOUT_MS);
    const set = loadConfig(base({ EOS_MODE: 'v2', KAFKA_TRANSACTION_TIMEOUT_MS: '30000', EOS_INSTANCE_ID: 'scorer-0' })).kafka;
    expect(set.transactionTimeoutMs).toBe(30_000);
    expect(set.eos.instanceId).toBe('scorer-0');
  });
});

describe('CONFIG_KEYS', () => {
  it('lists every variable once, CONFIG_FILE included', () => {
    expect(new Set(CONFIG_KEYS).size).toBe(CONFIG_KEYS.length);
    for (const k of ['KAFKA_BROKERS', 'GROUP_ID', 'MODEL_PATH', 'HTTP_PORT', 'KAFKA_SASL_PASSWORD', 'SCHEMA_REGISTRY_CA_FILE', 'CONFIG_FILE']) {
      expect(CONFIG_KEYS).toContain(k);
    }
    for (const k of Object.keys(DEFAULTS)) expect(CONFIG_KEYS).toContain(k);
    expect(CONFIG_KEYS).toHaveLength(60); // 5 required + 37 with defaults + 3 model sources + 11 security + OUTPUT_SCHEMA_ID + KAFKA_TRANSACTION_TIMEOUT_MS + EOS_INSTANCE_ID + CONFIG_FILE
  });
});
