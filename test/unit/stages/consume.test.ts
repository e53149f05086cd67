/**
 * The consume stage on a fake group consumer, fake leases and a fake chunk handler: the offset
 * arithmetic after fencing, chunking, pause/seek/backoff after failures, the backpressure gate,
 * and revocation. The handler decides each chunk's fate; nothing here talks to Kafka.
 */
import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ScorerError } from '../../../src/errors.js';
import { createLogger } from '../../../src/ops/logger.js';
import { createMetrics } from '../../../src/ops/metrics.js';
import type { Chunk, ChunkResult } from '../../../src/stages/chunk.js';
import { type ConsumeOptions, ConsumeStage, type GroupConsumer } from '../../../src/stages/consume.js';
import type { PartitionLease, PartitionLeases } from '../../../src/stages/produce.js';

const EVENTS = { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash', REBALANCING: 'consumer.rebalancing' };

/** Records every call; `eachBatch` is what kafkajs would call per fetched partition batch. */
class FakeConsumer {
  readonly calls: string[] = [];
  readonly listeners = new Map<string, (e: { payload: unknown }) => void>();
  eachBatch: ((p: EachBatchPayload) => Promise<void>) | undefined;
  readonly events = EVENTS;
  on(event: string, fn: (e: { payload: unknown }) => void) {
    this.listeners.set(event, fn);
    return () => undefined;
  }
  async connect() {
    this.calls.push('connect');
  }
  async subscribe() {
    this.calls.push('subscribe');
  }
  async run({ eachBatch }: { eachBatch: (p: EachBatchPayload) => Promise<void> }) {
    this.eachBatch = eachBatch;
  }
  async disconnect() {
    this.calls.push('disconnect');
  }
  pause(tp: { topic: string; partitions: number[] }[]) {
    this.calls.push(`pause ${tp[0]?.partitions.join(',')}`);
  }
  /** Set: resume throws it, as kafkajs does while it restarts a crashed consumer. */
  resumeRefusal: Error | undefined;
  resume(tp: { topic: string; partitions: number[] }[]) {
    if (this.resumeRefusal !== undefined) throw this.resumeRefusal;
    this.calls.push(`resume ${tp[0]?.partitions.join(',')}`);
  }
  seek({ partition, offset }: { partition: number; offset: string }) {
    this.calls.push(`seek ${partition}@${offset}`);
  }
  join(partitions: number[]) {
    this.listeners.get(EVENTS.GROUP_JOIN)?.({ payload: { memberId: 'm-1', memberAssignment: { in: partitions } } });
  }
}

class FakeLeases implements PartitionLeases {
  readonly held = new Set<number>();
  readonly acquired: number[] = [];
  readonly released: number[] = [];
  committed = new Map<number, bigint | undefined>();
  has(p: number) {
    return this.held.has(p);
  }
  async acquire(p: number): Promise<PartitionLease> {
    this.acquired.push(p);
    this.held.add(p);
    return { partition: p, committedOffset: this.committed.get(p) };
  }
  async release(p: number) {
    this.released.push(p);
    this.held.delete(p);
  }
  async releaseAll() {
    for (const p of [...this.held]) await this.release(p);
  }
}

const msg = (offset: number): KafkaMessage => ({ key: null, value: Buffer.from('v'), offset: String(offset), timestamp: '1700000000000', attributes: 0, headers: {} }) as KafkaMessage;

/** One fetched batch of partition `partition` with offsets from..to, and what kafkajs was told. */
function payload(partition: number, from: number, to: number, { running = (): boolean => true, stale = (): boolean => false }: { running?: () => boolean; stale?: () => boolean } = {}) {
  const resolved: string[] = [];
  let heartbeats = 0;
  const messages = Array.from({ length: to - from + 1 }, (_, i) => msg(from + i));
  const p = {
    batch: { topic: 'in', partition, messages, lastOffset: () => String(to), offsetLag: () => '0' },
    resolveOffset: (o: string) => resolved.push(o),
    heartbeat: async () => {
      heartbeats++;
    },
    isRunning: running,
    isStale: stale,
  } as unknown as EachBatchPayload;
  return { p, resolved, heartbeats: () => heartbeats };
}

type Handle = (chunk: Chunk) => Promise<ChunkResult>;
const commitAll: Handle = async ({ messages }) => ({ scored: messages.length, deadLettered: {}, eventTimes: [], nextOffset: BigInt((messages.at(-1) as KafkaMessage).offset) + 1n, versions: [] });

async function stage(handle: Handle = commitAll, opts: Partial<ConsumeOptions> = {}) {
  const consumer = new FakeConsumer();
  const leases = new FakeLeases();
  const chunks: { partition: number; offsets: string[] }[] = [];
  const metrics = createMetrics();
  const s = new ConsumeStage({
    consumer: consumer as unknown as GroupConsumer,
    topic: 'in',
    handler: {
      process: (c) => {
        chunks.push({ partition: c.partition, offsets: c.messages.map((m) => m.offset) });
        return handle(c);
      },
    },
    leases,
    circuit: { cooldownMs: 30_000 },
    metrics,
    logger: createLogger('silent'),
    partitionsConsumedConcurrently: 4,
    chunkMaxRecords: 1_000,
    retry: { initialDelayMs: 200, maxDelayMs: 10_000 },
    inFlight: { max: 50_000, resume: 25_000 },
    onChunk: () => undefined,
    onCrash: () => undefined,
    ...opts,
  });
  await s.start();
  const eachBatch = (p: EachBatchPayload) => (consumer.eachBatch as (p: EachBatchPayload) => Promise<void>)(p);
  return { s, consumer, leases, chunks, metrics, eachBatch };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ConsumeStage: offsets', () => {
  it('fences first, then processes only records at or above the committed offset, and resolves each chunk', async () => {
    const t = await stage();
    t.leases.committed.set(2, 5n);
    const b = payload(2, 3, 8);
    await t.eachBatch(b.p);
    expect(t.leases.acquired).toEqual([2]);
    expect(t.chunks).toEqual([{ partition: 2, offsets: ['5', '6', '7', '8'] }]);
    expect(b.resolved).toEqual(['4', '8']); // the skipped records, then the committed chunk
  });

  it('a batch entirely below the committed offset is resolved without processing', async () => {
    const t = await stage();
    t.leases.committed.set(0, 20n);
    const b = payload(0, 10, 14);
    await t.eachBatch(b.p);
    expect(t.chunks).toEqual([]);
    expect(b.resolved).toEqual(['14']);
  });

  it('the lease is taken once per assignment; nothing committed yet means everything is processed', async () => {
    const t = await stage();
    await t.eachBatch(payload(1, 0, 2).p);
    await t.eachBatch(payload(1, 3, 4).p);
    expect(t.leases.acquired).toEqual([1]);
    expect(t.chunks.map((c) => c.offsets)).toEqual([['0', '1', '2'], ['3', '4']]);
  });

  it('cuts a large batch into chunks of chunkMaxRecords, one commit (and heartbeat) each', async () => {
    const t = await stage(commitAll, { chunkMaxRecords: 2 });
    const b = payload(0, 0, 4);
    await t.eachBatch(b.p);
    expect(t.chunks.map((c) => c.offsets)).toEqual([['0', '1'], ['2', '3'], ['4']]);
    expect(b.resolved).toEqual(['1', '3', '4']);
    expect(b.heartbeats()).toBe(3);
  });

  it('after PRODUCER_FENCED the partition is re-acquired and the new committed offset honoured', async () => {
    vi.useFakeTimers();
    let fenced = true;
    const t = await stage(async (c) => {
      if (fenced) {
        fenced = false;
        throw new ScorerError('PRODUCER_FENCED', 'another owner');
      }
      return commitAll(c);
    });
    t.leases.committed.set(0, 0n);
    await t.eachBatch(payload(0, 0, 9).p);
    t.leases.held.delete(0); // the produce stage dropped the fenced producer
    // Meanwhile the new owner committed up to 6: the re-acquired lease says so.
    t.leases.committed.set(0, 6n);
    expect(t.consumer.calls).toContain('pause 0');
    expect(t.consumer.calls.some((c) => c.startsWith('seek'))).toBe(false); // offset unknown until re-acquired
    await vi.advanceTimersByTimeAsync(10_000);
    const again = payload(0, 0, 9);
    await t.eachBatch(again.p);
    expect(t.leases.acquired).toEqual([0, 0]);
    expect(t.chunks.at(-1)?.offsets).toEqual(['6', '7', '8', '9']);
    expect(again.resolved).toEqual(['5', '9']);
  });
});

describe('ConsumeStage: failures', () => {
  it('a transient failure pauses the partition, seeks back to the first uncommitted record, resumes after backoff', async () => {
    vi.useFakeTimers();
    let fail = 1;
    const t = await stage(async (c) => {
      if (c.messages[0]?.offset === '3' && fail-- > 0) throw new ScorerError('TRANSACTION_FAILED', 'aborted');
      return commitAll(c);
    }, { chunkMaxRecords: 3 });
    const b = payload(0, 0, 5);
    await t.eachBatch(b.p);
    expect(b.resolved).toEqual(['2']); // the first chunk committed, the second not
    expect(t.consumer.calls).toEqual(['connect', 'subscribe', 'pause 0', 'seek 0@3']);
    expect(await t.metrics.retries.get()).toMatchObject({ values: [{ labels: { stage: 'produce', code: 'TRANSACTION_FAILED' }, value: 1 }] });
    expect(t.s.progress(0).paused).toBe(true);
    // Backoff of the first failure: between half of and the full initial delay (200 ms, jittered).
    await vi.advanceTimersByTimeAsync(99);
    expect(t.consumer.calls).not.toContain('resume 0');
    await vi.advanceTimersByTimeAsync(101);
    expect(t.consumer.calls).toContain('resume 0');
    expect(t.s.progress(0).paused).toBe(false);
  });

  it('a resume that kafkajs refuses while it restarts its consumer is logged, not thrown from the timer (it would end the process)', async () => {
    vi.useFakeTimers();
    const t = await stage(async () => {
      throw new ScorerError('TRANSACTION_FAILED', 'aborted');
    });
    await t.eachBatch(payload(0, 0, 3).p);
    t.consumer.resumeRefusal = new Error('Consumer group was not initialized, consumer#run must be called first');
    await vi.advanceTimersByTimeAsync(1_000); // would throw out of the timer without the guard
    expect(t.s.progress(0).paused).toBe(false);
    expect(t.consumer.calls).not.toContain('resume 0');
  });

  it('a whole-batch inference failure pauses for the circuit cool-down, not the short backoff', async () => {
    vi.useFakeTimers();
    const t = await stage(async () => Promise.reject(new ScorerError('BATCH_INFERENCE_FAILED', 'model broken')), { circuit: { cooldownMs: 7_000 } });
    await t.eachBatch(payload(0, 0, 1).p);
    await vi.advanceTimersByTimeAsync(6_999);
    expect(t.consumer.calls).not.toContain('resume 0');
    await vi.advanceTimersByTimeAsync(1);
    expect(t.consumer.calls).toContain('resume 0');
  });

  it('backoff doubles with consecutive failures (200, 400, 800 ms at the top of the jitter) and resets after a success', async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(1); // jitter at its top: each delay is its ceiling
    let failures = 3;
    const t = await stage(async (c) => {
      if (failures-- > 0) throw new ScorerError('KAFKA_UNAVAILABLE', 'broker down');
      return commitAll(c);
    });
    const resumes = () => t.consumer.calls.filter((c) => c === 'resume 0').length;
    for (const [i, delay] of [200, 400, 800].entries()) {
      await t.eachBatch(payload(0, 0, 0).p);
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(resumes()).toBe(i);
      await vi.advanceTimersByTimeAsync(1);
      expect(resumes()).toBe(i + 1);
    }
    await t.eachBatch(payload(0, 0, 0).p); // succeeds
    failures = 1;
    await t.eachBatch(payload(0, 1, 1).p); // fails again: back to the first delay
    await vi.advanceTimersByTimeAsync(200);
    expect(resumes()).toBe(4);
    vi.restoreAllMocks();
  });

  it.each([
    ['a bug', new TypeError('x is undefined')],
    ['a lost model', new ScorerError('MODEL_UNAVAILABLE', 'every worker died')],
    ['a permanent error that escaped its record', new ScorerError('INVALID_FEATURE', 'not caught')],
  ])('%s is not retried: it crashes the consumer (kafkajs restarts or the process exits)', async (_what, error) => {
    const t = await stage(async () => Promise.reject(error));
    await expect(t.eachBatch(payload(0, 0, 0).p)).rejects.toBe(error);
    expect(t.consumer.calls).not.toContain('pause 0');
  });
});

describe('ConsumeStage: backpressure and revocation', () => {
  it('holds a chunk while the rows in flight exceed the high-water mark, and admits it at the low-water mark', async () => {
    let releaseFirst: () => void = () => undefined;
    const order: string[] = [];
    const t = await stage(async (c) => {
      order.push(`start ${c.partition}`);
      if (c.partition === 0) await new Promise<void>((r) => (releaseFirst = r));
      order.push(`end ${c.partition}`);
      return commitAll(c);
    }, { inFlight: { max: 10, resume: 5 } });
    const first = t.eachBatch(payload(0, 0, 7).p); // 8 rows in flight
    await vi.waitFor(() => expect(order).toEqual(['start 0']));
    expect(await t.metrics.inFlightRows.get()).toMatchObject({ values: [{ value: 8 }] });
    const second = t.eachBatch(payload(1, 0, 4).p); // 8 + 5 > 10: held
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['start 0']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(order).toEqual(['start 0', 'end 0', 'start 1', 'end 1']);
    expect(await t.metrics.inFlightRows.get()).toMatchObject({ values: [{ value: 0 }] });
  });

  it('stopping while a chunk is held at the gate leaves it unprocessed and uncommitted (only in-flight work drains)', async () => {
    let releaseFirst: () => void = () => undefined;
    const t = await stage(async (c) => {
      if (c.partition === 0) await new Promise<void>((r) => (releaseFirst = r));
      return commitAll(c);
    }, { inFlight: { max: 10, resume: 5 } });
    const first = t.eachBatch(payload(0, 0, 7).p);
    await vi.waitFor(() => expect(t.chunks).toHaveLength(1));
    const held = payload(1, 0, 4);
    const second = t.eachBatch(held.p);
    const stopping = t.s.stop();
    releaseFirst();
    await Promise.all([first, second, stopping]);
    expect(t.chunks.map((c) => c.partition)).toEqual([0]);
    expect(held.resolved).toEqual([]);
  });

  it('a chunk larger than the high-water mark is admitted when nothing else is in flight', async () => {
    const t = await stage(commitAll, { inFlight: { max: 2, resume: 1 } });
    await t.eachBatch(payload(0, 0, 9).p);
    expect(t.chunks).toHaveLength(1);
  });

  it('stops between chunks when the batch goes stale (revoked mid-batch), committing nothing more', async () => {
    let stale = false;
    const t = await stage(async (c) => {
      stale = true; // a rebalance revoked the partition while this chunk ran
      return commitAll(c);
    }, { chunkMaxRecords: 2 });
    const b = payload(0, 0, 5, { stale: () => stale });
    await t.eachBatch(b.p);
    expect(t.chunks.map((c) => c.offsets)).toEqual([['0', '1']]);
    expect(b.resolved).toEqual(['1']);
  });

  it('a new assignment releases the revoked partitions\' producers and forgets their state', async () => {
    vi.useFakeTimers();
    const t = await stage(async () => Promise.reject(new ScorerError('TRANSACTION_FAILED', 'aborted')));
    t.consumer.join([0, 1, 2]);
    expect(t.s.joined).toBe(true);
    await t.eachBatch(payload(2, 0, 0).p); // partition 2 paused after a failure
    expect(t.s.progress(2).paused).toBe(true);
    t.consumer.join([0, 1]);
    expect(t.leases.released).toEqual([2]);
    expect(t.s.progress(2)).toEqual({ oldestPendingAt: undefined, paused: false });
    expect(await t.metrics.partitionsAssigned.get()).toMatchObject({ values: [{ value: 2 }] });
    await vi.advanceTimersByTimeAsync(20_000); // the revoked partition's resume timer was cleared
    expect(t.consumer.calls).not.toContain('resume 2');
  });

  it('stop() disconnects, releases every producer and is idempotent', async () => {
    const t = await stage();
    await t.eachBatch(payload(0, 0, 0).p);
    await Promise.all([t.s.stop(), t.s.stop()]);
    expect(t.consumer.calls.filter((c) => c === 'disconnect')).toHaveLength(1);
    expect(t.leases.held.size).toBe(0);
  });
});
