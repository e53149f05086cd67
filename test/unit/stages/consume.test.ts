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
import { type Chunk, type ChunkResult, ChunkSuperseded } from '../../../src/stages/chunk.js';
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
  const crashes: unknown[] = [];
  const s = new ConsumeStage({
    consumer: consumer as unknown as GroupConsumer,
    topic: 'in',
    handler: {
      // As the chunk processor: scored at once, committed only after the partition's chunk before it (Chunk.after).
      process: async (c) => {
        chunks.push({ partition: c.partition, offsets: c.messages.map((m) => m.offset) });
        const result = await handle(c);
        if (c.after !== undefined && !(await c.after)) throw new ChunkSuperseded(c.partition);
        return result;
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
    onCrash: (err) => crashes.push(err),
    ...opts,
  });
  await s.start();
  /** What kafkajs calls per fetched batch: returns once its chunks are handed over. */
  const handOver = (p: EachBatchPayload) => (consumer.eachBatch as (p: EachBatchPayload) => Promise<void>)(p);
  /** One batch, and everything handed over settled (committed or failed). */
  const eachBatch = async (p: EachBatchPayload) => {
    await handOver(p);
    await s.settled();
  };
  return { s, consumer, leases, chunks, metrics, eachBatch, handOver, crashes };
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
    expect(t.consumer.calls).toContain('seek 0@0'); // ours; the new owner's is read when re-acquired
    await vi.advanceTimersByTimeAsync(10_000);
    const again = payload(0, 0, 9);
    await t.eachBatch(again.p);
    expect(t.leases.acquired).toEqual([0, 0]);
    expect(t.chunks.at(-1)?.offsets).toEqual(['6', '7', '8', '9']);
    expect(again.resolved).toEqual(['5', '9']);
  });
});

describe('ConsumeStage: fetching while chunks commit', () => {
  /** A handler whose chunks each wait for `finish(firstOffset)` (or `fail`). */
  function gated() {
    const waiting = new Map<string, { resolve: () => void; reject: (e: unknown) => void }>();
    const handle: Handle = (c) =>
      new Promise<void>((resolve, reject) => waiting.set((c.messages[0] as KafkaMessage).offset, { resolve, reject })).then(() => commitAll(c));
    const started = (offset: number) => waiting.has(String(offset));
    const finish = (offset: number) => waiting.get(String(offset))?.resolve();
    const fail = (offset: number, err: unknown) => waiting.get(String(offset))?.reject(err);
    return { handle, started, finish, fail };
  }

  it('hands a chunk over and returns before it commits: the offset is resolved, so kafkajs fetches on', async () => {
    const g = gated();
    const t = await stage(g.handle);
    const b = payload(0, 0, 4);
    await t.handOver(b.p);
    expect(g.started(0)).toBe(true);
    expect(b.resolved).toEqual(['4']);
    expect(await t.metrics.inFlightRows.get()).toMatchObject({ values: [{ value: 5 }] });
    expect(t.s.progress(0).oldestPendingAt).toBe(1700000000000);
    g.finish(0);
    await t.s.settled();
    expect(await t.metrics.inFlightRows.get()).toMatchObject({ values: [{ value: 0 }] });
    expect(t.s.progress(0).oldestPendingAt).toBeUndefined();
  });

  it('keeps at most two chunks of a partition in the pipeline: the third waits until the first settles', async () => {
    const g = gated();
    const t = await stage(g.handle, { chunkMaxRecords: 2 });
    const b = payload(0, 0, 5);
    const handing = t.handOver(b.p);
    await vi.waitFor(() => expect(g.started(2)).toBe(true));
    await new Promise((r) => setImmediate(r));
    expect(g.started(4)).toBe(false);
    expect(b.resolved).toEqual(['1', '3']);
    g.finish(0);
    await vi.waitFor(() => expect(g.started(4)).toBe(true));
    await handing;
    g.finish(2);
    g.finish(4);
    await t.s.settled();
    expect(b.resolved).toEqual(['1', '3', '5']);
  });

  it('a chunk behind a failed one commits nothing and is no second failure; the partition reads both again from the committed offset', async () => {
    vi.useFakeTimers();
    const g = gated();
    const committed: string[] = [];
    const t = await stage(g.handle, { chunkMaxRecords: 3, onChunk: (_p, r) => committed.push(String(r.nextOffset)) });
    t.leases.committed.set(0, 0n);
    await t.handOver(payload(0, 0, 5).p);
    g.finish(3); // scored, but its commit waits for the chunk ahead
    g.fail(0, new ScorerError('TRANSACTION_FAILED', 'aborted'));
    await t.s.settled();
    expect(committed).toEqual([]);
    expect(t.consumer.calls).toEqual(['connect', 'subscribe', 'pause 0', 'seek 0@0']);
    expect(await t.metrics.retries.get()).toMatchObject({ values: [{ labels: { code: 'TRANSACTION_FAILED' }, value: 1 }] });
    // A batch fetched before the pause is dropped (not resolved): the seek reads it again.
    const early = payload(0, 6, 7);
    await t.handOver(early.p);
    expect(early.resolved).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(t.consumer.calls).toContain('resume 0');
    const again = payload(0, 0, 5);
    await t.handOver(again.p);
    g.finish(0);
    g.finish(3);
    await t.s.settled();
    expect(committed).toEqual(['3', '6']);
  });

  it('when a chunk fails while the one ahead still commits, the seek waits for it and the re-read starts after what it committed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const g = gated();
    const t = await stage(g.handle, { chunkMaxRecords: 3 });
    t.leases.committed.set(0, 0n);
    await t.handOver(payload(0, 0, 5).p);
    g.fail(3, new ScorerError('REGISTRY_UNAVAILABLE', 'registry down'));
    await new Promise((r) => setImmediate(r));
    expect(t.consumer.calls).toEqual(['connect', 'subscribe', 'pause 0']); // no seek yet: the chunk ahead may still commit
    g.finish(0);
    await t.s.settled();
    expect(t.consumer.calls).toEqual(['connect', 'subscribe', 'pause 0', 'seek 0@3']);
    await vi.advanceTimersByTimeAsync(200);
    const again = payload(0, 0, 5); // kafkajs may still deliver from before the seek: what is committed is skipped
    await t.handOver(again.p);
    expect(t.chunks.at(-1)?.offsets).toEqual(['3', '4', '5']);
    expect(again.resolved).toEqual(['2', '5']);
    g.finish(3);
    await t.s.settled();
  });

  it("kafkajs's own errors in the batch (a rebalance, from the heartbeat) go back to kafkajs, which rejoins: no crash, no pause", async () => {
    const t = await stage();
    const b = payload(0, 0, 1);
    const rebalancing = Object.assign(new Error('The group is rebalancing, so a rejoin is needed'), { name: 'KafkaJSProtocolError', type: 'REBALANCE_IN_PROGRESS' });
    (b.p as { heartbeat: () => Promise<void> }).heartbeat = async () => Promise.reject(rebalancing);
    await expect(t.handOver(b.p)).rejects.toBe(rebalancing);
    await t.s.settled(); // the chunk handed over before the heartbeat still commits
    expect(t.crashes).toEqual([]);
    expect(t.consumer.calls).not.toContain('pause 0');
    await t.eachBatch(payload(0, 2, 3).p);
    expect(t.chunks.map((c) => c.offsets[0])).toEqual(['0', '2']);
  });

  it('stop() lets the chunks handed over commit before the consumer leaves the group', async () => {
    const g = gated();
    const t = await stage(g.handle);
    await t.handOver(payload(0, 0, 1).p);
    const stopping = t.s.stop();
    await new Promise((r) => setImmediate(r));
    expect(t.consumer.calls).not.toContain('disconnect');
    expect(t.leases.held.size).toBe(1);
    g.finish(0);
    await stopping;
    expect(t.consumer.calls).toContain('disconnect');
    expect(t.leases.held.size).toBe(0);
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
    expect(b.resolved).toEqual(['2', '5']); // both handed over (kafkajs fetches on); the seek below moves kafkajs back
    expect(t.chunks.map((c) => c.offsets[0])).toEqual(['0', '3']); // one attempt each: the first committed
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
  ])('%s is not retried: the consumer stops and the process exits', async (_what, error) => {
    const t = await stage(async () => Promise.reject(error));
    await t.eachBatch(payload(0, 0, 0).p);
    expect(t.crashes).toEqual([error]);
    // kafkajs is told by the next batch, for good (retriable: false), and nothing more is processed.
    await expect(t.eachBatch(payload(1, 0, 0).p)).rejects.toMatchObject({ retriable: false });
    expect(t.chunks.map((c) => c.partition)).toEqual([0]);
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
