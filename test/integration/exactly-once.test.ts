/**
 * Exactly once, end to end, with real processes: the scorer runs as child processes over a live
 * stream; it is SIGKILLed at random moments and restarted, and another instance joins and leaves.
 * At the end, a read_committed reader of the output and dead-letter topics must find every input
 * key exactly once: no loss, no duplicate — dead letters included, since they share the transaction.
 * Some instances run two pipelines in worker threads (PIPELINE_THREADS=2, src/threads/): killed,
 * drained by SIGTERM and joining a group of single-pipeline instances, at no extra test time.
 * A zombie: an instance frozen (SIGSTOP) past its session timeout while another takes its
 * partitions, then woken (SIGCONT) with its transactions half done, must be fenced, not commit.
 * Every line runs this file (EOS_MODE=v2, the default); the integration-eos-v1 line with EOS_MODE=v1 (lines.ts).
 */
import { RegistryRest } from '../../src/kafka/registry.js';
import { describe, expect, inject, it } from 'vitest';
import { EventFactory, type OutMessage } from '../../scripts/lib/feature-events.js';
import { createTopics, randomName, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { processedSoFar as scoredSoFar, spawnScorer } from '../helpers/scorer.js';
import { expectExactlyOnce as expectEveryKeyOnce, poisonCount, startStream } from '../helpers/stream.js';

/** Every produced key in exactly one of the two topics, exactly once; the bad ones (~1%, every kind) dead letters. */
async function expectExactlyOnce(sent: OutMessage[], output: string, dlq: string): Promise<void> {
  const { dead } = await expectEveryKeyOnce(sent, output, dlq);
  expect(dead.length).toBe(poisonCount(sent));
}

async function setup(name: string) {
  const t = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
  await createTopics([
    { topic: t.input, numPartitions: 6 },
    { topic: t.output, numPartitions: 6 },
    { topic: t.dlq, numPartitions: 2 },
  ]);
  const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 3 });
  const env = { INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, BATCH_MAX_SIZE: '256' };
  return { t, factory, env };
}

describe('exactly once', () => {
  it('survives SIGKILL of the scorer at random moments, three times, with no loss and no duplicate (instances 1 and 3: PIPELINE_THREADS=2)', { timeout: 300_000 }, async () => {
    const { t, factory, env } = await setup('crash');
    const stream = startStream(factory, t.input);
    // Odd instances run two pipelines: one of them is SIGKILLed mid-flight, the last is drained by SIGTERM.
    const envOf = (n: number) => (n % 2 === 1 ? { ...env, PIPELINE_THREADS: '2' } : env);
    let proc = await spawnScorer('crash-0', envOf(0));
    for (let kill = 1; kill <= 3; kill++) {
      // Kill once this instance has committed a random amount of work: mid-stream, mid-flight.
      const threshold = 300 + Math.floor(Math.random() * 2_500);
      const current = proc;
      await waitFor(`instance ${kill - 1} to process ${threshold} records`, async () => (await scoredSoFar(current)) >= threshold, 90_000, 50);
      current.child.kill('SIGKILL');
      expect(await current.exited).toBe(null); // killed by the signal, no exit code
      proc = await spawnScorer(`crash-${kill}`, envOf(kill));
    }
    // The last instance joined a flowing stream: every kill landed mid-stream.
    await waitFor('the last instance to process records', async () => (await scoredSoFar(proc)) > 0, 90_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0); // graceful drain exits 0
    await expectExactlyOnce(stream.sent, t.output, t.dlq);
  });

  it('stays exactly once while a second instance (PIPELINE_THREADS=2) joins and later leaves mid-stream', { timeout: 300_000 }, async () => {
    const { t, factory, env } = await setup('rebalance');
    const stream = startStream(factory, t.input);
    const a = await spawnScorer('rebalance-a', env);
    await waitFor('instance A to make progress', async () => (await scoredSoFar(a)) >= 2_000, 90_000, 50);
    const b = await spawnScorer('rebalance-b', { ...env, PIPELINE_THREADS: '2' });
    await waitFor('instance B to take over some partitions and score', async () => (await scoredSoFar(b)) >= 1_000, 90_000, 50);
    b.child.kill('SIGTERM'); // leaves the group gracefully mid-stream
    expect(await b.exited).toBe(0);
    // B left mid-stream: A goes on scoring (B's partitions included) while the stream flows.
    const before = await scoredSoFar(a);
    await waitFor('instance A to go on scoring after B left', async () => (await scoredSoFar(a)) > before, 90_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    await expectExactlyOnce(stream.sent, t.output, t.dlq);
  });

  it('stays exactly once when an instance freezes (SIGSTOP) past its session timeout, another takes its partitions, and it wakes up (SIGCONT) as a zombie', { timeout: 300_000 }, async () => {
    const { t, factory, env } = await setup('zombie');
    const stream = startStream(factory, t.input);
    const a = await spawnScorer('zombie-a', env);
    const b = await spawnScorer('zombie-b', env);
    await waitFor('both instances to score', async () => (await scoredSoFar(a)) >= 500 && (await scoredSoFar(b)) >= 500, 90_000, 50);
    a.child.kill('SIGSTOP'); // frozen mid-stream, whatever it was doing: fetching, scoring, in a transaction
    try {
      await waitFor("B to own all 6 partitions (A's session timed out)", async () => (await scrape(b.port, 'scorer_partitions_assigned')) === 6, 90_000, 100);
      const taken = await scoredSoFar(b);
      await waitFor("B to score on A's partitions too", async () => (await scoredSoFar(b)) >= taken + 1_000, 90_000, 50);
    } finally {
      a.child.kill('SIGCONT'); // wakes with its old generation, producers and fetched records
    }
    await waitFor('A to rejoin and score again', async () => (await scrape(a.port, 'scorer_partitions_assigned')) > 0 && (await scrape(b.port, 'scorer_partitions_assigned')) < 6, 90_000, 100);
    const woke = await scoredSoFar(a);
    await waitFor('A to score after rejoining', async () => (await scoredSoFar(a)) > woke, 90_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    for (const p of [a, b]) p.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    await expectExactlyOnce(stream.sent, t.output, t.dlq);
  });
});
