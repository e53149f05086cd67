/**
 * Load generator: writes reference feature events (unique keys) to the input topic, optionally
 * mixed with a share of bad records of every kind the scorer must survive.
 *
 *   npm run produce -- --count 100000 --rate 20000 --poison 0.01 [--model churn|mlp] [--topic features]
 *                      [--recycle 16384]  (that many events built once and sent again, event_time
 *                                          stamped at each send: a cheaper generator, keys repeat)
 *                      [--event-time send|schedule]  (event_time = the clock at the send, or the
 *                                          send's time on the rate schedule: lateness counts)
 *
 * Brokers and registry come from KAFKA_BROKERS / SCHEMA_REGISTRY_URL, else from .stack/env.
 * --rate 0 means as fast as possible. Creates the topic (TOPIC_PARTITIONS, default 6) if missing.
 * Exit codes: 0 done, 1 the broker or registry unreachable or refusing (one line saying which and
 * why), 2 invalid arguments.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import '../src/kafka/kafkajs-fix.js'; // before kafkajs: see the module
import { CompressionTypes, Kafka, Partitioners, logLevel } from 'kafkajs';
import { ScorerError } from '../src/errors.js';
import { RegistryRest } from '../src/kafka/registry.js';
import { numberOption } from './lib/cli-args.js';
import { EventFactory, type ModelKind, type OutMessage } from './lib/feature-events.js';
import { kafkaSecurity, registryEndpoint, stackEnv } from './lib/stack-env.js';

export interface ProduceOptions {
  brokers: string;
  registryUrl: string;
  topic: string;
  count: number;
  /** events per second; 0 = unthrottled */
  rate: number;
  /** share of bad records, 0..1 */
  poison: number;
  model: ModelKind;
  partitions: number;
  seed?: number;
  onProgress?: (sent: number) => void;
  /**
   * Build this many reference events once and send them again and again, event_time stamped at
   * each send (RecycledEvents in scripts/lib/feature-events.ts): the generator's CPU is then
   * the Kafka client's only. Keys and event ids repeat every `recycle` events. Needs poison 0.
   */
  recycle?: number;
  /**
   * event_time of each event: `send` (default) = the clock when its send is built; `schedule` =
   * when the rate schedule wanted its send (start + events before it / rate), so a generator that
   * falls behind — preempted, or waiting on the broker — counts its lateness in the event's
   * latency instead of leaving it out (coordinated omission). Needs rate > 0.
   */
  eventTime?: 'send' | 'schedule';
  /** TLS/SASL/registry-auth settings by the scorer's names (a STACK_SECURITY=sasl_ssl stack's `.stack/env`). */
  security?: Record<string, string>;
}

export interface ProduceSummary {
  sent: number;
  poison: number;
  poisonByKind: Record<string, number>;
  seconds: number;
}

/** A broker failure as one line naming KAFKA_BROKERS, instead of kafkajs's error chain. */
function kafkaError(brokers: string, err: unknown): unknown {
  // kafkajs errors are named KafkaJS*; the package's CommonJS error classes are not ESM named exports.
  if (!(err instanceof Error) || !err.name.startsWith('KafkaJS')) return err;
  let cause: unknown = err;
  while ((cause as { cause?: unknown }).cause instanceof Error) cause = (cause as { cause: unknown }).cause;
  return new ScorerError('KAFKA_UNAVAILABLE', `Kafka at ${brokers} (KAFKA_BROKERS) failed: ${(cause as Error).message}`, { cause: err });
}

export async function produceEvents(o: ProduceOptions): Promise<ProduceSummary> {
  if (o.eventTime === 'schedule' && !(o.rate > 0)) throw new Error(`produce: event_time by schedule needs a rate above 0, got ${o.rate}`);
  // The registry first: a refused schema leaves no topic behind.
  const registry = new RegistryRest(registryEndpoint(o.registryUrl, o.security ?? {}));
  const factory = await EventFactory.create(registry, o.topic, { model: o.model, seed: o.seed ?? Date.now() % 100000, variants: o.poison > 0 });
  // A broker that is down fails within seconds (kafkajs's default retries take about half a minute).
  const kafka = new Kafka({ clientId: 'kafka-onnx-scorer-loadgen', brokers: o.brokers.split(','), logLevel: logLevel.NOTHING, connectionTimeout: 3_000, retry: { retries: 3 }, ...kafkaSecurity(o.security ?? {}) });
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  try {
    await admin.connect();
    if (!(await admin.listTopics()).includes(o.topic)) {
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: o.topic, numPartitions: o.partitions, replicationFactor: 1 }] });
    }
    await admin.disconnect();
    await producer.connect();
  } catch (err) {
    await admin.disconnect().catch(() => undefined);
    throw kafkaError(o.brokers, err);
  }
  const kinds = factory.poisonKinds;
  const summary: ProduceSummary = { sent: 0, poison: 0, poisonByKind: {}, seconds: 0 };
  const batchSize = o.rate > 0 ? Math.max(1, Math.min(1000, Math.round(o.rate / 20))) : 1000;
  // Every 1/poison-th record is bad, cycling through the kinds, so each kind appears.
  const poisonEvery = o.poison > 0 ? Math.max(1, Math.round(1 / o.poison)) : 0;
  if (o.recycle !== undefined && (poisonEvery > 0 || o.recycle < batchSize)) throw new Error(`produce: recycle needs poison 0 and at least one send's events (${batchSize}), got recycle ${o.recycle}, poison ${o.poison}`);
  const recycled = o.recycle === undefined ? undefined : factory.recycled(o.recycle);
  const started = Date.now();
  const due = (sent: number): number => started + (sent / o.rate) * 1000;
  try {
    while (summary.sent < o.count) {
      const messages: OutMessage[] = [];
      const n = Math.min(batchSize, o.count - summary.sent);
      const eventTime = o.eventTime === 'schedule' ? Math.floor(due(summary.sent)) : undefined;
      for (let j = 0; j < n; j++) {
        const i = summary.sent + j;
        if (poisonEvery > 0 && i % poisonEvery === poisonEvery - 1) {
          const kind = kinds[summary.poison % kinds.length] as (typeof kinds)[number];
          summary.poison += 1;
          summary.poisonByKind[kind] = (summary.poisonByKind[kind] ?? 0) + 1;
          messages.push(factory.poison(kind, i, eventTime));
        } else {
          messages.push(recycled === undefined ? factory.good(i, eventTime) : recycled.next(eventTime ?? Date.now()));
        }
      }
      await producer.send({ topic: o.topic, messages, compression: CompressionTypes.None }).catch((err: unknown) => {
        throw kafkaError(o.brokers, err);
      });
      summary.sent += n;
      o.onProgress?.(summary.sent);
      // Until the next send is due by the wall clock: a timer can fire a little early (libuv's cached loop time).
      if (o.rate > 0) for (let wait = due(summary.sent) - Date.now(); wait > 0; wait = due(summary.sent) - Date.now()) await sleep(wait);
    }
  } finally {
    await producer.disconnect();
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

async function cli(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '10000' },
      rate: { type: 'string', default: '0' },
      poison: { type: 'string', default: '0' },
      model: { type: 'string', default: 'churn' },
      topic: { type: 'string' },
      partitions: { type: 'string', default: process.env.TOPIC_PARTITIONS ?? '6' },
      recycle: { type: 'string' },
      'event-time': { type: 'string', default: 'send' },
    },
  });
  const num = (name: string, raw: string, min: number, max: number): number => {
    try {
      return numberOption(name, raw, min, max);
    } catch (err) {
      console.error(`produce: ${(err as Error).message}`);
      process.exit(2);
    }
  };
  const model = values.model === 'mlp' ? 'mlp' : values.model === 'churn' ? 'churn' : undefined;
  if (model === undefined) {
    console.error(`produce: --model: expected churn or mlp, got '${values.model}'`);
    process.exit(2);
  }
  const env = stackEnv();
  const topic = values.topic ?? process.env.INPUT_TOPIC ?? (model === 'mlp' ? 'wide-features' : 'features');
  const count = num('count', values.count, 1, 1e9);
  const poison = num('poison', values.poison, 0, 1);
  const recycle = values.recycle === undefined ? undefined : num('recycle', values.recycle, 1000, 10_000_000);
  if (recycle !== undefined && poison > 0) {
    console.error('produce: --recycle sends reference events only: it needs --poison 0');
    process.exit(2);
  }
  const eventTime = values['event-time'];
  if (eventTime !== 'send' && eventTime !== 'schedule') {
    console.error(`produce: --event-time: expected send or schedule, got '${eventTime}'`);
    process.exit(2);
  }
  const rate = num('rate', values.rate, 0, 1e7);
  if (eventTime === 'schedule' && rate === 0) {
    console.error("produce: --event-time schedule stamps each send with its time on the rate schedule: it needs --rate above 0");
    process.exit(2);
  }
  let progressed = false;
  const summary = await produceEvents({
    brokers: env.KAFKA_BROKERS,
    registryUrl: env.SCHEMA_REGISTRY_URL,
    security: env.security,
    topic,
    count,
    rate,
    poison,
    eventTime,
    model,
    partitions: num('partitions', values.partitions, 1, 10000),
    ...(recycle !== undefined && { recycle }),
    onProgress: (sent) => {
      if (sent % 10000 < 1000 || sent === count) process.stdout.write(`\rproduced ${sent}/${count}`);
      progressed = true;
    },
  }).catch((err: unknown) => {
    // Unreachable or refusing broker/registry: one line saying which, not a stack trace. Anything else is a bug: let it show its stack.
    if (!(err instanceof ScorerError)) throw err;
    if (progressed) process.stdout.write('\n');
    console.error(`produce: ${err.message}`);
    process.exit(1);
  });
  process.stdout.write('\n');
  console.log(JSON.stringify({ topic, ...summary, eventsPerSecond: Math.round(summary.sent / summary.seconds) }));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await cli();
