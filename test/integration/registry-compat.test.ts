/**
 * The scorer and the load generator against the real registry's compatibility rules: they work
 * at whatever level the output subject has (its own FULL or NONE, or none of its own), they never
 * change the registry's configuration (GET /config/{subject} is byte for byte what it was), an
 * output subject holding an incompatible schema stops the scorer at start with a message naming
 * the subject, its level and what to do, and OUTPUT_SCHEMA_ID replaces registration for
 * read-only credentials.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { RegistryRest } from '../../src/kafka/registry.js';
import { EventFactory, type OutMessage, ROOT } from '../../scripts/lib/feature-events.js';
import { createTopics, drainTopic, randomName, testKafka, waitForCommittedToEnd } from '../helpers/kafka.js';
import { runScorerToExit, startTestScorer } from '../helpers/scorer.js';

const url = inject('schemaRegistryUrl').replace(/\/+$/, '');
const rest = new RegistryRest({ url });
const scoredSchema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as { fields: { name: string }[] };
// An earlier output schema FULL accepts ours after: ours only adds `label`, which has a default.
const withoutLabel = { ...scoredSchema, fields: scoredSchema.fields.filter((f) => f.name !== 'label') };
// A schema nothing of ours can follow under BACKWARD: our reader needs fields it never had.
const legacy = { type: 'record', name: 'ScoredEvent', namespace: 'io.kafkaonnxscorer.v1', fields: [{ name: 'legacy_score', type: 'string' }] };

/** GET /config[/{subject}] exactly as the registry answers it: status and body text. */
async function rawConfig(subject?: string): Promise<string> {
  const res = await fetch(`${url}/config${subject === undefined ? '' : `/${encodeURIComponent(subject)}`}`);
  return `${res.status} ${await res.text()}`;
}

/** The test arranging the registry as a platform team would: a subject's own level. */
async function setLevel(subject: string, compatibility: string): Promise<void> {
  const res = await fetch(`${url}/config/${encodeURIComponent(subject)}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ compatibility }) });
  expect(res.status, `PUT /config/${subject}`).toBe(200);
}

const register = (subject: string, schema: unknown) => rest.post<{ id: number }>(`/subjects/${encodeURIComponent(subject)}/versions`, { schema: JSON.stringify(schema) }).then((r) => r.id);

async function setup(name: string, events: number) {
  const t = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
  await createTopics([
    { topic: t.input, numPartitions: 2 },
    { topic: t.output, numPartitions: 2 },
    { topic: t.dlq, numPartitions: 1 },
  ]);
  return { ...t, outSubject: `${t.output}-value`, inSubject: `${t.input}-value`, events };
}

async function produce(topic: string, messages: OutMessage[]): Promise<void> {
  const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  await producer.send({ topic, messages });
  await producer.disconnect();
}

const schemaIdOf = (value: Buffer | null) => (value as Buffer).readInt32BE(1);

describe('registry compatibility', () => {
  it.each([
    ['its own FULL level, holding an earlier compatible version', 'FULL', withoutLabel],
    ['its own NONE level, holding an unrelated earlier schema', 'NONE', legacy],
  ])('an output subject with %s: the scorer starts, scores, and leaves every configuration as it was', async (_what, level, earlier) => {
    const t = await setup(`compat-${level.toLowerCase()}`, 200);
    // Apicurio keeps NONE as "no rule" and takes it only on an existing subject: register first.
    await register(t.outSubject, earlier);
    await setLevel(t.outSubject, level);
    // The input subject at FORWARD: not the client's BACKWARD either (the load generator used to fail on it).
    await setLevel(t.inSubject, 'FORWARD');
    const before = [await rawConfig(t.outSubject), await rawConfig(t.inSubject), await rawConfig()];

    const factory = await EventFactory.create(rest, t.input, { seed: 21, variants: false });
    const inputs = Array.from({ length: t.events }, (_, i) => factory.good(i));
    await produce(t.input, inputs);
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);

    const outputs = await drainTopic(t.output);
    expect(outputs).toHaveLength(inputs.length);
    const latest = await rest.get<{ id: number; version: number }>(`/subjects/${encodeURIComponent(t.outSubject)}/versions/latest`);
    expect(latest.version).toBe(2); // ours, after the earlier one
    expect(new Set(outputs.map((m) => schemaIdOf(m.value)))).toEqual(new Set([latest.id]));
    expect([await rawConfig(t.outSubject), await rawConfig(t.inSubject), await rawConfig()]).toEqual(before);
  });

  it('an output subject without a level of its own gets none written', async () => {
    const t = await setup('compat-default', 50);
    const global = await rawConfig();
    const factory = await EventFactory.create(rest, t.input, { seed: 22, variants: false });
    await produce(t.input, Array.from({ length: t.events }, (_, i) => factory.good(i)));
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);
    expect(await drainTopic(t.output)).toHaveLength(t.events);
    // Confluent and Karapace: 404 (40408, no subject level). Apicurio: 200 with the global level.
    // A level written by the scorer or the load generator would show as anything else.
    for (const subject of [t.outSubject, t.inSubject]) {
      const after = await rawConfig(subject);
      if (after.startsWith('404 ')) expect(JSON.parse(after.slice(4)).error_code).toBe(40408);
      else expect(after.replace(/^200 /, '')).toBe(global.replace(/^200 /, ''));
    }
    expect(await rawConfig()).toBe(global);
  });

  it('an output subject holding an incompatible schema stops the scorer at start: exit 1, the subject, its level and what to do, no retries, nothing changed (from a pipeline thread: PIPELINE_THREADS=2)', async () => {
    const t = await setup('compat-refused', 0);
    await setLevel(t.outSubject, 'BACKWARD');
    await register(t.outSubject, legacy);
    const before = [await rawConfig(t.outSubject), await rawConfig()];

    // Two pipelines: the refusal happens in a worker thread and must reach the log line and exit code unchanged (src/threads/protocol.ts).
    const run = await runScorerToExit('compat-refused', { INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, PIPELINE_THREADS: '2' });
    expect(run.code, run.log).toBe(1);
    const fatal = run.log.split('\n').filter((l) => l.includes('"level":"fatal"')).map((l) => JSON.parse(l) as { msg: string; code: string });
    expect(fatal).toHaveLength(1);
    expect(fatal[0]?.code).toBe('REGISTRY_REJECTED');
    expect(fatal[0]?.msg).toMatch(new RegExp(`^subject '${t.outSubject}' \\(compatibility BACKWARD\\) refuses the schema as incompatible with its existing versions`));
    expect(fatal[0]?.msg).toContain('OUTPUT_SCHEMA_ID');
    expect(fatal[0]?.msg).toContain('Nothing in the registry was changed');
    expect(run.log).not.toMatch(/retrying/);
    expect([await rawConfig(t.outSubject), await rawConfig()]).toEqual(before);
    const versions = await rest.get<number[]>(`/subjects/${encodeURIComponent(t.outSubject)}/versions`);
    expect(versions).toEqual([1]);
  });

  it('OUTPUT_SCHEMA_ID: the scorer writes with the id the platform team registered, registers nothing, and refuses an id of another schema', async () => {
    const t = await setup('compat-fixed-id', 100);
    // Registered by someone else, under a subject of their choosing.
    const id = await register(`${t.output}-platform-value`, scoredSchema);
    const factory = await EventFactory.create(rest, t.input, { seed: 23, variants: false });
    await produce(t.input, Array.from({ length: t.events }, (_, i) => factory.good(i)));

    await expect(startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, OUTPUT_SCHEMA_ID: String(factory.schemaId) })).rejects.toMatchObject({
      code: 'REGISTRY_REJECTED',
      message: expect.stringMatching(new RegExp(`^OUTPUT_SCHEMA_ID: schema id ${factory.schemaId} is Avro io\\.kafkaonnxscorer\\.v1\\.FeatureEvent .*not the scorer's output schema`)),
    });
    await expect(startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, OUTPUT_SCHEMA_ID: '2147483000' })).rejects.toMatchObject({
      code: 'REGISTRY_REJECTED',
      message: expect.stringMatching(/^OUTPUT_SCHEMA_ID: schema id 2147483000 is not in the schema registry/),
    });

    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, OUTPUT_SCHEMA_ID: String(id) });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);
    const outputs = await drainTopic(t.output);
    expect(outputs).toHaveLength(t.events);
    expect(new Set(outputs.map((m) => schemaIdOf(m.value)))).toEqual(new Set([id]));
    const topicSubject = await fetch(`${url}/subjects/${encodeURIComponent(t.outSubject)}/versions`);
    expect(topicSubject.status).toBe(404);
  });
});
