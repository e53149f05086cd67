/**
 * The scorer end to end against the real broker and registry: scores equal onnxruntime's,
 * bad records become dead letters with their original bytes, evolved writers are scored.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { RegistryRest } from '../../src/kafka/registry.js';
import { describe, expect, inject, it } from 'vitest';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { loadModel } from '../../src/model/manifest.js';
import { EXPECTED_CODE, EventFactory, type OutMessage, POISON_KINDS, ROOT } from '../../scripts/lib/feature-events.js';
import { createTopics, drainTopic, produce, randomName, waitForCommittedToEnd } from '../helpers/kafka.js';
import { decodeScored, referenceScores } from '../helpers/scored.js';
import { startTestScorer } from '../helpers/scorer.js';

const model = loadModel(resolve(ROOT, 'models/churn.onnx'));

function topicsFor(name: string) {
  return { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
}


describe('scoring pipeline', () => {
  it('scores every event of 6 partitions exactly as onnxruntime does, keys kept, one output per input', async () => {
    const t = topicsFor('scores');
    await createTopics([
      { topic: t.input, numPartitions: 6 },
      { topic: t.output, numPartitions: 6 },
      { topic: t.dlq, numPartitions: 1 },
    ]);
    const registry = new RegistryRest({ url: inject('schemaRegistryUrl') });
    const factory = await EventFactory.create(registry, t.input, { seed: 7, variants: false });
    const inputs = Array.from({ length: 3000 }, (_, i) => factory.good(i));
    await produce(t.input, inputs);

    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, BATCH_MAX_SIZE: '256' });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);

    const outputs = await drainTopic(t.output);
    expect(await drainTopic(t.dlq)).toHaveLength(0);
    expect(outputs).toHaveLength(inputs.length);
    const byKey = new Map(inputs.map((m) => [m.key, m]));
    const keys = outputs.map((m) => m.key?.toString() as string);
    expect(new Set(keys).size).toBe(inputs.length);
    expect(keys.every((k) => byKey.has(k))).toBe(true);

    const expected = await referenceScores(model, keys.map((k) => factory.featureRow((byKey.get(k) as OutMessage).value, model.manifest.features)));
    outputs.forEach((m, i) => {
      const scored = decodeScored(m.value);
      expect(scored.entity_id).toBe(keys[i]);
      expect(scored.source.topic).toBe(t.input);
      expect(scored.model).toEqual({ name: 'churn', version: model.manifest.version });
      expect(scored.score).toBeCloseTo(expected[i] as number, 5);
      expect(scored.scores.churn).toBe(scored.score);
      expect((scored.scores.stay as number) + scored.score).toBeCloseTo(1, 5);
      expect(scored.label).toBe(scored.score >= 0.5 ? 'churn' : 'stay');
    });
    // source offsets are exactly the input offsets, each once per partition
    const perPartition = new Map<number, number[]>();
    for (const m of outputs) {
      const s = decodeScored(m.value);
      perPartition.set(s.source.partition, [...(perPartition.get(s.source.partition) ?? []), s.source.offset]);
    }
    expect([...perPartition.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (const offsets of perPartition.values()) expect(offsets.sort((a, b) => a - b)).toEqual(offsets.map((_, i) => i));
    expect(await scorer.registry.getSingleMetricAsString('scorer_records_scored_total')).toContain(`} ${inputs.length}`);
  });

  it('dead-letters every kind of bad record with its code and original bytes, scores the good ones around them, and evolved writers too', async () => {
    const t = topicsFor('poison');
    await createTopics([
      { topic: t.input, numPartitions: 2 },
      { topic: t.output, numPartitions: 2 },
      { topic: t.dlq, numPartitions: 2 },
    ]);
    const registry = new RegistryRest({ url: inject('schemaRegistryUrl') });
    const factory = await EventFactory.create(registry, t.input, { seed: 11 });
    const inputs: { msg: OutMessage; kind: string; partition: number; headers?: Record<string, string> }[] = [];
    let i = 0;
    for (let round = 0; round < 3; round++) {
      for (const kind of POISON_KINDS) {
        for (let g = 0; g < 5; g++) inputs.push({ msg: factory.good(i++), kind: 'good', partition: i % 2 });
        inputs.push({ msg: factory.poison(kind, i++), kind, partition: i % 2, headers: { 'trace-id': `t-${i}` } });
        inputs.push({ msg: factory.evolved(i++), kind: 'evolved', partition: i % 2 });
      }
    }
    await produce(
      t.input,
      inputs.map((x) => ({ ...x.msg, partition: x.partition, ...(x.headers ? { headers: x.headers } : {}) }) as OutMessage),
    );

    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);

    const outputs = await drainTopic(t.output);
    const dead = await drainTopic(t.dlq);
    const bad = inputs.filter((x) => x.kind !== 'good' && x.kind !== 'evolved');
    expect(dead).toHaveLength(bad.length);
    expect(outputs).toHaveLength(inputs.length - bad.length);

    const inputByKey = new Map(inputs.map((x) => [x.msg.key, x]));
    for (const d of dead) {
      const src = inputByKey.get(d.key?.toString() as string);
      expect(src, `dead letter with unknown key ${d.key?.toString()}`).toBeDefined();
      if (src === undefined) continue;
      const header = (name: string) => d.headers?.[name]?.toString();
      expect({ kind: src.kind, code: header(DLQ_HEADERS.errorCode) }).toEqual({ kind: src.kind, code: EXPECTED_CODE[src.kind as keyof typeof EXPECTED_CODE] });
      expect(Buffer.compare(d.value as Buffer, src.msg.value)).toBe(0); // original bytes, untouched
      expect(header('trace-id')).toBe(src.headers?.['trace-id']); // original headers kept
      expect(header(DLQ_HEADERS.sourceTopic)).toBe(t.input);
      expect(Number(header(DLQ_HEADERS.sourcePartition))).toBe(src.partition);
      expect(header(DLQ_HEADERS.sourceOffset)).toMatch(/^\d+$/);
      expect(header(DLQ_HEADERS.modelName)).toBe('churn');
      expect(header(DLQ_HEADERS.errorMessage)?.length).toBeGreaterThan(5);
    }
    // Evolved (compatible) writers are scored, with the reader's default for the dropped field.
    const evolved = outputs.filter((o) => inputByKey.get(o.key?.toString() as string)?.kind === 'evolved');
    expect(evolved).toHaveLength(inputs.filter((x) => x.kind === 'evolved').length);
    for (const o of evolved) expect(decodeScored(o.value).score).toBeGreaterThanOrEqual(0);
    const metrics = await scorer.registry.getSingleMetricAsString('scorer_records_dead_lettered_total');
    expect(metrics).toContain('code="INVALID_FEATURE"} 12');
    expect(metrics).toContain('code="INCOMPATIBLE_SCHEMA"} 6');

    // npm run replay-dlq puts chosen dead letters back, byte for byte, without the dlq.* headers.
    const replayTopic = randomName('poison-replay');
    await createTopics([{ topic: replayTopic, numPartitions: 1 }]);
    const replay = spawnSync(process.execPath, ['--import', 'tsx', resolve(ROOT, 'scripts/replay-dlq.ts'), '--from', t.dlq, '--to', replayTopic, '--code', 'INVALID_FEATURE,UNKNOWN_SCHEMA_ID'], {
      cwd: ROOT,
      env: { ...process.env, KAFKA_BROKERS: inject('kafkaBrokers') },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(replay.status, replay.stderr).toBe(0);
    const wanted = dead.filter((d) => ['INVALID_FEATURE', 'UNKNOWN_SCHEMA_ID'].includes(d.headers?.[DLQ_HEADERS.errorCode]?.toString() ?? ''));
    expect(replay.stdout).toContain(`replayed ${wanted.length} dead letters`);
    const replayed = await drainTopic(replayTopic);
    expect(replayed.map((m) => m.key?.toString()).sort()).toEqual(wanted.map((d) => d.key?.toString()).sort());
    for (const m of replayed) {
      const src = inputByKey.get(m.key?.toString() as string);
      expect(Buffer.compare(m.value as Buffer, src?.msg.value as Buffer)).toBe(0);
      expect(Object.keys(m.headers ?? {}).filter((h) => h.startsWith('dlq.'))).toEqual([]);
      expect(m.headers?.['trace-id']?.toString()).toBe(src?.headers?.['trace-id']);
    }
  });

  it('commits a chunk whose outputs all go to one partition and exceed the broker message limit (sliced sends, one transaction)', async () => {
    // Long topic names (repeated in every scored event) and one key: 6,000 scored events of
    // ~250 bytes in one output partition, over the broker's 1 MiB max message size.
    const pad = 'x'.repeat(60);
    const t = { input: randomName(`big-in-${pad}`), output: randomName(`big-out-${pad}`), dlq: randomName(`big-dlq-${pad}`), group: randomName('big-group') };
    await createTopics([
      { topic: t.input, numPartitions: 1 },
      { topic: t.output, numPartitions: 3 },
      { topic: t.dlq, numPartitions: 1 },
    ]);
    const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 13, variants: false });
    const inputs = Array.from({ length: 6_000 }, (_, i) => ({ ...factory.good(i), key: 'one-customer' }));
    await produce(t.input, inputs);
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group });
    await waitForCommittedToEnd(t.group, t.input, 60_000);
    await scorer.stop(20_000);
    const outputs = await drainTopic(t.output);
    expect(outputs).toHaveLength(inputs.length);
    expect(new Set(outputs.map((m) => decodeScored(m.value).source.offset)).size).toBe(inputs.length);
    expect(new Set(outputs.map((m) => m.partition)).size).toBe(1);
  });
});
