/**
 * `kafka-onnx-scorer backfill --from … --to … --output-topic T [--dlq-topic D] [--group G] [--version V]`:
 * wires a backfill from the stream's parts (serve/backfill/), runs it to the end of its range,
 * prints a JSON summary. Same environment as the stream (OUTPUT_TOPIC and DLQ_TOPIC come from
 * the flags); its own group and transactional ids, so it runs beside the live scorer untouched.
 */
import { SCORER_VERSION } from '../version.js';
import { EXIT } from '../main.js';
import { createGroupConsumer, createKafka, createRegistryRest, createSchemaRegistry } from '../kafka/clients.js';
import { prepareOutputSchema } from '../kafka/registry.js';
import { ensureTopics } from '../kafka/topics.js';
import { stageLogger } from '../ops/logger.js';
import { createMetrics } from '../ops/metrics.js';
import { Registry } from 'prom-client';
import { ChunkProcessor } from '../stages/chunk.js';
import { versionStages } from '../stages/version-stages.js';
import { PartitionProducers } from '../stages/produce.js';
import { topic as topicName } from '../config/parsers.js';
import { ScorerError } from '../errors.js';
import { UsageError, parse, printSummary, runJob } from './command.js';
import { engineModels, readSchema, startEngine } from './engine.js';
import { chooseModel } from './model-choice.js';
import { Progress } from './progress.js';
import { BackfillRun, planCommitter } from './backfill/backfill.js';
import { type Bound, type PartitionRange, checkRange, defaultGroupId, encodePlan, parseBound, resolvePlan, storedPlan } from './backfill/plan.js';

export const BACKFILL_USAGE = `usage: kafka-onnx-scorer backfill --from <ISO time | earliest | partition:offset,…>
                                  --to <ISO time | now | partition:offset,…>
                                  --output-topic <topic> [--dlq-topic <topic>] [--group <id>] [--version <v>]

Re-scores the records of INPUT_TOPIC in [--from, --to) into --output-topic, exactly once, with
dead letters to --dlq-topic (default DLQ_TOPIC), then stops. Times are looked up per partition
(the first offset at or after the time); 'now' is the end when it first starts. Its own consumer
group (default <GROUP_ID>-backfill-<hash of the arguments>) and transactional ids: running the
same command again resumes where it stopped and never writes a record twice.
Exit: 0 the range is done, 1 failed or interrupted (run it again to resume), 2 bad arguments or configuration.
`;

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  'output-topic': { type: 'string' },
  'dlq-topic': { type: 'string' },
  group: { type: 'string' },
  version: { type: 'string' },
} as const;

export async function backfillCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(BACKFILL_USAGE);
    return EXIT.ok;
  }
  let flags: Record<string, string | undefined> = {};
  let from: Bound = { kind: 'earliest' };
  let to: Bound = { kind: 'now' };
  const prepare = () => {
    flags = parse(args, OPTIONS, 0).values as Record<string, string | undefined>;
    for (const f of ['from', 'to', 'output-topic'] as const) if (flags[f] === undefined) throw new UsageError(`--${f} is required`);
    from = parseBound(flags.from as string, '--from');
    to = parseBound(flags.to as string, '--to');
    checkRange(from, to);
    for (const f of ['output-topic', 'dlq-topic'] as const) {
      const v = flags[f];
      if (v !== undefined && topicName.parse(v, { readFile: () => '', isFile: () => false, isDirectory: () => false }) === undefined) throw new UsageError(`--${f}: expected ${topicName.expected}, got '${v}'`);
    }
    return { OUTPUT_TOPIC: flags['output-topic'] as string, ...(flags['dlq-topic'] !== undefined && { DLQ_TOPIC: flags['dlq-topic'] }) };
  };

  return runJob('backfill', BACKFILL_USAGE, env, {}, async ({ config, logger }) => {
    const model = chooseModel(config, flags.version);
    const { manifest } = model;
    const input = config.topics.input;
    const output = config.topics.output;
    const group = flags.group ?? defaultGroupId(config.kafka.groupId, { input, output, from: flags.from as string, to: flags.to as string, model: `${manifest.name}@${manifest.version}` });
    const metrics = createMetrics(new Registry());
    const kafka = createKafka(config, stageLogger(logger, 'kafka'));
    const admin = kafka.admin();
    await admin.connect();
    const cleanup: (() => Promise<unknown>)[] = [() => admin.disconnect()];
    try {
      const topics = await admin.listTopics();
      if (!topics.includes(input)) throw new ScorerError('CONFIG_INVALID', `INPUT_TOPIC: topic ${input} does not exist; nothing to backfill`);
      await ensureTopics(admin, config, stageLogger(logger, 'topics'));

      // The plan: what the group already holds (a resumed run), else resolved now for the missing partitions.
      const stored = await storedPlan(admin, group, input);
      const resolved = await resolvePlan(admin, input, from, to);
      const plan: PartitionRange[] = resolved.map((r) => stored.get(r.partition) ?? r);
      const resumed = stored.size > 0;
      const committed = new Map([...stored].map(([p, s]) => [p, s.next]));
      logger.info({ group, input, output, resumed, plan: plan.map((r) => ({ partition: r.partition, from: String(r.from), to: String(r.to) })) }, resumed ? 'resuming backfill' : 'backfill planned');

      const engine = await startEngine({ config, model, metrics, logger });
      cleanup.unshift(() => engine.scorer.close(config.infer.closeTimeoutMs));
      const schemaRegistry = createSchemaRegistry(config);
      const outputSchema = readSchema('schemas/scored-event.avsc', 'output');
      // The id configured for OUTPUT_TOPIC applies only when the backfill writes there too.
      const configuredId = output === config.topics.output ? config.registry.outputSchemaId : undefined;
      const { schemaId } = await prepareOutputSchema(createRegistryRest(config), { outputTopic: output, schema: outputSchema, logger, ...(configuredId !== undefined && { schemaId: configuredId }) });

      const producers = new PartitionProducers({
        kafka,
        admin,
        groupId: group,
        inputTopic: input,
        transactionalIdPrefix: config.kafka.transactionalIdPrefix,
        transactionTimeoutMs: config.kafka.transactionTimeoutMs,
        retry: config.kafka.producerRetry,
        logger: stageLogger(logger, 'produce'),
        onTransaction: () => undefined,
      });
      cleanup.unshift(() => producers.releaseAll());
      // First run: write each partition's range into the group with its start offset (an empty
      // transaction), so the consumer starts there and a re-run finds the same plan.
      for (const r of plan.filter((p) => !stored.has(p.partition))) {
        await producers.acquire(r.partition);
        await producers.commit({ partition: r.partition, outputs: [], nextOffset: r.from, metadata: encodePlan(r) });
      }
      const processor = new ChunkProcessor({
        models: engineModels(engine),
        stages: versionStages({ registry: schemaRegistry, registryTimeoutMs: config.registry.timeoutMs, outputSchema, outputSchemaId: schemaId, scorerVersion: SCORER_VERSION, deadLetterMaxBytes: config.topics.dlqMaxMessageBytes }),
        committer: planCommitter(producers, plan),
        outputTopic: output,
        dlqTopic: config.topics.dlq,
        logger: stageLogger(logger, 'pipeline'),
        now: Date.now,
      });
      const consumer = createGroupConsumer(kafka, { ...config, kafka: { ...config.kafka, groupId: group } });
      const progress = new Progress({ job: 'backfill', out: process.stderr });
      const run = new BackfillRun({ config, topic: input, plan, committed, consumer, producers, processor, circuit: engine.circuit, metrics, logger: stageLogger(logger, 'backfill'), onProgress: (p) => progress.update({ done: p.done, total: p.total, bad: p.deadLettered }) });
      cleanup.unshift(() => run.stop());
      const startedAt = Date.now();
      progress.update({ done: run.done(), total: run.total, bad: 0 });
      progress.start();
      let interrupted = false;
      const stopOnSignal = new Promise<void>((resolve) => {
        const onSignal = () => ((interrupted = true), resolve());
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      await run.start();
      await Promise.race([run.finished, stopOnSignal, run.crashed.then((err) => Promise.reject(err))]);
      progress.stop();
      const seconds = (Date.now() - startedAt) / 1000;
      const { scored, deadLettered } = run.totals;
      const dead = Object.values(deadLettered).reduce((a, b) => a + (b ?? 0), 0);
      printSummary({
        backfill: interrupted ? 'interrupted' : 'done',
        group,
        input,
        output,
        dlq: config.topics.dlq,
        model: { name: manifest.name, version: manifest.version },
        resumed,
        partitions: plan.map((r) => ({ partition: r.partition, from: Number(r.from), to: Number(r.to) })),
        offsets: run.total,
        scored,
        deadLettered,
        seconds,
        recordsPerSecond: Math.round((scored + dead) / Math.max(seconds, 1e-3)),
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
      });
      return interrupted ? EXIT.crash : EXIT.ok;
    } finally {
      for (const step of cleanup) await step().catch((err: unknown) => logger.warn({ err }, 'backfill cleanup step failed'));
    }
  }, prepare);
}
