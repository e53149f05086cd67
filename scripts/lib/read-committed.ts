/**
 * Reading topics back after a run, as a downstream read_committed consumer sees them: from the
 * beginning, every batch to the caller, until the caller has what it needs. Used by the demo's
 * exactly-once read-back and the benchmark's output check.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Batch, Kafka } from 'kafkajs';

export interface ReadCommittedOptions {
  groupId: string;
  topics: string[];
  /** Called with each fetched batch of committed records. */
  onBatch: (batch: Batch) => void;
  /**
   * Asked every `pollMs`: true ends the read. `quiet` says nothing new arrived for `quietMs` (so
   * everything expected is in, and a duplicate would already have shown up).
   */
  done: (quiet: boolean) => boolean;
  quietMs: number;
  /** The read ends here whatever `done` says. */
  timeoutMs: number;
  signal?: AbortSignal;
  pollMs?: number;
  maxWaitTimeInMs?: number;
  partitionsConsumedConcurrently?: number;
}

/** Reads until `done`; resolves to true when `done` ended it, false on the timeout or an abort. */
export async function readCommitted(kafka: Kafka, o: ReadCommittedOptions): Promise<boolean> {
  const consumer = kafka.consumer({ groupId: o.groupId, readUncommitted: false, maxWaitTimeInMs: o.maxWaitTimeInMs ?? 100, maxBytesPerPartition: 4 << 20 });
  let lastArrival = Date.now();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: o.topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 1,
      eachBatch: async ({ batch }) => {
        lastArrival = Date.now();
        o.onBatch(batch);
      },
    });
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      if (o.done(Date.now() - lastArrival > o.quietMs)) return true;
      if (o.signal?.aborted === true || Date.now() > deadline) return false;
      await sleep(o.pollMs ?? 50);
    }
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
}
