/** The produce stage: how a chunk's outputs are cut into sendBatch calls of one transaction, and the transactions themselves. */
import type { Admin, ProducerConfig } from 'kafkajs';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/ops/logger.js';
import { FakeProducer, type FakeTx, kafkaError } from '../../helpers/fake-producer.js';
import { type ChunkCommit, PartitionProducers, type PartitionProducersOptions, type TransactionStep, type TransactionalProducer, fillAndCommit, sendSlices } from '../../../src/stages/produce.js';

const msg = (bytes: number, key = 'k') => ({ key, value: Buffer.alloc(bytes) });

describe('sendSlices', () => {
  it('keeps a small chunk in one slice, topics and order intact, empty topics dropped', () => {
    const outputs = [
      { topic: 'out', messages: [msg(10, 'a'), msg(10, 'b')] },
      { topic: 'dlq', messages: [] },
      { topic: 'dlq2', messages: [msg(10, 'c')] },
    ];
    expect(sendSlices(outputs)).toEqual([[{ topic: 'out', messages: outputs[0]?.messages }, { topic: 'dlq2', messages: outputs[2]?.messages }]]);
  });

  it('cuts by bytes so no slice nears the broker message limit, losing and reordering nothing', () => {
    const messages = Array.from({ length: 5_000 }, (_, i) => msg(300, `k${i}`));
    const slices = sendSlices([{ topic: 'out', messages }]);
    expect(slices.length).toBeGreaterThan(1);
    for (const slice of slices) {
      const bytes = slice.flatMap((t) => t.messages).reduce((n, m) => n + (m.value as Buffer).length + 64 + 4, 0);
      expect(bytes).toBeLessThanOrEqual(512 * 1024);
    }
    expect(slices.flatMap((s) => s.flatMap((t) => t.messages))).toEqual(messages);
  });

  it('cuts at 1,000 messages, and a slice may span topics', () => {
    const slices = sendSlices([
      { topic: 'out', messages: Array.from({ length: 1_500 }, () => msg(1)) },
      { topic: 'dlq', messages: Array.from({ length: 600 }, () => msg(1)) },
    ]);
    expect(slices.map((s) => s.map((t) => [t.topic, t.messages.length]))).toEqual([[['out', 1_000]], [['out', 500], ['dlq', 500]], [['dlq', 100]]]);
  });

  it('gives a single oversized message a slice of its own rather than dropping it', () => {
    const big = msg(2_000_000);
    expect(sendSlices([{ topic: 'out', messages: [msg(1), big, msg(1)] }]).map((s) => s[0]?.messages.length)).toEqual([1, 1, 1]);
  });
});

// ---------------------------------------------------------------------------------------------
// PartitionProducers on fake kafkajs producers: what each transaction sends, and what a failure
// leaves behind (aborted, dropped, fenced).
// ---------------------------------------------------------------------------------------------

function fakeProducers(committed: Record<number, string> = {}) {
  const made: FakeProducer[] = [];
  const results: string[] = [];
  const kafka = {
    producer: (config: ProducerConfig) => {
      const p = new FakeProducer(config.transactionalId as string);
      made.push(p);
      return p as unknown as TransactionalProducer;
    },
  };
  const producers = new PartitionProducers({ ...baseOptions(committed), kafka, onTransaction: (r) => results.push(r) });
  return { producers, made, results, last: () => made.at(-1) as FakeProducer };
}

function baseOptions(committed: Record<number, string> = {}): PartitionProducersOptions {
  const admin = {
    fetchOffsets: async () => [{ topic: 'in', partitions: Object.entries(committed).map(([partition, offset]) => ({ partition: Number(partition), offset, metadata: null })) }],
  } as unknown as Pick<Admin, 'fetchOffsets'>;
  return {
    kafka: { producer: () => new FakeProducer('unused') as unknown as TransactionalProducer },
    admin,
    groupId: 'g',
    inputTopic: 'in',
    transactionalIdPrefix: 'tx',
    transactionTimeoutMs: 60_000,
    retry: { initialRetryTime: 20, retries: 8, maxRetryTime: 2_000 },
    logger: createLogger('silent'),
    onTransaction: () => undefined,
  };
}

const commitOf = (partition: number, out: number, dlq: number, nextOffset: bigint): ChunkCommit => ({
  partition,
  outputs: [
    { topic: 'out', messages: Array.from({ length: out }, (_, i) => msg(10, `o${i}`)) },
    { topic: 'dlq', messages: Array.from({ length: dlq }, (_, i) => msg(10, `d${i}`)) },
  ],
  nextOffset,
});

/** A transaction whose every request waits until the test settles it: what is in flight at once is visible. */
function heldTransaction() {
  const calls: string[] = [];
  const pending = new Map<string, { resolve(): void; reject(e: unknown): void }>();
  const request = (name: string) => {
    calls.push(name);
    return new Promise<void>((resolve, reject) => pending.set(name, { resolve, reject }));
  };
  const tx = {
    sendBatch: ({ topicMessages }: { topicMessages: { topic: string; messages: unknown[] }[] }) => request(`sendBatch ${topicMessages.map((t) => `${t.topic}:${t.messages.length}`).join(',')}`),
    sendOffsets: () => request('sendOffsets'),
    commit: () => request('commit'),
    abort: () => request('abort'),
  } as unknown as Parameters<typeof fillAndCommit>[0];
  const settle = async (name: string, error?: unknown) => {
    await vi.waitFor(() => expect(pending.has(name)).toBe(true));
    const p = pending.get(name) as { resolve(): void; reject(e: unknown): void };
    pending.delete(name);
    if (error === undefined) p.resolve();
    else p.reject(error);
  };
  return { tx, calls, settle, inFlight: () => [...pending.keys()] };
}

/** Every promise job queued so far has run (setImmediate comes after them): a deterministic turn, not a duration. */
const flushPromises = () => new Promise<void>((r) => setImmediate(r));

const offsetsOf = { consumerGroupId: 'g', topics: [{ topic: 'in', partitions: [{ partition: 0, offset: '10' }] }] };

describe('fillAndCommit', () => {
  it('sends the slices one after the other, then the input offsets, and commits only once each is acknowledged', async () => {
    const { tx, calls, settle, inFlight } = heldTransaction();
    const at = { step: 'begin' as TransactionStep };
    const done = fillAndCommit(tx, [{ topic: 'out', messages: Array.from({ length: 1_500 }, () => msg(1)) }], offsetsOf, at);
    await vi.waitFor(() => expect(inFlight()).toEqual(['sendBatch out:1000']));
    await settle('sendBatch out:1000');
    await vi.waitFor(() => expect(inFlight()).toEqual(['sendBatch out:500']));
    await settle('sendBatch out:500');
    await vi.waitFor(() => expect(inFlight()).toEqual(['sendOffsets']));
    expect(at.step).toBe('offsets');
    await settle('sendOffsets');
    await settle('commit');
    await done;
    expect(calls).toEqual(['sendBatch out:1000', 'sendBatch out:500', 'sendOffsets', 'commit']);
    expect(at.step).toBe('commit');
  });

  it('a failed send throws with step send; no offsets, no commit', async () => {
    const { tx, calls, settle } = heldTransaction();
    const at = { step: 'begin' as TransactionStep };
    const done = fillAndCommit(tx, [{ topic: 'out', messages: [msg(1)] }], offsetsOf, at).catch((e: unknown) => e);
    const failure = kafkaError('REQUEST_TIMED_OUT');
    await settle('sendBatch out:1', failure);
    expect(await done).toBe(failure);
    await flushPromises();
    expect(at.step).toBe('send');
    expect(calls).toEqual(['sendBatch out:1']);
  });

  it('failed offsets throw with step offsets; no commit', async () => {
    const { tx, calls, settle } = heldTransaction();
    const at = { step: 'begin' as TransactionStep };
    const done = fillAndCommit(tx, [{ topic: 'out', messages: [msg(1)] }], offsetsOf, at).catch((e: unknown) => e);
    await settle('sendBatch out:1');
    const failure = kafkaError('ILLEGAL_GENERATION');
    await settle('sendOffsets', failure);
    expect(await done).toBe(failure);
    await flushPromises();
    expect(at.step).toBe('offsets');
    expect(calls).toEqual(['sendBatch out:1', 'sendOffsets']);
  });
});

describe('PartitionProducers', () => {
  it('acquire fences first (an empty transaction begun and aborted), then reads the committed offset', async () => {
    const { producers, last } = fakeProducers({ 3: '42' });
    const lease = await producers.acquire(3);
    expect(lease).toEqual({ partition: 3, committedOffset: 42n });
    expect(last().transactionalId).toBe('tx-g-in-3');
    expect(last().connected).toBe(true);
    expect(last().txs.map((t) => t.calls)).toEqual([['abort']]);
    expect(producers.has(3)).toBe(true);
  });

  it('a partition with nothing committed has no committed offset', async () => {
    const { producers } = fakeProducers({ 0: '-1' });
    expect((await producers.acquire(0)).committedOffset).toBeUndefined();
    expect((await producers.acquire(1)).committedOffset).toBeUndefined();
  });

  it('commits outputs, dead letters and the input offset in one transaction, sliced under the message limit', async () => {
    const { producers, last, results } = fakeProducers();
    await producers.acquire(2);
    await producers.commit(commitOf(2, 1_500, 2, 1_502n));
    const tx = last().txs[1] as FakeTx;
    expect(tx.calls).toEqual(['sendBatch out:1000', 'sendBatch out:500,dlq:2', 'sendOffsets g in/2@1502', 'commit']);
    expect(results).toEqual(['committed']);
  });

  it('aborts on a failed send, drops the producer (the retry gets a new epoch: no sequence reused), and reports TRANSACTION_FAILED (transient)', async () => {
    const { producers, made, last, results } = fakeProducers();
    await producers.acquire(0);
    last().fail.push({ step: 'sendBatch', error: kafkaError('REQUEST_TIMED_OUT') });
    const err = await producers.commit(commitOf(0, 3, 0, 3n)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TRANSACTION_FAILED', message: expect.stringContaining('REQUEST_TIMED_OUT') });
    expect((last().txs[1] as FakeTx).calls).toEqual(['sendBatch out:3', 'abort']);
    expect(results).toEqual(['aborted']);
    expect(producers.has(0)).toBe(false);
    expect((made[0] as FakeProducer).disconnects).toBe(1);
    await producers.acquire(0);
    expect(made).toHaveLength(2);
  });

  it('drops a producer that can neither commit nor abort; the next acquire makes (and fences with) a new one', async () => {
    const { producers, made } = fakeProducers();
    await producers.acquire(0);
    const first = made[0] as FakeProducer;
    first.fail.push({ step: 'commit', error: kafkaError('COORDINATOR_NOT_AVAILABLE' ) }, { step: 'abort', error: new Error('connection closed') });
    await expect(producers.commit(commitOf(0, 1, 0, 1n))).rejects.toMatchObject({ code: 'TRANSACTION_FAILED' });
    expect(producers.has(0)).toBe(false);
    expect(first.disconnects).toBe(1);
    await producers.acquire(0);
    expect(made).toHaveLength(2);
    expect((made[1] as FakeProducer).txs.map((t) => t.calls)).toEqual([['abort']]);
  });

  it.each(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID'])('%s (after a broker failover): no abort, the producer is dropped, TRANSACTION_FAILED; the next acquire makes a new one', async (type) => {
    const { producers, made, results } = fakeProducers();
    await producers.acquire(2);
    const first = made[0] as FakeProducer;
    first.fail.push({ step: 'sendBatch', error: kafkaError(type) });
    await expect(producers.commit(commitOf(2, 1, 0, 4n))).rejects.toMatchObject({ code: 'TRANSACTION_FAILED', message: expect.stringContaining(type) });
    expect((first.txs[1] as FakeTx).calls).toEqual(['sendBatch out:1']);
    expect(results).toEqual([]);
    expect(producers.has(2)).toBe(false);
    expect(first.disconnects).toBe(1);
    await producers.acquire(2);
    expect(made).toHaveLength(2);
  });

  it.each(['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH'])('%s: no abort, the producer is dropped, PRODUCER_FENCED (re-acquire)', async (type) => {
    const { producers, last, results } = fakeProducers();
    await producers.acquire(5);
    last().fail.push({ step: 'sendOffsets', error: kafkaError(type) });
    await expect(producers.commit(commitOf(5, 1, 1, 9n))).rejects.toMatchObject({ code: 'PRODUCER_FENCED', message: expect.stringContaining('tx-g-in-5') });
    expect((last().txs[1] as FakeTx).calls).toEqual(['sendBatch out:1,dlq:1', 'sendOffsets g in/5@9']);
    expect(results).toEqual([]);
    await vi.waitFor(() => expect(producers.has(5)).toBe(false));
  });

  it('a missing ACL is KAFKA_NOT_AUTHORIZED (fatal, never retried as a transaction) naming the operation and the resource', async () => {
    const { producers, last } = fakeProducers();
    await producers.acquire(1);
    last().fail.push({ step: 'sendBatch', error: kafkaError('TOPIC_AUTHORIZATION_FAILED') });
    await expect(producers.commit(commitOf(1, 1, 1, 2n))).rejects.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED', kind: 'fatal', message: expect.stringContaining("needs Write on topic 'out' or 'dlq'") });
    await producers.acquire(1);
    last().fail.push({ step: 'sendOffsets', error: kafkaError('GROUP_AUTHORIZATION_FAILED') });
    await expect(producers.commit(commitOf(1, 1, 0, 2n))).rejects.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED', message: expect.stringContaining("Read on group 'g'") });
    const denied = kafkaError('TRANSACTIONAL_ID_AUTHORIZATION_FAILED');
    const kafka = { producer: () => Object.assign(new FakeProducer('x'), { transaction: async () => Promise.reject(denied) }) as unknown as TransactionalProducer };
    const refusing = new PartitionProducers({ ...baseOptions(), kafka, principal: 'User:scorer' });
    await expect(refusing.acquire(4)).rejects.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED', message: expect.stringContaining("User:scorer needs Write on transactional id 'tx-g-in-4'") });
  });

  it('a fenced error nested in a kafkajs retry error is still recognised', async () => {
    const { producers, last } = fakeProducers();
    await producers.acquire(1);
    const nested = Object.assign(new Error('retries exhausted'), { originalError: kafkaError('PRODUCER_FENCED') });
    last().fail.push({ step: 'commit', error: nested });
    await expect(producers.commit(commitOf(1, 1, 0, 2n))).rejects.toMatchObject({ code: 'PRODUCER_FENCED' });
  });

  it('commit without an acquired producer is PRODUCER_FENCED; a bug is rethrown as it is', async () => {
    const { producers, last } = fakeProducers();
    await expect(producers.commit(commitOf(7, 1, 0, 1n))).rejects.toMatchObject({ code: 'PRODUCER_FENCED' });
    await producers.acquire(7);
    last().fail.push({ step: 'sendBatch', error: new TypeError('bug') });
    await expect(producers.commit(commitOf(7, 1, 0, 1n))).rejects.toBeInstanceOf(TypeError);
  });

  it('concurrent acquires of one partition share one producer', async () => {
    const { producers, made } = fakeProducers();
    await Promise.all([producers.acquire(4), producers.acquire(4)]);
    expect(made).toHaveLength(1);
    await producers.releaseAll();
    expect((made[0] as FakeProducer).disconnects).toBe(1);
    expect(producers.has(4)).toBe(false);
  });
});
