/**
 * What SREs rely on, against the real broker and registry: readiness during shutdown, the circuit
 * breaker with a model that always fails (nothing dead-lettered, nothing skipped), and bounded
 * memory under backpressure with a deliberately slow model while the backlog grows.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { RegistryRest } from '../../src/kafka/registry.js';
import { describe, expect, inject, it } from 'vitest';
import { EventFactory, ROOT } from '../../scripts/lib/feature-events.js';
import { produceEvents } from '../../scripts/produce.js';
import { createTopics, drainTopic, randomName, testKafka, waitFor } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { spawnScorer, startTestScorer } from '../helpers/scorer.js';

function topics(name: string) {
  return { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
}

async function committed(groupId: string, topic: string): Promise<string[]> {
  const admin = testKafka().admin();
  await admin.connect();
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  await admin.disconnect();
  return (offsets?.partitions ?? []).map((p) => p.offset);
}

describe('operations', () => {
  it('reports not ready as soon as shutdown starts, then drains and stops', async () => {
    const t = topics('shutdown');
    await createTopics([{ topic: t.input, numPartitions: 2 }]);
    const scorer = await startTestScorer({ INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, LAG_POLL_INTERVAL_MS: '200' });
    await waitFor('ready', async () => (await fetch(`http://127.0.0.1:${scorer.httpPort}/readyz`)).status === 200);
    expect((await fetch(`http://127.0.0.1:${scorer.httpPort}/healthz`)).status).toBe(200);
    const stopping = scorer.stop(20_000);
    expect(scorer.health().ready).toBe(false);
    // The HTTP server is closed last, so probes keep answering (503) while the consumer drains.
    const res = await fetch(`http://127.0.0.1:${scorer.httpPort}/readyz`);
    expect(res.status).toBe(503);
    expect(JSON.stringify(await res.json())).toContain('shuttingDown');
    expect(await stopping).toBe(true);
  });

  it('opens the circuit on a model that always fails: not ready, nothing dead-lettered, no offset committed', async () => {
    const t = topics('circuit');
    await createTopics([
      { topic: t.input, numPartitions: 2 },
      { topic: t.output, numPartitions: 1 },
      { topic: t.dlq, numPartitions: 1 },
    ]);
    const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 9, variants: false });
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({ topic: t.input, messages: Array.from({ length: 200 }, (_, i) => factory.good(i)) });
    await producer.disconnect();

    const scorer = await startTestScorer({
      INPUT_TOPIC: t.input,
      OUTPUT_TOPIC: t.output,
      DLQ_TOPIC: t.dlq,
      GROUP_ID: t.group,
      MODEL_PATH: resolve(ROOT, 'test/fixtures/broken/broken.onnx'),
      CIRCUIT_FAILURE_THRESHOLD: '3',
      CIRCUIT_COOLDOWN_MS: '500',
    });
    const url = `http://127.0.0.1:${scorer.httpPort}`;
    await waitFor('the circuit to open', async () => (await scrape(scorer.httpPort, 'scorer_circuit_open')) === 1, 60_000, 100);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { circuitOpen: true } });
    expect((await fetch(`${url}/healthz`)).status).toBe(200); // alive: restarting would not help
    // Retries keep probing the model (cool-down 500 ms), and still nothing is written or committed.
    const retries = await scrape(scorer.httpPort, 'scorer_retries_total');
    await waitFor('more retries after the cool-down', async () => (await scrape(scorer.httpPort, 'scorer_retries_total')) > retries, 30_000, 100);
    expect(await scrape(scorer.httpPort, 'scorer_records_dead_lettered_total')).toBe(0);
    expect(await scrape(scorer.httpPort, 'scorer_records_scored_total')).toBe(0);
    expect((await committed(t.group, t.input)).every((o) => o === '-1')).toBe(true);
    await scorer.stop(20_000);
    expect(await drainTopic(t.dlq)).toHaveLength(0);
    expect(await drainTopic(t.output)).toHaveLength(0);
  });

  it('keeps memory bounded with a slow model while the input backlog grows', async () => {
    const t = topics('backpressure');
    await createTopics([{ topic: t.input, numPartitions: 6 }]);
    const proc = await spawnScorer('backpressure', {
      INPUT_TOPIC: t.input,
      OUTPUT_TOPIC: t.output,
      DLQ_TOPIC: t.dlq,
      GROUP_ID: t.group,
      MODEL_PATH: resolve(ROOT, 'test/fixtures/slow/slow.onnx'),
      BATCH_MAX_SIZE: '16',
      MAX_IN_FLIGHT_ROWS: '2000',
      RESUME_IN_FLIGHT_ROWS: '1000',
      LAG_POLL_INTERVAL_MS: '250',
    });
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.child.pid}/status`, 'utf8'))?.[1]) * 1024;
    const before = rss();
    // ~60 MB of events as fast as the broker takes them: far more than the model scores meanwhile.
    await produceEvents({ brokers: inject('kafkaBrokers'), registryUrl: inject('schemaRegistryUrl'), topic: t.input, count: 120_000, rate: 0, poison: 0, model: 'churn', partitions: 6 });
    let peakRss = 0;
    let peakInFlight = 0;
    let peakLag = 0;
    let samples = 0;
    await waitFor(
      'a backlog the slow model is working through, observed for 20 samples',
      async () => {
        peakRss = Math.max(peakRss, rss());
        peakInFlight = Math.max(peakInFlight, await scrape(proc.port, 'scorer_in_flight_rows'));
        peakLag = Math.max(peakLag, await scrape(proc.port, 'kafka_consumergroup_lag_sum'));
        samples += 1;
        return samples >= 20 && peakLag > 50_000;
      },
      60_000,
      250,
    );
    const scored = await scrape(proc.port, 'scorer_records_scored_total');
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(scored).toBeGreaterThan(0); // it was working, just slowly
    expect(scored).toBeLessThan(120_000 - 50_000);
    expect(peakInFlight).toBeLessThanOrEqual(2000 + 5000); // high-water mark + one chunk admitted when idle
    expect(peakRss - before).toBeLessThan(150 * 1024 * 1024); // the backlog stays in Kafka, not in the heap
  });
});
