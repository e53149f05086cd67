/**
 * EOS_MODE=v2's produce stage (src/stages/produce-pipeline.ts) on fake kafkajs producers: which
 * chunks share a transaction, when a second one runs beside it, the generation each commits
 * under, and what a failure leaves behind (every partition of it re-acquired, the producer replaced).
 */
import type { ProducerConfig } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { type StableOffsetsAdmin, groupMetadataFor } from '../../../src/kafka/kafkajs-kip447.js';
import { createLogger } from '../../../src/ops/logger.js';
import type { ChunkCommit, TransactionalProducer } from '../../../src/stages/produce.js';
import { PipelineProducers } from '../../../src/stages/produce-pipeline.js';
import { FakeProducer, kafkaError } from '../../helpers/fake-producer.js';

const GROUP = { generationId: 7, memberId: 'member-a' };

function setup({ committed = {} as Record<number, bigint>, unstable = 0, slots = 3, parallelRecords = 2_000 } = {}) {
  const made: FakeProducer[] = [];
  const results: string[] = [];
  let unstableLeft = unstable;
  const admin: StableOffsetsAdmin = {
    fetchStableOffsets: async ({ partitions }) => {
      if (unstableLeft > 0) {
        unstableLeft--;
        throw kafkaError('UNSTABLE_OFFSET_COMMIT');
      }
      return new Map(partitions.map((p) => [p, { offset: committed[p] ?? -1n, metadata: null }]));
    },
  };
  const producers = new PipelineProducers({
    kafka: {
      producer: (config: ProducerConfig) => {
        const p = new FakeProducer(config.transactionalId as string);
        made.push(p);
        return p as unknown as TransactionalProducer;
      },
    },
    admin,
    groupId: 'g',
    inputTopic: 'in',
    transactionalIdBase: 'tx-g-host-1-0',
    transactionalIdPrefix: 'tx',
    transactionTimeoutMs: 10_000,
    retry: { initialRetryTime: 20, retries: 8, maxRetryTime: 2_000 },
    slots,
    parallelRecords,
    logger: createLogger('silent'),
    onTransaction: (r) => results.push(r),
  });
  return { producers, made, results, unstableLeft: () => unstableLeft };
}

const chunk = (partition: number, records: number, nextOffset: bigint): ChunkCommit => ({
  partition,
  outputs: [{ topic: 'out', messages: Array.from({ length: records }, (_, i) => ({ key: `k${i}`, value: Buffer.alloc(8) })) }],
  nextOffset,
});

/** The transactions that did more than the initial empty abort, as call lists. */
const transactions = (made: FakeProducer[]) => made.flatMap((p) => p.txs.filter((t) => t.calls.some((c) => c.startsWith('send'))).map((t) => t.calls));

async function acquired(producers: PipelineProducers, partitions: number[], group = GROUP) {
  producers.assigned({ ...group, partitions });
  for (const p of partitions) await producers.acquire(p);
}

describe('PipelineProducers (EOS_MODE=v2)', () => {
  it('initialises every slot before the first partition is read, then commits chunks that are ready together in one transaction, under the generation and member of the assignment', async () => {
    const { producers, made, results } = setup({ committed: { 0: 10n } });
    producers.assigned({ ...GROUP, partitions: [0, 1, 2] });
    expect(await producers.acquire(0)).toEqual({ partition: 0, committedOffset: 10n });
    expect(made.map((p) => p.transactionalId)).toEqual(['tx-g-host-1-0-0', 'tx-g-host-1-0-1', 'tx-g-host-1-0-2']);
    expect(made.every((p) => p.txs[0]?.calls.join() === 'abort')).toBe(true); // InitProducerId, nothing sent
    await producers.acquire(1);
    await producers.acquire(2);
    await Promise.all([producers.commit(chunk(0, 3, 13n)), producers.commit(chunk(1, 2, 5n)), producers.commit(chunk(2, 1, 1n))]);
    expect(transactions(made)).toEqual([['sendBatch out:6', 'sendOffsets g in/0@13,in/1@5,in/2@1', 'commit']]);
    const topics = made.flatMap((p) => p.offsetTopics)[0] as object;
    expect(groupMetadataFor(topics)).toEqual(GROUP);
    expect(results).toEqual(['committed']);
  });

  it('holds small chunks that arrive during a transaction for the next one, but starts another beside it once enough records wait', async () => {
    const { producers, made } = setup({ parallelRecords: 100 });
    await acquired(producers, [0, 1, 2, 3]);
    let release = () => undefined as void;
    const first = made[0] as FakeProducer;
    first.hold = new Promise<void>((r) => (release = r));
    const held = producers.commit(chunk(0, 10, 10n));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    // Two small chunks while the first transaction is open: they wait (20 records < 100).
    const small = [producers.commit(chunk(1, 10, 10n)), producers.commit(chunk(2, 10, 10n))];
    await new Promise((r) => setImmediate(r));
    expect(transactions(made)).toHaveLength(1);
    // A big one: 120 records wait, worth a transaction of their own on the next slot.
    const big = producers.commit(chunk(3, 100, 100n));
    await Promise.all([...small, big]);
    expect(transactions(made).map((t) => t[1])).toEqual(['sendOffsets g in/0@10', 'sendOffsets g in/1@10,in/2@10,in/3@100']);
    release();
    await held;
  });

  it('a failed transaction fails every chunk in it, is aborted, replaces its producer and drops its partitions (re-acquired: the commit may have landed); others keep theirs', async () => {
    const { producers, made, results } = setup();
    await acquired(producers, [0, 1, 2]);
    (made[0] as FakeProducer).fail.push({ step: 'commit', error: kafkaError('REQUEST_TIMED_OUT') });
    const outcome = await Promise.allSettled([producers.commit(chunk(0, 1, 1n)), producers.commit(chunk(1, 1, 1n))]);
    expect(outcome.map((o) => (o.status === 'rejected' ? (o.reason as { code: string }).code : o.status))).toEqual(['TRANSACTION_FAILED', 'TRANSACTION_FAILED']);
    expect((made[0] as FakeProducer).txs.at(-1)?.calls.at(-1)).toBe('abort');
    expect((made[0] as FakeProducer).disconnects).toBe(1);
    expect(results).toEqual(['aborted']);
    expect([producers.has(0), producers.has(1), producers.has(2)]).toEqual([false, false, true]);
    await expect(producers.commit(chunk(0, 1, 1n))).rejects.toMatchObject({ code: 'PRODUCER_FENCED' });
    // Acquiring again waits for the replacement producer of that slot (same transactional id).
    await producers.acquire(0);
    expect(made.map((p) => p.transactionalId)).toEqual(['tx-g-host-1-0-0', 'tx-g-host-1-0-1', 'tx-g-host-1-0-2', 'tx-g-host-1-0-0']);
    await producers.commit(chunk(0, 1, 2n));
    expect(results).toEqual(['aborted', 'committed']);
  });

  it('an offset commit refused because the group moved on (ILLEGAL_GENERATION) is a fencing: PRODUCER_FENCED naming the generation', async () => {
    const { producers, made } = setup();
    await acquired(producers, [0]);
    (made[0] as FakeProducer).fail.push({ step: 'sendOffsets', error: kafkaError('ILLEGAL_GENERATION') });
    await expect(producers.commit(chunk(0, 1, 1n))).rejects.toMatchObject({ code: 'PRODUCER_FENCED', message: expect.stringContaining('generation 7') });
    expect(producers.has(0)).toBe(false);
  });

  it('a new assignment moves kept partitions to its generation and drops the others; chunks of two generations never share a transaction', async () => {
    const { producers, made } = setup();
    await acquired(producers, [0, 1]);
    const hold = made[0] as FakeProducer;
    let release = () => undefined as void;
    hold.hold = new Promise<void>((r) => (release = r));
    const running = producers.commit(chunk(0, 1, 1n)); // generation 7, held open
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const old = producers.commit(chunk(1, 1, 1n)); // waits, generation 7
    producers.assigned({ generationId: 8, memberId: 'member-a', partitions: [0] });
    expect([producers.has(0), producers.has(1)]).toEqual([true, false]);
    release();
    await running;
    await old;
    const next = producers.commit(chunk(0, 1, 2n));
    await next;
    const generations = made.flatMap((p) => p.offsetTopics).map((t) => groupMetadataFor(t as object)?.generationId);
    expect(generations).toEqual([7, 7, 8]);
  });

  it('after a gap (a new member id, or a generation skipped: it was dropped from the group and rejoined) no lease is kept: each partition re-reads its stable offset', async () => {
    const { producers } = setup();
    await acquired(producers, [0, 1]);
    producers.assigned({ generationId: 9, memberId: 'member-a', partitions: [0, 1] }); // 7 -> 9: generation 8 went on without it
    expect([producers.has(0), producers.has(1)]).toEqual([false, false]);
    await acquired(producers, [0, 1], { generationId: 10, memberId: 'member-a' });
    producers.assigned({ generationId: 11, memberId: 'member-b', partitions: [0, 1] }); // a new member id: it was dropped
    expect([producers.has(0), producers.has(1)]).toEqual([false, false]);
  });

  it('waits through UNSTABLE_OFFSET_COMMIT (a previous owner\'s transaction still open) before reading a partition', async () => {
    const { producers, unstableLeft } = setup({ committed: { 4: 42n }, unstable: 3 });
    producers.assigned({ ...GROUP, partitions: [4] });
    expect(await producers.acquire(4)).toEqual({ partition: 4, committedOffset: 42n });
    expect(unstableLeft()).toBe(0);
  });
});
