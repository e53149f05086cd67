/**
 * The load generator (`npm run produce`) as a new user runs it: the mlp model with poison, a
 * topic whose subject already exists, a subject that refuses the schema, and a broker or registry
 * that is down — each ends with its summary or one line saying what is wrong, and an exit code.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { describe, expect, inject, it } from 'vitest';
import { EXPECTED_CODE, MODEL_PATHS, ROOT, poisonKindsFor } from '../../scripts/lib/feature-events.js';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { createTopics, drainTopic, randomName, waitForCommittedToEnd } from '../helpers/kafka.js';
import { freePort } from '../helpers/net.js';
import { startTestScorer } from '../helpers/scorer.js';

const registryUrl = inject('schemaRegistryUrl').replace(/\/+$/, '');

function runProduce(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'scripts/produce.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, KAFKA_BROKERS: inject('kafkaBrokers'), SCHEMA_REGISTRY_URL: registryUrl, TOPIC_PARTITIONS: '2', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((r) => child.once('close', (code) => r({ code, stdout, stderr })));
}

const summaryOf = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1) as string) as { sent: number; poison: number; poisonByKind: Record<string, number> };
const rawConfig = async (subject: string) => {
  const res = await fetch(`${registryUrl}/config/${encodeURIComponent(subject)}`);
  return `${res.status} ${await res.text()}`;
};

describe('npm run produce', () => {
  it('--model mlp --poison 0.01 writes every poison kind the wide schema can carry (each dead-lettered with its code); producing again to the now existing subject works and leaves its configuration alone', async () => {
    const t = { input: randomName('produce-mlp-in'), output: randomName('produce-mlp-out'), dlq: randomName('produce-mlp-dlq'), group: randomName('produce-mlp-group') };
    await createTopics([{ topic: t.input, numPartitions: 2 }, { topic: t.output, numPartitions: 2 }, { topic: t.dlq }]);
    const run = await runProduce(['--model', 'mlp', '--poison', '0.01', '--count', '900', '--topic', t.input]);
    expect(run.code, run.stderr).toBe(0);
    const summary = summaryOf(run.stdout);
    const kinds = poisonKindsFor('mlp');
    expect(summary).toMatchObject({ sent: 900, poison: 9 });
    expect(Object.keys(summary.poisonByKind).sort()).toEqual([...kinds].sort());

    const before = await rawConfig(`${t.input}-value`);
    const again = await runProduce(['--model', 'mlp', '--count', '10', '--topic', t.input]);
    expect(again.code, again.stderr).toBe(0);
    expect(summaryOf(again.stdout).sent).toBe(10);
    expect(await rawConfig(`${t.input}-value`)).toBe(before);

    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, MODEL_PATH: MODEL_PATHS.mlp });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);
    const codes = (await drainTopic(t.dlq)).map((m) => m.headers?.[DLQ_HEADERS.errorCode]?.toString()).sort();
    expect(codes).toEqual(kinds.map((k) => EXPECTED_CODE[k]).sort());
    expect(await drainTopic(t.output)).toHaveLength(900 + 10 - 9);
  });

  it('--recycle 1000: the same 1,000 events sent again with event_time stamped at each send, bytes as avsc writes them; all scored, none dead-lettered', async () => {
    const t = { input: randomName('produce-recycle-in'), output: randomName('produce-recycle-out'), dlq: randomName('produce-recycle-dlq'), group: randomName('produce-recycle-group') };
    await createTopics([{ topic: t.input, numPartitions: 2 }, { topic: t.output, numPartitions: 2 }, { topic: t.dlq }]);
    const started = Date.now();
    const run = await runProduce(['--recycle', '1000', '--count', '2500', '--rate', '5000', '--topic', t.input]);
    expect(run.code, run.stderr).toBe(0);
    expect(summaryOf(run.stdout)).toMatchObject({ sent: 2500, poison: 0 });

    const type = avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/feature-event.avsc'), 'utf8')) as avro.Schema);
    const input = await drainTopic(t.input);
    expect(input).toHaveLength(2500);
    const keys = new Set<string>();
    for (const m of input) {
      const value = m.value as Buffer;
      const event = type.fromBuffer(value.subarray(5)) as { event_time: Date | number; entity_id: string };
      const eventTime = Number(event.event_time);
      // Stamped when handed to the client: after the run started, not after the record's own timestamp.
      expect(eventTime).toBeGreaterThanOrEqual(started);
      expect(eventTime).toBeLessThanOrEqual(Number(m.timestamp));
      // Byte for byte what avsc writes for the decoded event: nothing but event_time was touched.
      expect(type.toBuffer(event).equals(value.subarray(5))).toBe(true);
      expect(m.key?.toString()).toBe(event.entity_id);
      keys.add(event.entity_id);
    }
    expect(keys.size).toBe(1000);

    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, MODEL_PATH: MODEL_PATHS.churn });
    await waitForCommittedToEnd(t.group, t.input);
    await scorer.stop(20_000);
    expect(await drainTopic(t.output)).toHaveLength(2500);
    expect(await drainTopic(t.dlq)).toHaveLength(0);

    const refused = await runProduce(['--recycle', '1000', '--poison', '0.01', '--count', '10', '--topic', t.input]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toBe('produce: --recycle sends reference events only: it needs --poison 0');
  });

  it('--event-time schedule: each send stamped with its time on the rate schedule (a late send keeps its due time); refused without a rate', async () => {
    const topic = randomName('produce-schedule-in');
    const started = Date.now();
    // 2,000 events/s in sends of 100 (rate / 20): one send due every 50 ms.
    const run = await runProduce(['--count', '400', '--rate', '2000', '--event-time', 'schedule', '--topic', topic]);
    expect(run.code, run.stderr).toBe(0);
    const type = avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/feature-event.avsc'), 'utf8')) as avro.Schema);
    const input = await drainTopic(topic);
    expect(input).toHaveLength(400);
    const stamps = input.map((m) => ({ eventTime: Number((type.fromBuffer((m.value as Buffer).subarray(5)) as { event_time: Date | number }).event_time), sentAt: Number(m.timestamp) }));
    const due = [...new Set(stamps.map((s) => s.eventTime))].sort((a, b) => a - b);
    const first = due[0] as number;
    expect(first).toBeGreaterThanOrEqual(started);
    expect(due).toEqual([first, first + 50, first + 100, first + 150]);
    for (const s of stamps) expect(s.eventTime).toBeLessThanOrEqual(s.sentAt); // never stamped ahead of its send

    const refused = await runProduce(['--count', '10', '--event-time', 'schedule', '--topic', topic]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toBe('produce: --event-time schedule stamps each send with its time on the rate schedule: it needs --rate above 0');
    const unknown = await runProduce(['--count', '10', '--event-time', 'later', '--topic', topic]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim()).toBe("produce: --event-time: expected send or schedule, got 'later'");
  });

  it('a subject that refuses the schema: exit 1, one line naming the subject and its level', async () => {
    const topic = randomName('produce-refused');
    const subject = `${topic}-value`;
    const post = (path: string, method: string, body: unknown) =>
      fetch(`${registryUrl}${path}`, { method, headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify(body) });
    expect((await post(`/subjects/${subject}/versions`, 'POST', { schema: JSON.stringify({ type: 'record', name: 'Other', fields: [{ name: 'x', type: 'string' }] }) })).status).toBe(200);
    expect((await post(`/config/${subject}`, 'PUT', { compatibility: 'BACKWARD' })).status).toBe(200);
    const run = await runProduce(['--count', '10', '--topic', topic]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(new RegExp(`^produce: subject '${subject}' \\(compatibility BACKWARD\\) refuses the schema as incompatible`));
    expect(run.stderr).toContain('--topic');
  });

  it.each([
    ['the broker', { KAFKA_BROKERS: '127.0.0.1:PORT' }, /^produce: Kafka at 127\.0\.0\.1:\d+ \(KAFKA_BROKERS\) failed: .*ECONNREFUSED/],
    ['the registry', { SCHEMA_REGISTRY_URL: 'http://127.0.0.1:PORT/apis/ccompat/v7' }, /^produce: .*the schema registry at http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7 \(SCHEMA_REGISTRY_URL\) did not answer: .*ECONNREFUSED/],
  ])('%s down: exit 1 with one line naming the setting, no stack trace', async (_what, env, message) => {
    const port = String(await freePort());
    const run = await runProduce(['--count', '10', '--topic', randomName('produce-down')], Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace('PORT', port)])));
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(message);
  });
});
