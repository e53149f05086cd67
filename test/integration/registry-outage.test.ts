/**
 * The schema registry goes away mid-stream: records whose writer schema the scorer has not seen
 * yet cannot be decoded. They must not be dead-lettered or skipped; the partition pauses and
 * retries, and scoring resumes once the registry is back.
 *
 * With the local stack the registry process itself is stopped and started again (its ids survive:
 * H2 on disk). With a stack this run does not own (KAFKA_BROKERS/SCHEMA_REGISTRY_URL given, or
 * containers), the scorer reaches the registry through a loopback TCP proxy that is cut instead.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { EventFactory } from '../../scripts/lib/feature-events.js';
import { RegistryRest } from '../../src/kafka/registry.js';
import { stackUp, stopComponent } from '../../scripts/stack/stack.js';
import { createTopics, drainTopic, produce, randomName, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { startTestScorer } from '../helpers/scorer.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';


describe('registry outage', () => {
  // Whatever happens to the test, the files after it need the registry back.
  let registryStopped = false;
  afterAll(async () => {
    if (registryStopped) await stackUp(() => undefined, inject('stack'));
  });

  // 6 min: with the local stack the registry JVM really restarts, which took 2-3 min on a 2-core
  // machine shared with other work (load 40-60); idle it takes seconds.
  it('pauses instead of dead-lettering while the registry is down, and resumes when it is back', { timeout: 360_000 }, async () => {
    const input = randomName('outage-in');
    const output = randomName('outage-out');
    const dlq = randomName('outage-dlq');
    const group = randomName('outage-group');
    await createTopics([
      { topic: input, numPartitions: 3 },
      { topic: output, numPartitions: 3 },
      { topic: dlq, numPartitions: 1 },
    ]);
    const registryUrl = new URL(inject('schemaRegistryUrl'));
    const ownsRegistry = inject('stackMode') === 'local';
    const proxy = new TcpProxy({ host: registryUrl.hostname, port: Number(registryUrl.port || 80) });
    await proxy.up();
    const scorerRegistryUrl = ownsRegistry ? registryUrl.href : `${registryUrl.protocol}//127.0.0.1:${proxy.port}${registryUrl.pathname}`;

    // All writer schemas are registered while the registry is up; the scorer learns ids lazily.
    const factory = await EventFactory.create(new RegistryRest({ url: registryUrl.href }), input, { seed: 5 });
    const before = Array.from({ length: 300 }, (_, i) => factory.good(i));
    await produce(input, before);
    const scorer = await startTestScorer({ INPUT_TOPIC: input, OUTPUT_TOPIC: output, DLQ_TOPIC: dlq, GROUP_ID: group, SCHEMA_REGISTRY_URL: scorerRegistryUrl, LAG_POLL_INTERVAL_MS: '200' });
    await waitForCommittedToEnd(group, input);

    // Outage: records with a writer schema id the scorer has never fetched.
    if (ownsRegistry) {
      registryStopped = true;
      await stopComponent('registry', inject('stack'));
    } else await proxy.down();
    const during = Array.from({ length: 200 }, (_, i) => factory.evolved(1000 + i));
    await produce(input, during);
    await waitFor(
      'the scorer to hit the outage and retry',
      async () => /code="REGISTRY_UNAVAILABLE"\} [1-9]/.test(await scorer.registry.getSingleMetricAsString('scorer_retries_total')),
      60_000,
      250,
    );
    expect(await scorer.registry.getSingleMetricAsString('scorer_records_dead_lettered_total')).not.toMatch(/\} [1-9]/);
    // What an SRE sees while it waits: paused partitions and lag rising to the unscored backlog.
    await waitFor('lag to show the backlog', async () => (await scrape(scorer.httpPort, 'kafka_consumergroup_lag_sum')) === during.length, 30_000, 100);
    await waitFor('a paused partition (it resumes to retry between back-offs)', async () => (await scrape(scorer.httpPort, 'scorer_partitions_paused')) > 0, 30_000, 20);
    expect(await scrape(scorer.httpPort, 'scorer_ready')).toBe(1); // a registry outage is not a reason to be restarted or taken out

    // Back: the paused partitions resume and everything is scored.
    if (ownsRegistry) {
      await stackUp(() => undefined, inject('stack'));
      registryStopped = false;
    } else await proxy.up();
    await waitForCommittedToEnd(group, input, 120_000);
    await waitFor('lag back to 0', async () => (await scrape(scorer.httpPort, 'kafka_consumergroup_lag_sum')) === 0, 30_000, 100);
    expect(await scrape(scorer.httpPort, 'scorer_records_scored_total')).toBe(before.length + during.length);
    expect(await scrape(scorer.httpPort, 'scorer_records_consumed_total')).toBeGreaterThanOrEqual(before.length + during.length);
    expect(await scrape(scorer.httpPort, 'scorer_records_dead_lettered_total')).toBe(0);
    expect(await scrape(scorer.httpPort, 'scorer_partitions_paused')).toBe(0);
    await scorer.stop(20_000);
    await proxy.down();

    const outputs = await drainTopic(output);
    expect(await drainTopic(dlq)).toHaveLength(0);
    const keys = outputs.map((m) => m.key?.toString());
    expect(new Set(keys).size).toBe(before.length + during.length);
    expect(keys.sort()).toEqual([...before, ...during].map((m) => m.key).sort());
  });
});
