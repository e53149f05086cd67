/**
 * One engine, four serving patterns: the same events through the stream, a backfill, a file and
 * the Open Inference Protocol endpoint give identical scores and labels. Also the endpoint's
 * contract (400 naming the field, 404, concurrent requests) against a real running scorer.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import avro from 'avsc';
import { describe, expect, inject, it } from 'vitest';
import { EventFactory, ROOT } from '../../scripts/lib/feature-events.js';
import { type FileEvent, writeAvroEvents } from '../../scripts/lib/feature-files.js';
import { loadConfig } from '../../src/config.js';
import { chooseModel } from '../../src/serve/model-choice.js';
import { createLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { readSchema, startEngine } from '../../src/serve/engine.js';
import { scoreFile } from '../../src/serve/score-file.js';
import { tempDir } from '../helpers/fixtures.js';
import { createTopics, drainTopic, randomName, testKafka, waitForCommittedToEnd } from '../helpers/kafka.js';
import { tempRepository } from '../helpers/repository.js';
import { scorerEnv, spawnJob, startTestScorer } from '../helpers/scorer.js';
import { RegistryRest } from '../../src/kafka/registry.js';

const scoredType = avro.Type.forSchema(readSchema('schemas/scored-event.avsc', 'output'));
const featureSchema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/feature-event.avsc'), 'utf8')) as avro.Schema;
interface Scored { event_id: string; score: number; label: string | null }
const scoresOf = (values: (Buffer | null)[]) => new Map(values.map((v) => scoredType.fromBuffer((v as Buffer).subarray(5)) as Scored).map((s) => [s.event_id, { score: s.score, label: s.label }]));

async function infer(port: number, body: unknown, path = '/v2/models/churn/infer'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('serving patterns', () => {
  it('gives identical scores and labels through the stream, a backfill, a file and the OIP endpoint', async () => {
    const t = { input: randomName('serve-in'), output: randomName('serve-out'), dlq: randomName('serve-dlq'), backfill: randomName('serve-bf'), group: randomName('serve-group') };
    await createTopics([{ topic: t.input, numPartitions: 3 }, { topic: t.output, numPartitions: 3 }, { topic: t.dlq }, { topic: t.backfill, numPartitions: 3 }]);
    const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 11, variants: false });
    const events = Array.from({ length: 600 }, (_, i) => factory.event(i, 1_700_000_000_000 + i) as FileEvent);
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: t.input, messages: events.map((e) => ({ key: e.entity_id as string, value: factory.encode('reference', e) })) });
    await producer.disconnect();

    // 1. the stream (with the OIP endpoint on its HTTP port)
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, INFER_HTTP: 'true' });
    await waitForCommittedToEnd(t.group, t.input);
    const stream = scoresOf((await drainTopic(t.output)).map((m) => m.value));
    expect(stream.size).toBe(events.length);

    // 2. the OIP endpoint: the feature events as JSON, in a few requests at once
    const http = new Map<string, { score: number; label: string | null }>();
    await Promise.all(
      Array.from({ length: 6 }, async (_, k) => {
        const slice = events.slice(k * 100, (k + 1) * 100);
        const { status, body } = await infer(scorer.httpPort, slice);
        expect(status).toBe(200);
        const outputs = body.outputs as { name: string; data: unknown[] }[];
        const score = outputs.find((o) => o.name === 'score')?.data as number[];
        const label = outputs.find((o) => o.name === 'label')?.data as string[];
        slice.forEach((e, i) => http.set(e.event_id as string, { score: score[i] as number, label: label[i] as string }));
      }),
    );

    // 3. a backfill of the whole topic into another topic (a child process, as a Job runs it)
    const job = spawnJob('serving-backfill', ['backfill', '--from', 'earliest', '--to', 'now', '--output-topic', t.backfill], { INPUT_TOPIC: t.input, OUTPUT_TOPIC: 'unused', DLQ_TOPIC: t.dlq, GROUP_ID: t.group });
    const done = await job.exited;
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ backfill: 'done', scored: events.length, output: t.backfill });
    const backfill = scoresOf((await drainTopic(t.backfill)).map((m) => m.value));

    // 4. a file: the same events in an Avro object container file
    const dir = tempDir('serving-');
    await writeAvroEvents(join(dir, 'in.avro'), featureSchema, events);
    const config = loadConfig(scorerEnv({ INPUT_TOPIC: 'x', OUTPUT_TOPIC: 'y', DLQ_TOPIC: 'z' }));
    const engine = await startEngine({ config, model: chooseModel(config), metrics: createMetrics(), logger: createLogger('error') });
    const summary = await scoreFile({ input: join(dir, 'in.avro'), output: join(dir, 'out.avro'), engine, outputSchema: readSchema('schemas/scored-event.avsc', 'output') });
    await engine.scorer.close(5_000);
    expect(summary).toMatchObject({ records: events.length, scored: events.length, bad: {} });
    const file = new Map<string, { score: number; label: string | null }>();
    await new Promise<void>((ok, fail) => avro.createFileDecoder(join(dir, 'out.avro')).on('data', (s: Scored) => file.set(s.event_id, { score: s.score, label: s.label })).on('end', ok).on('error', fail));

    for (const e of events) {
      const id = e.event_id as string;
      const expected = stream.get(id);
      expect(expected, id).toBeDefined();
      expect(backfill.get(id), `backfill ${id}`).toEqual(expected);
      expect(file.get(id), `file ${id}`).toEqual(expected);
      expect(http.get(id), `http ${id}`).toEqual(expected);
    }
    const labels = new Set([...stream.values()].map((s) => s.label));
    expect(labels.size).toBe(2); // both labels occur, so equal labels mean something
  });

  it('answers the OIP tensor form, rejects bad input with 400 naming the field, and unknown models with 404', async () => {
    const t = { input: randomName('oip-in'), output: randomName('oip-out'), dlq: randomName('oip-dlq') };
    await createTopics([{ topic: t.input }, { topic: t.output }, { topic: t.dlq }]);
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: randomName('oip-group'), INFER_HTTP: 'true' });
    const port = scorer.httpPort;
    const { manifest } = scorer.model;
    const row = manifest.features.map((_, i) => i % 3);

    const meta = await (await fetch(`http://127.0.0.1:${port}/v2/models/churn`)).json();
    expect(meta).toMatchObject({ name: 'churn', versions: [manifest.version], inputs: [{ name: manifest.input.name, datatype: 'FP32', shape: [-1, manifest.input.width] }] });
    expect((await fetch(`http://127.0.0.1:${port}/v2/health/ready`)).status).toBe(200);

    const tensor = await infer(port, { id: 'r1', inputs: [{ name: manifest.input.name, shape: [2, row.length], datatype: 'FP32', data: [row, row] }] });
    expect(tensor.status).toBe(200);
    expect(tensor.body).toMatchObject({ model_name: 'churn', id: 'r1' });
    const [score] = tensor.body.outputs as { name: string; shape: number[]; data: number[] }[];
    expect(score).toMatchObject({ name: 'score', shape: [2] });
    expect(score?.data[0]).toBe(score?.data[1]);

    const columns = await infer(port, { inputs: manifest.features.map((f, i) => ({ name: f, shape: [1], datatype: 'FP64', data: [row[i]] })) });
    expect((columns.body.outputs as { data: number[] }[])[0]?.data[0]).toBe(score?.data[0]);

    const nullFeature = await infer(port, { features: { ...Object.fromEntries(manifest.features.map((f) => [f, 1])), nps_score: null } });
    expect(nullFeature.status).toBe(400);
    expect(nullFeature.body.error).toContain('features.nps_score is null');
    const badValue = await infer(port, { inputs: [{ name: manifest.input.name, shape: [1, row.length], datatype: 'FP32', data: [...row.slice(0, -1), 'x'] }] });
    expect(badValue.status).toBe(400);
    expect(badValue.body.error).toContain(`feature ${manifest.features.at(-1)}`);
    const badShape = await infer(port, { inputs: [{ name: manifest.input.name, shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] });
    expect(badShape.status).toBe(400);
    expect(badShape.body.error).toContain('.shape');
    expect((await infer(port, { inputs: [] }, '/v2/models/nope/infer')).status).toBe(404);

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/scorer_infer_http_requests_total\{model="churn",status="400"\} 3/);
    expect(metrics).toMatch(/scorer_infer_http_requests_total\{model="churn",status="200"\} 2/);
  });
  it('with a model repository answers for the stable version by default and for any served version by name, each with its own scores', async () => {
    const t = { input: randomName('oipv-in'), output: randomName('oipv-out'), dlq: randomName('oipv-dlq') };
    await createTopics([{ topic: t.input }, { topic: t.output }, { topic: t.dlq }]);
    const deployment = join(tempDir('oip-deployment-'), 'deployment.json');
    writeFileSync(deployment, JSON.stringify({ stable: '1.0.0', canary: { version: '1.1.0', percent: 10 } }));
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: randomName('oipv-group'), INFER_HTTP: 'true', MODEL_REPOSITORY: tempRepository(), MODEL_DEPLOYMENT: deployment });
    const port = scorer.httpPort;
    const expected = (file: string) => JSON.parse(readFileSync(resolve(ROOT, file), 'utf8')) as { rows: number[][]; onnxruntimeProbability: number[] };
    const v100 = expected('test/fixtures/churn-expected.json');
    const v110 = expected('test/fixtures/churn-1.1.0-expected.json');
    const ask = async (path: string, rows: number[][]) => {
      const r = await infer(port, { inputs: [{ name: 'features', shape: [rows.length, rows[0]!.length], datatype: 'FP32', data: rows.flat() }] }, path);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return { version: r.body.model_version, scores: (r.body.outputs as { data: number[] }[])[0]!.data };
    };
    const stable = await ask('/v2/models/churn/infer', v100.rows);
    const canary = await ask('/v2/models/churn/versions/1.1.0/infer', v110.rows);
    expect(stable.version).toBe('1.0.0');
    expect(canary.version).toBe('1.1.0');
    stable.scores.forEach((s, i) => expect(s).toBeCloseTo(v100.onnxruntimeProbability[i]!, 5));
    canary.scores.forEach((s, i) => expect(s).toBeCloseTo(v110.onnxruntimeProbability[i]!, 5));
    expect(stable.scores).toHaveLength(v100.rows.length);
    expect((await ask('/v2/models/churn/versions/1.0.0/infer', v100.rows)).scores).toEqual(stable.scores);
    expect(await (await fetch(`http://127.0.0.1:${port}/v2/models/churn`)).json()).toMatchObject({ versions: ['1.0.0', '1.1.0'] });

    const unknown = await infer(port, { inputs: [] }, '/v2/models/churn/versions/2.0.0/infer');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe("model churn version '2.0.0' is not served here (this scorer serves 1.0.0, 1.1.0)");
  });
});
