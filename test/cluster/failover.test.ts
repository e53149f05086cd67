/**
 * Failover on a real three-node KRaft cluster (the `integration-cluster` line: every node broker
 * and controller), topics with 3 replicas and min.insync.replicas 2, the scorer as a child
 * process over a live stream:
 *  - the node leading the transaction coordinator's partition of one of the scorer's
 *    transactional ids, and input partitions, is SIGKILLed mid-stream, then restarted;
 *  - all three nodes are restarted one after the other (a rolling restart, controlled shutdown).
 * Each run ends with a read_committed read-back: every input exactly once across output and dead
 * letters. The scorer stays ready (a broker loss the cluster survives is not a reason to leave
 * the load balancer), the lag metrics come back to 0, and the longest stall is printed (README
 * "Failover"; a measurement, not an assertion: speed is for benchmarks).
 */
import { RegistryRest } from '../../src/kafka/registry.js';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { EventFactory } from '../../scripts/lib/feature-events.js';
import { createTopics, randomName, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { type ScorerProcess, processedSoFar, spawnScorer } from '../helpers/scorer.js';
import { expectEachInputOnce, startStream } from '../helpers/stream.js';
import { coordinatorPartition, leaders, restartNodes, stopNode, waitForFullIsr, watchScorer, withAdmin } from './cluster.js';

const PARTITIONS = 6;
const REPLICATED = { replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] };
/** transaction.state.log.num.partitions of the stack (scripts/stack/kafka.ts). */
const TXN_STATE_PARTITIONS = 10;
const RATE = 400; // events/s: three JVMs, the scorer and the test share two cores

async function setup(name: string) {
  const t = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
  await createTopics([
    { topic: t.input, numPartitions: PARTITIONS, ...REPLICATED },
    { topic: t.output, numPartitions: PARTITIONS, ...REPLICATED },
    { topic: t.dlq, numPartitions: 2, ...REPLICATED },
  ]);
  const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 5 });
  const env = { INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, BATCH_MAX_SIZE: '256' };
  return { t, factory, env, topics: [t.input, t.output, t.dlq] };
}

/** Waits until the scorer has committed `more` records beyond what it had: it is making progress now. */
async function progresses(p: ScorerProcess, what: string, more = 1_000): Promise<void> {
  const before = await processedSoFar(p);
  await waitFor(`${what} (${more} more records committed)`, async () => (await processedSoFar(p)) >= before + more, 180_000, 100);
}

/** Lag of the group as the scorer exports it, once it reports 0 for the input topic. */
async function lagRecovers(p: ScorerProcess): Promise<void> {
  await waitFor('kafka_consumergroup_lag_sum to come back to 0', async () => (await scrape(p.port, 'kafka_consumergroup_lag_sum')) === 0 && (await scrape(p.port, 'scorer_partitions_assigned')) === PARTITIONS, 120_000, 250);
}

/** The node that leads the coordinator partition of one of the scorer's transactional ids and at least one input partition. */
async function coordinatorAndInputLeader(input: string, group: string): Promise<{ node: number; txnPartition: number; inputPartitions: number[] }> {
  return withAdmin(async (admin) => {
    const txnLeaders = await leaders(admin, '__transaction_state');
    const inputLeaders = await leaders(admin, input);
    for (let p = 0; p < PARTITIONS; p++) {
      const txnPartition = coordinatorPartition(`kafka-onnx-scorer-${group}-${input}-${p}`, TXN_STATE_PARTITIONS);
      const node = txnLeaders.get(txnPartition) as number;
      const inputPartitions = [...inputLeaders].filter(([, l]) => l === node).map(([ip]) => ip);
      if (inputPartitions.length > 0) return { node, txnPartition, inputPartitions };
    }
    throw new Error(`no node leads both a transaction coordinator partition and an input partition: ${JSON.stringify([...inputLeaders])}`);
  });
}

describe('three-node cluster failover', () => {
  // A test that failed half way leaves a node stopped: the next one must start from a whole cluster.
  afterEach(async () => {
    await restartNodes();
  });

  it('SIGKILL of the node leading the transaction coordinator and input partitions, then its restart: exactly once, ready throughout, lag recovers', { timeout: 600_000 }, async () => {
    const { t, factory, env, topics } = await setup('kill');
    const stream = startStream(factory, t.input, { rate: RATE });
    const proc = await spawnScorer('cluster-kill', env);
    await progresses(proc, 'the scorer to score before the failover');
    const victim = await coordinatorAndInputLeader(t.input, t.group);
    const watch = watchScorer(proc);
    await stopNode(victim.node, { kill: true });
    await progresses(proc, `the scorer to go on with node ${victim.node} dead`);
    await restartNodes();
    await waitForFullIsr([...topics, '__transaction_state', '__consumer_offsets']);
    await progresses(proc, `the scorer to go on after node ${victim.node} came back`);
    await watch.stop();
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    await lagRecovers(proc);
    console.log(`failover (SIGKILL node ${victim.node}: coordinator of __transaction_state-${victim.txnPartition}, leader of input partitions ${victim.inputPartitions.join(',')}): longest stall ${watch.longestStallMs()} ms, ${stream.sent.length} events (${stream.resent()} batches re-sent by the load producer)`);
    expect(watch.notReady).toEqual([]);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    await expectEachInputOnce(stream.sent, t.input, t.output, t.dlq);
  });

  it('a rolling restart of all three nodes: exactly once, ready throughout, lag recovers', { timeout: 900_000 }, async () => {
    const { t, factory, env, topics } = await setup('rolling');
    const stream = startStream(factory, t.input, { rate: RATE });
    const proc = await spawnScorer('cluster-rolling', env);
    await progresses(proc, 'the scorer to score before the restarts');
    const watch = watchScorer(proc);
    for (const node of [1, 2, 3]) {
      await stopNode(node, { kill: false }); // SIGTERM: controlled shutdown moves its leaderships first
      await progresses(proc, `the scorer to go on with node ${node} stopped`, 500);
      await restartNodes();
      // Only with every replica back in sync may the next node go: min.insync.replicas 2.
      await waitForFullIsr([...topics, '__transaction_state', '__consumer_offsets']);
    }
    await progresses(proc, 'the scorer to go on after the rolling restart');
    await watch.stop();
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 180_000);
    await lagRecovers(proc);
    console.log(`rolling restart of 3 nodes: longest stall ${watch.longestStallMs()} ms, ${stream.sent.length} events (${stream.resent()} batches re-sent by the load producer)`);
    expect(watch.notReady).toEqual([]);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    await expectEachInputOnce(stream.sent, t.input, t.output, t.dlq);
  });
});
