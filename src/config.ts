/**
 * Configuration: environment variables, optionally layered over a JSON file named by CONFIG_FILE
 * (the environment wins), typed once and validated at boot. One table row per variable (parser,
 * default, range), then the rules that span variables. Every problem is collected and reported in
 * one CONFIG_INVALID error, so a broken deployment is fixed in one round trip, not one crash loop
 * per variable. Secrets never reach a message: values are echoed, secrets are not.
 */
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { type Entry, type Io, bool, brokers, directory, httpUrl, int, intOrAuto, jsonFile, oneOf, onnxFile, optional, pemFile, required, text, topic, withDefault } from './config/parsers.js';
import { type TracingConfig, readTracingConfig } from './config/otel.js';
import { REDACTED, quote } from './config/redact.js';
import { ScorerError } from './errors.js';

export { redactedConfig } from './config/redact.js';

/** Defaults. ms = milliseconds, bytes, rows = model input rows (one per event). */
export const DEFAULTS = {
  KAFKA_CLIENT_ID: 'kafka-onnx-scorer',
  GROUP_ID: 'kafka-onnx-scorer',
  TRANSACTIONAL_ID_PREFIX: 'kafka-onnx-scorer',
  KAFKA_SESSION_TIMEOUT_MS: 30_000, // ms
  KAFKA_HEARTBEAT_INTERVAL_MS: 3_000, // ms, must stay < session timeout / 3
  KAFKA_TRANSACTION_TIMEOUT_MS: 60_000, // ms with EOS_MODE=v1; the broker caps it at transaction.max.timeout.ms (15 min)
  // 'v2': a few transactional producers per pipeline, fenced by the group generation (KIP-447; 5x fewer
  // transactions on a live stream, README "Exactly once"); 'v1': one per input partition, fenced by its transactional id.
  EOS_MODE: 'v2',
  PARTITIONS_CONSUMED_CONCURRENTLY: 8, // partitions processed in parallel per fetch
  FETCH_MAX_BYTES_PER_PARTITION: 1_048_576, // bytes (1 MiB)
  // bytes (1 MiB) per fetch response: a fetch's records stay alive until they are encoded, so this
  // bounds the heap (measured, churn 1M drain: 3 MiB -> 1 MiB peak RSS 283 -> 251 MB for 0.93x the
  // drain rate; with the two below it is what keeps the peak under 200 MB; README "Memory").
  FETCH_MAX_BYTES: 1_048_576,
  FETCH_MIN_BYTES: 1, // bytes the broker waits for before answering
  FETCH_MAX_WAIT_MS: 100, // ms the broker waits for FETCH_MIN_BYTES
  TOPIC_PARTITIONS: 6, // partitions, only when creating a missing topic
  TOPIC_REPLICATION_FACTOR: 1, // replicas, only when creating a missing topic
  DLQ_MAX_MESSAGE_BYTES: 1_000_000, // bytes, largest dead letter sent whole (the broker's default limit is 1 MiB + 12)
  BATCH_MAX_SIZE: 512, // rows per inference batch
  BATCH_MAX_DELAY_MS: 10, // ms from a batch's first row to its dispatch
  BATCH_IDLE_DISPATCH: true, // dispatch at once when an inference slot is free
  INFER_MODE: 'worker', // 'worker' (worker threads) | 'main' (the event-loop thread)
  INFER_WORKERS: 1, // worker threads, each with its own session
  INFER_INTRA_OP_THREADS: 1, // onnxruntime threads per session
  INFER_GRAPH_OPTIMIZATION: 'all',
  INFER_SPINNING: false, // spinning threads burn a core each even when idle
  // rows fetched but not committed before partitions pause, and below which they resume: 20,000
  // drains as fast as 50,000 did, with ~35 MB less peak RSS (bench/README.md, phase F).
  MAX_IN_FLIGHT_ROWS: 20_000,
  RESUME_IN_FLIGHT_ROWS: 10_000,
  // V8's old-generation growing factor as a percent (1 + n/100), set at start; 0 = V8's own (up to 4x
  // the live heap). 100 (2x) bounds the garbage a drain piles up (peak RSS -40 to -60 MB, ~0.85-0.95x the drain rate).
  HEAP_GROWING_PERCENT: 100,
  CIRCUIT_FAILURE_THRESHOLD: 5, // consecutive failed batches before the circuit opens
  CIRCUIT_COOLDOWN_MS: 30_000, // ms the circuit stays open before a trial batch
  SHUTDOWN_TIMEOUT_MS: 25_000, // ms; below Kubernetes' default 30 s grace period
  HTTP_PORT: 8080, // 0 = pick a free port
  HTTP_HOST: '0.0.0.0',
  LOG_LEVEL: 'info',
  LAG_POLL_INTERVAL_MS: 5_000, // ms between consumer-lag polls of the broker
  KAFKA_SSL: false, // implied true when any KAFKA_SSL_*_FILE is set
  KAFKA_SSL_REJECT_UNAUTHORIZED: true,
  PIPELINE_THREADS: 1, // pipelines (worker threads) in one process, or 'auto' = available cores (src/threads/)
  INFER_HTTP: false, // the Open Inference Protocol v2 endpoint on HTTP_PORT (src/serve/oip.ts)
  INFER_HTTP_MAX_QUEUED_ROWS: 10_000, // rows of HTTP requests accepted and not yet answered; beyond: 503
  INFER_HTTP_TIMEOUT_MS: 5_000, // ms a request waits for its scores; then 504
  INFER_HTTP_MAX_BODY_BYTES: 8_388_608, // bytes (8 MiB) of one request body; beyond: 413
} as const;

/**
 * Settings that are not variables, fixed by design, kept beside the defaults so every number the
 * stages run with has one home (build() copies them into Config).
 */
export const FIXED = {
  CHUNK_MAX_RECORDS: 5_000, // records per transaction at most (a larger fetched batch is committed in several)
  PARTITION_RETRY: { initialDelayMs: 200, maxDelayMs: 10_000 }, // ms, backoff of a partition paused after a transient failure
  PRODUCER_RETRY: { initialRetryTime: 20, retries: 8, maxRetryTime: 2_000 }, // ms; short: CONCURRENT_TRANSACTIONS clears in ms
  // ms, KAFKA_TRANSACTION_TIMEOUT_MS's default with EOS_MODE=v2 (Kafka Streams' exactly_once_v2 default):
  // a dead member's open transaction holds its partitions' offsets until the broker aborts it, this long after it began.
  EOS_V2_TRANSACTION_TIMEOUT_MS: 10_000,
  EOS_V2_PRODUCERS: 6, // EOS_MODE=v2: transactions in flight at once per pipeline (a backlog's chunks commit in parallel, as with v1 on 6 partitions)
  EOS_V2_PARALLEL_RECORDS: 2_000, // EOS_MODE=v2: records waiting before a transaction starts beside a running one, and most records merged into one
  REGISTRY_TIMEOUT_MS: 10_000, // ms to wait for the registry per writer schema id
  INFERENCE_CLOSE_MS: 5_000, // ms for queued inference to finish at shutdown
  CRASH_STOP_MS: 5_000, // ms to stop after the consumer crashed for good, at most
} as const;

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** A PEM file, read at boot so a missing or unreadable file fails now, not at first connect. */
export interface PemFile { path: string; pem: string }

export interface Config {
  kafka: {
    brokers: string[];
    clientId: string;
    groupId: string;
    transactionalIdPrefix: string;
    sessionTimeoutMs: number;
    heartbeatIntervalMs: number;
    transactionTimeoutMs: number;
    /** Exactly-once mode (src/stages/produce.ts for v1, produce-pipeline.ts for v2). */
    eos: { mode: 'v1' | 'v2'; instanceId: string; producers: number; parallelRecords: number };
    partitionsConsumedConcurrently: number;
    chunkMaxRecords: number;
    partitionRetry: { initialDelayMs: number; maxDelayMs: number };
    producerRetry: { initialRetryTime: number; retries: number; maxRetryTime: number };
    fetch: { maxBytesPerPartition: number; maxBytes: number; minBytes: number; maxWaitTimeMs: number };
    ssl: { enabled: boolean; rejectUnauthorized: boolean; ca?: PemFile; cert?: PemFile; key?: PemFile };
    sasl?: { mechanism: SaslMechanism; username: string; password: string };
  };
  topics: {
    input: string;
    output: string;
    dlq: string;
    /** Largest dead letter sent whole (DLQ_MAX_MESSAGE_BYTES); a larger one is cut (src/stages/deadletter.ts). */
    dlqMaxMessageBytes: number;
    partitions: number;
    replicationFactor: number;
  };
  /** outputSchemaId: an id registered for the scorer's output schema; when set the scorer checks it instead of registering. */
  registry: { url: string; timeoutMs: number; auth?: { username: string; password: string }; ca?: PemFile; outputSchemaId?: number };
  /**
   * The model: one file (MODEL_PATH, its manifest beside it) or a repository of versions
   * (MODEL_REPOSITORY, src/model/), served as MODEL_DEPLOYMENT says (its highest version without it).
   */
  model: { kind: 'file'; path: string } | { kind: 'repository'; repository: string; deployment?: string };
  batch: { maxSize: number; maxDelayMs: number; idleDispatch: boolean };
  infer: { mode: 'worker' | 'main'; workers: number; intraOpThreads: number; graphOptimization: 'disabled' | 'basic' | 'extended' | 'all'; spinning: boolean; closeTimeoutMs: number };
  backpressure: { maxInFlightRows: number; resumeInFlightRows: number };
  circuit: { failureThreshold: number; cooldownMs: number };
  http: { port: number; host: string };
  /** The Open Inference Protocol endpoint (src/serve/oip.ts): off unless INFER_HTTP=true. */
  inferHttp: { enabled: boolean; maxQueuedRows: number; timeoutMs: number; maxBodyBytes: number };
  /** Pipelines in worker threads (PIPELINE_THREADS, src/threads/); 1 = the pipeline on the main thread, as before. */
  pipelineThreads: number;
  /** V8's --heap-growing-percent, set at start (src/main.ts); 0 leaves V8's own factor. */
  heapGrowingPercent: number;
  logLevel: LogLevel;
  lagPollIntervalMs: number;
  shutdownTimeoutMs: number;
  crashStopMs: number;
  /** Traces (src/ops/tracing.ts): the standard OTEL_* variables, from the environment only (src/config/otel.ts). */
  tracing: TracingConfig;
}

/** File access, injectable for tests. */
export interface LoadConfigOptions {
  readFile?: (path: string) => string;
  isFile?: (path: string) => boolean;
  isDirectory?: (path: string) => boolean;
  /** Required variables a command does without (score-file needs no Kafka): not reported when missing. */
  notRequired?: readonly string[];
}

const MAX_INT32 = 2_147_483_647;

/** One row per variable. Ranges keep values inside what Kafka, kafkajs and onnxruntime accept. */
const SCHEMA = {
  KAFKA_BROKERS: required(brokers),
  KAFKA_CLIENT_ID: withDefault(text, DEFAULTS.KAFKA_CLIENT_ID),
  GROUP_ID: withDefault(text, DEFAULTS.GROUP_ID),
  TRANSACTIONAL_ID_PREFIX: withDefault(text, DEFAULTS.TRANSACTIONAL_ID_PREFIX),
  // 6 s..5 min: the broker's default group.min/max.session.timeout.ms.
  KAFKA_SESSION_TIMEOUT_MS: withDefault(int(6_000, 300_000), DEFAULTS.KAFKA_SESSION_TIMEOUT_MS),
  KAFKA_HEARTBEAT_INTERVAL_MS: withDefault(int(100, 100_000), DEFAULTS.KAFKA_HEARTBEAT_INTERVAL_MS),
  // No table default: it depends on EOS_MODE (build()).
  KAFKA_TRANSACTION_TIMEOUT_MS: optional(int(1_000, 900_000)),
  EOS_MODE: withDefault(oneOf(['v1', 'v2'] as const), DEFAULTS.EOS_MODE),
  // Default `<hostname>-<pid>`: differs between live processes, and stays the same for a container restarted in its pod.
  EOS_INSTANCE_ID: optional(text),
  PARTITIONS_CONSUMED_CONCURRENTLY: withDefault(int(1, 256), DEFAULTS.PARTITIONS_CONSUMED_CONCURRENTLY),
  FETCH_MAX_BYTES_PER_PARTITION: withDefault(int(1, MAX_INT32), DEFAULTS.FETCH_MAX_BYTES_PER_PARTITION),
  FETCH_MAX_BYTES: withDefault(int(1, MAX_INT32), DEFAULTS.FETCH_MAX_BYTES),
  FETCH_MIN_BYTES: withDefault(int(0, MAX_INT32), DEFAULTS.FETCH_MIN_BYTES),
  FETCH_MAX_WAIT_MS: withDefault(int(0, 30_000), DEFAULTS.FETCH_MAX_WAIT_MS),
  INPUT_TOPIC: required(topic),
  OUTPUT_TOPIC: required(topic),
  DLQ_TOPIC: required(topic),
  TOPIC_PARTITIONS: withDefault(int(1, 10_000), DEFAULTS.TOPIC_PARTITIONS),
  TOPIC_REPLICATION_FACTOR: withDefault(int(1, 32_767), DEFAULTS.TOPIC_REPLICATION_FACTOR),
  // 4 KiB: room for the dlq.* headers of a cut dead letter; keep it at or below the dead-letter topic's max.message.bytes.
  DLQ_MAX_MESSAGE_BYTES: withDefault(int(4_096, MAX_INT32), DEFAULTS.DLQ_MAX_MESSAGE_BYTES),
  SCHEMA_REGISTRY_URL: required(httpUrl),
  // One of MODEL_PATH and MODEL_REPOSITORY (RULES).
  MODEL_PATH: optional(onnxFile),
  MODEL_REPOSITORY: optional(directory),
  MODEL_DEPLOYMENT: optional(jsonFile),
  BATCH_MAX_SIZE: withDefault(int(1, 65_536), DEFAULTS.BATCH_MAX_SIZE),
  BATCH_MAX_DELAY_MS: withDefault(int(0, 60_000), DEFAULTS.BATCH_MAX_DELAY_MS),
  BATCH_IDLE_DISPATCH: withDefault(bool, DEFAULTS.BATCH_IDLE_DISPATCH),
  INFER_MODE: withDefault(oneOf(['worker', 'main'] as const), DEFAULTS.INFER_MODE),
  INFER_WORKERS: withDefault(int(1, 16), DEFAULTS.INFER_WORKERS),
  INFER_INTRA_OP_THREADS: withDefault(int(1, 64), DEFAULTS.INFER_INTRA_OP_THREADS),
  INFER_GRAPH_OPTIMIZATION: withDefault(oneOf(['disabled', 'basic', 'extended', 'all'] as const), DEFAULTS.INFER_GRAPH_OPTIMIZATION),
  INFER_SPINNING: withDefault(bool, DEFAULTS.INFER_SPINNING),
  MAX_IN_FLIGHT_ROWS: withDefault(int(1, 10_000_000), DEFAULTS.MAX_IN_FLIGHT_ROWS),
  RESUME_IN_FLIGHT_ROWS: withDefault(int(0, 10_000_000), DEFAULTS.RESUME_IN_FLIGHT_ROWS),
  CIRCUIT_FAILURE_THRESHOLD: withDefault(int(1, 1_000), DEFAULTS.CIRCUIT_FAILURE_THRESHOLD),
  CIRCUIT_COOLDOWN_MS: withDefault(int(0, 3_600_000), DEFAULTS.CIRCUIT_COOLDOWN_MS),
  SHUTDOWN_TIMEOUT_MS: withDefault(int(1_000, 3_600_000), DEFAULTS.SHUTDOWN_TIMEOUT_MS),
  HTTP_PORT: withDefault(int(0, 65_535), DEFAULTS.HTTP_PORT),
  HTTP_HOST: withDefault(text, DEFAULTS.HTTP_HOST),
  LOG_LEVEL: withDefault(oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const), DEFAULTS.LOG_LEVEL),
  LAG_POLL_INTERVAL_MS: withDefault(int(100, 3_600_000), DEFAULTS.LAG_POLL_INTERVAL_MS),
  // No table default: "unset" must stay distinguishable from "false" for the implied-SSL rule.
  KAFKA_SSL: optional(bool),
  KAFKA_SSL_CA_FILE: optional(pemFile),
  KAFKA_SSL_CERT_FILE: optional(pemFile),
  KAFKA_SSL_KEY_FILE: optional(pemFile),
  KAFKA_SSL_REJECT_UNAUTHORIZED: withDefault(bool, DEFAULTS.KAFKA_SSL_REJECT_UNAUTHORIZED),
  KAFKA_SASL_MECHANISM: optional(oneOf(['plain', 'scram-sha-256', 'scram-sha-512'] as const)),
  KAFKA_SASL_USERNAME: optional(text),
  KAFKA_SASL_PASSWORD: optional(text, true),
  SCHEMA_REGISTRY_USERNAME: optional(text),
  SCHEMA_REGISTRY_PASSWORD: optional(text, true),
  SCHEMA_REGISTRY_CA_FILE: optional(pemFile),
  // Ids are the 4-byte signed int of the Confluent wire format; registries start them at 1.
  OUTPUT_SCHEMA_ID: optional(int(1, MAX_INT32)),
  PIPELINE_THREADS: withDefault(intOrAuto(1, 64, availableParallelism), DEFAULTS.PIPELINE_THREADS),
  HEAP_GROWING_PERCENT: withDefault(int(0, 1_000), DEFAULTS.HEAP_GROWING_PERCENT),
  INFER_HTTP: withDefault(bool, DEFAULTS.INFER_HTTP),
  INFER_HTTP_MAX_QUEUED_ROWS: withDefault(int(1, 10_000_000), DEFAULTS.INFER_HTTP_MAX_QUEUED_ROWS),
  INFER_HTTP_TIMEOUT_MS: withDefault(int(1, 600_000), DEFAULTS.INFER_HTTP_TIMEOUT_MS),
  INFER_HTTP_MAX_BODY_BYTES: withDefault(int(1_024, 1_073_741_824), DEFAULTS.INFER_HTTP_MAX_BODY_BYTES),
};
type Key = keyof typeof SCHEMA;
type ValueOf<E> = E extends Entry<infer T, infer K> ? (K extends 'optional' ? T | undefined : T) : never;
type Values = { [K in Key]: ValueOf<(typeof SCHEMA)[K]> };

/** Every variable the scorer reads, CONFIG_FILE included. */
export const CONFIG_KEYS: readonly string[] = Object.freeze([...Object.keys(SCHEMA), 'CONFIG_FILE']);

const isKey = (k: string): k is Key => Object.hasOwn(SCHEMA, k);

/** The CONFIG_FILE layer as raw strings, or problems. Never echoes file contents (secrets live there). */
function readConfigFile(path: string, io: Io, problems: string[]): Partial<Record<Key, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(io.readFile(path));
  } catch (err) {
    // JSON.parse messages quote the input: report only that it failed.
    const why = err instanceof SyntaxError ? 'invalid JSON' : `unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    problems.push(`CONFIG_FILE: expected a readable JSON object file, got ${quote(path)}: ${why}`);
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`CONFIG_FILE: expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
    return {};
  }
  const out: Partial<Record<Key, string>> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!isKey(k)) problems.push(`CONFIG_FILE: expected only known keys, got ${quote(k)}`);
    else if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = String(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v.join(',');
    else problems.push(`CONFIG_FILE: ${k}: expected a string, number or boolean, got ${v === null ? 'null' : typeof v}`);
  }
  return out;
}

type Rule = (v: Partial<Values>, raw: Partial<Record<Key, string>>) => string[];
const set = (raw: Partial<Record<Key, string>>, ...keys: Key[]): boolean => keys.some((k) => raw[k] !== undefined);
// For a cross-field message: the text given, or the default when it was not given.
const givenOrDefault = (raw: Partial<Record<Key, string>>, k: Key, v: unknown): string => (raw[k] === undefined ? `${String(v)} (the default)` : quote(raw[k]));
const SSL_FILES: Key[] = ['KAFKA_SSL_CA_FILE', 'KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE'];

const RULES: Rule[] = [
  (_, raw) => {
    const [file, repo] = [set(raw, 'MODEL_PATH'), set(raw, 'MODEL_REPOSITORY')];
    if (file && repo) return [`MODEL_REPOSITORY: expected MODEL_PATH or MODEL_REPOSITORY, not both, got both (MODEL_PATH ${quote(raw.MODEL_PATH ?? '')})`];
    if (!file && !repo) return [`MODEL_PATH: expected ${SCHEMA.MODEL_PATH.expected} (or MODEL_REPOSITORY: ${SCHEMA.MODEL_REPOSITORY.expected} of model versions), got nothing (required)`];
    return set(raw, 'MODEL_DEPLOYMENT') && !repo ? [`MODEL_DEPLOYMENT: expected MODEL_REPOSITORY to be set (a deployment names versions of a repository), got MODEL_PATH`] : [];
  },
  (v) => {
    const pairs = [['INPUT_TOPIC', 'OUTPUT_TOPIC'], ['INPUT_TOPIC', 'DLQ_TOPIC'], ['OUTPUT_TOPIC', 'DLQ_TOPIC']] as const;
    return pairs.filter(([a, b]) => v[a] !== undefined && v[a] === v[b]).map(([a, b]) => `${b}: expected a topic other than ${a}'s, got ${quote(v[b] ?? '')}`);
  },
  // kafkajs and the broker both assume about three heartbeats fit in one session timeout.
  ({ KAFKA_HEARTBEAT_INTERVAL_MS: hb, KAFKA_SESSION_TIMEOUT_MS: st }, raw) =>
    hb !== undefined && st !== undefined && hb * 3 >= st ? [`KAFKA_HEARTBEAT_INTERVAL_MS: expected less than a third of KAFKA_SESSION_TIMEOUT_MS (${st}), got ${givenOrDefault(raw, 'KAFKA_HEARTBEAT_INTERVAL_MS', hb)}`] : [],
  // Resuming at or above the pause threshold would pause and resume on every fetch.
  ({ RESUME_IN_FLIGHT_ROWS: resume, MAX_IN_FLIGHT_ROWS: max }, raw) =>
    resume !== undefined && max !== undefined && resume >= max ? [`RESUME_IN_FLIGHT_ROWS: expected less than MAX_IN_FLIGHT_ROWS (${max}), got ${givenOrDefault(raw, 'RESUME_IN_FLIGHT_ROWS', resume)}`] : [],
  (_, raw) => {
    if (set(raw, 'KAFKA_SSL_CERT_FILE') === set(raw, 'KAFKA_SSL_KEY_FILE')) return [];
    const [missing, other] = set(raw, 'KAFKA_SSL_CERT_FILE') ? ['KAFKA_SSL_KEY_FILE', 'KAFKA_SSL_CERT_FILE'] : ['KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE'];
    return [`${missing}: expected a file when ${other} is set, got nothing`];
  },
  ({ KAFKA_SSL: ssl }, raw) => (ssl === false && set(raw, ...SSL_FILES) ? [`KAFKA_SSL: expected true or unset when a KAFKA_SSL_*_FILE is set, got ${quote(raw.KAFKA_SSL ?? '')}`] : []),
  (_, raw) => {
    if (set(raw, 'KAFKA_SASL_MECHANISM')) {
      return (['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'] as const).filter((k) => !set(raw, k)).map((k) => `${k}: expected a non-empty string when KAFKA_SASL_MECHANISM is set, got nothing`);
    }
    // Credentials without a mechanism would silently connect unauthenticated.
    return set(raw, 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD') ? [`KAFKA_SASL_MECHANISM: expected ${SCHEMA.KAFKA_SASL_MECHANISM.expected} when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set, got nothing`] : [];
  },
  // The OIP endpoint shares one pipeline's batcher and workers; with several pipelines there is no
  // one pipeline to send requests to (README "Open Inference Protocol endpoint").
  ({ INFER_HTTP: oip, PIPELINE_THREADS: threads }, raw) =>
    oip === true && threads !== undefined && threads > 1 ? [`INFER_HTTP: expected false when PIPELINE_THREADS is above 1 (it is ${threads}: serve OIP from a PIPELINE_THREADS=1 deployment), got ${quote(raw.INFER_HTTP ?? '')}`] : [],
  (_, raw) => {
    const [user, pass] = [set(raw, 'SCHEMA_REGISTRY_USERNAME'), set(raw, 'SCHEMA_REGISTRY_PASSWORD')];
    if (user === pass) return [];
    const [missing, other] = user ? ['SCHEMA_REGISTRY_PASSWORD', 'SCHEMA_REGISTRY_USERNAME'] : ['SCHEMA_REGISTRY_USERNAME', 'SCHEMA_REGISTRY_PASSWORD'];
    return [`${missing}: expected a non-empty string when ${other} is set, got nothing`];
  },
];

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false; // missing or not permitted: either way, not a file we can use
  }
};

const isDirectory = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** Reads, validates and types the configuration; throws one CONFIG_INVALID listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  const io: Io = {
    readFile: options.readFile ?? ((p) => readFileSync(p, 'utf8')),
    isFile: options.isFile ?? isFile,
    isDirectory: options.isDirectory ?? isDirectory,
  };
  const problems: string[] = [];
  const raw: Partial<Record<Key, string>> = env.CONFIG_FILE === undefined ? {} : readConfigFile(env.CONFIG_FILE, io, problems);
  for (const k of Object.keys(SCHEMA) as Key[]) if (env[k] !== undefined) raw[k] = env[k];

  const values: Partial<Record<Key, unknown>> = {};
  for (const k of Object.keys(SCHEMA) as Key[]) {
    const entry: Entry<unknown, 'required' | 'default' | 'optional'> = SCHEMA[k];
    const given = raw[k];
    if (given === undefined) {
      if (entry.kind === 'required' && options.notRequired?.includes(k) !== true) problems.push(`${k}: expected ${entry.expected}, got nothing (required)`);
      values[k] = entry.fallback;
      continue;
    }
    values[k] = entry.parse(given, io);
    if (values[k] === undefined) problems.push(`${k}: expected ${entry.expected}, got ${entry.secret === true ? REDACTED : quote(given)}`);
  }
  for (const rule of RULES) problems.push(...rule(values as Partial<Values>, raw));
  const tracing = readTracingConfig(env, problems);
  if (problems.length > 0) {
    throw new ScorerError('CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.join('\n')}`);
  }
  return { ...build(values as Values), tracing };
}

function build(v: Values): Omit<Config, 'tracing'> {
  const sasl = v.KAFKA_SASL_MECHANISM !== undefined && v.KAFKA_SASL_USERNAME !== undefined && v.KAFKA_SASL_PASSWORD !== undefined
    ? { mechanism: v.KAFKA_SASL_MECHANISM, username: v.KAFKA_SASL_USERNAME, password: v.KAFKA_SASL_PASSWORD }
    : undefined;
  const auth = v.SCHEMA_REGISTRY_USERNAME !== undefined && v.SCHEMA_REGISTRY_PASSWORD !== undefined
    ? { username: v.SCHEMA_REGISTRY_USERNAME, password: v.SCHEMA_REGISTRY_PASSWORD }
    : undefined;
  const anySslFile = v.KAFKA_SSL_CA_FILE !== undefined || v.KAFKA_SSL_CERT_FILE !== undefined || v.KAFKA_SSL_KEY_FILE !== undefined;
  return {
    kafka: {
      brokers: v.KAFKA_BROKERS,
      clientId: v.KAFKA_CLIENT_ID,
      groupId: v.GROUP_ID,
      transactionalIdPrefix: v.TRANSACTIONAL_ID_PREFIX,
      sessionTimeoutMs: v.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatIntervalMs: v.KAFKA_HEARTBEAT_INTERVAL_MS,
      transactionTimeoutMs: v.KAFKA_TRANSACTION_TIMEOUT_MS ?? (v.EOS_MODE === 'v2' ? FIXED.EOS_V2_TRANSACTION_TIMEOUT_MS : DEFAULTS.KAFKA_TRANSACTION_TIMEOUT_MS),
      eos: { mode: v.EOS_MODE, instanceId: v.EOS_INSTANCE_ID ?? `${hostname()}-${process.pid}`, producers: FIXED.EOS_V2_PRODUCERS, parallelRecords: FIXED.EOS_V2_PARALLEL_RECORDS },
      partitionsConsumedConcurrently: v.PARTITIONS_CONSUMED_CONCURRENTLY,
      chunkMaxRecords: FIXED.CHUNK_MAX_RECORDS,
      partitionRetry: { ...FIXED.PARTITION_RETRY },
      producerRetry: { ...FIXED.PRODUCER_RETRY },
      fetch: { maxBytesPerPartition: v.FETCH_MAX_BYTES_PER_PARTITION, maxBytes: v.FETCH_MAX_BYTES, minBytes: v.FETCH_MIN_BYTES, maxWaitTimeMs: v.FETCH_MAX_WAIT_MS },
      ssl: {
        enabled: v.KAFKA_SSL ?? (anySslFile || DEFAULTS.KAFKA_SSL),
        rejectUnauthorized: v.KAFKA_SSL_REJECT_UNAUTHORIZED,
        ...(v.KAFKA_SSL_CA_FILE && { ca: v.KAFKA_SSL_CA_FILE }),
        ...(v.KAFKA_SSL_CERT_FILE && { cert: v.KAFKA_SSL_CERT_FILE }),
        ...(v.KAFKA_SSL_KEY_FILE && { key: v.KAFKA_SSL_KEY_FILE }),
      },
      ...(sasl && { sasl }),
    },
    topics: { input: v.INPUT_TOPIC, output: v.OUTPUT_TOPIC, dlq: v.DLQ_TOPIC, dlqMaxMessageBytes: v.DLQ_MAX_MESSAGE_BYTES, partitions: v.TOPIC_PARTITIONS, replicationFactor: v.TOPIC_REPLICATION_FACTOR },
    registry: { url: v.SCHEMA_REGISTRY_URL, timeoutMs: FIXED.REGISTRY_TIMEOUT_MS, ...(auth && { auth }), ...(v.SCHEMA_REGISTRY_CA_FILE && { ca: v.SCHEMA_REGISTRY_CA_FILE }), ...(v.OUTPUT_SCHEMA_ID !== undefined && { outputSchemaId: v.OUTPUT_SCHEMA_ID }) },
    model: v.MODEL_REPOSITORY !== undefined
      ? { kind: 'repository', repository: v.MODEL_REPOSITORY, ...(v.MODEL_DEPLOYMENT !== undefined && { deployment: v.MODEL_DEPLOYMENT }) }
      : { kind: 'file', path: v.MODEL_PATH as string },
    batch: { maxSize: v.BATCH_MAX_SIZE, maxDelayMs: v.BATCH_MAX_DELAY_MS, idleDispatch: v.BATCH_IDLE_DISPATCH },
    infer: { mode: v.INFER_MODE, workers: v.INFER_WORKERS, intraOpThreads: v.INFER_INTRA_OP_THREADS, graphOptimization: v.INFER_GRAPH_OPTIMIZATION, spinning: v.INFER_SPINNING, closeTimeoutMs: FIXED.INFERENCE_CLOSE_MS },
    backpressure: { maxInFlightRows: v.MAX_IN_FLIGHT_ROWS, resumeInFlightRows: v.RESUME_IN_FLIGHT_ROWS },
    circuit: { failureThreshold: v.CIRCUIT_FAILURE_THRESHOLD, cooldownMs: v.CIRCUIT_COOLDOWN_MS },
    http: { port: v.HTTP_PORT, host: v.HTTP_HOST },
    inferHttp: { enabled: v.INFER_HTTP, maxQueuedRows: v.INFER_HTTP_MAX_QUEUED_ROWS, timeoutMs: v.INFER_HTTP_TIMEOUT_MS, maxBodyBytes: v.INFER_HTTP_MAX_BODY_BYTES },
    pipelineThreads: v.PIPELINE_THREADS,
    heapGrowingPercent: v.HEAP_GROWING_PERCENT,
    logLevel: v.LOG_LEVEL,
    lagPollIntervalMs: v.LAG_POLL_INTERVAL_MS,
    shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
    crashStopMs: FIXED.CRASH_STOP_MS,
  };
}
