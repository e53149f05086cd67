/**
 * Helpers for the three-node failover tests: which node leads what (input partitions, the
 * transaction coordinator's partition of a transactional id), waiting for full replication
 * again, and a watcher that samples a scorer's readiness and progress throughout a failover.
 */
import type { Admin } from 'kafkajs';
import { inject } from 'vitest';
import { stackUp, stopComponent, nodeComponent } from '../../scripts/stack/stack.js';
import { testKafka, waitFor } from '../helpers/kafka.js';
import { type ScorerProcess, processedSoFar } from '../helpers/scorer.js';

/** Java's String.hashCode, which Kafka uses to map a transactional id to a __transaction_state partition. */
function javaHashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}

/** Kafka's Utils.abs(hash) % partitions (TransactionStateManager.partitionFor). */
export const coordinatorPartition = (transactionalId: string, partitions: number): number => {
  const h = javaHashCode(transactionalId);
  return (h === -2147483648 ? 0 : Math.abs(h)) % partitions;
};

export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/** Partition -> leader node id of each topic. */
export async function leaders(admin: Admin, topic: string): Promise<Map<number, number>> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return new Map((topics[0]?.partitions ?? []).map((p) => [p.partitionId, p.leader]));
}

/** Resolves once every partition of the topics has all `replicas` in sync again (after a node came back). */
export async function waitForFullIsr(topics: string[], replicas = 3, timeoutMs = 180_000): Promise<void> {
  await withAdmin((admin) =>
    waitFor(
      `every partition of ${topics.join(', ')} to have ${replicas} in-sync replicas`,
      async () => {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics });
        return meta.every((t) => t.partitions.every((p) => p.isr.length >= replicas && p.leader >= 0));
      },
      timeoutMs,
      500,
    ),
  );
}

const quiet = () => undefined;

/** SIGKILLs (or, graceful, SIGTERMs) Kafka node `id` of this line's cluster. */
export const stopNode = (id: number, { kill }: { kill: boolean }) => stopComponent(nodeComponent(id, inject('stack')), inject('stack'), { kill });
/** Starts whatever of the cluster is not running (the stopped node) and waits until it is in the cluster. */
export const restartNodes = () => stackUp(quiet, inject('stack'));

const errorText = (err: unknown): string => {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return `${String(err)}${cause ? ` (${cause.code ?? cause.message ?? ''})` : ''}`;
};

/**
 * GET /readyz: the status, or the network error. A request on a kept-alive socket the server has
 * just closed fails without reaching it (undici, when a sample comes later than the server's
 * keep-alive timeout on a loaded machine): one such failure is asked again on a new connection.
 */
async function readyz(port: number): Promise<number | string> {
  const ask = () => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status);
  return ask().catch(() => fetch(`http://127.0.0.1:${port}/readyz`, { headers: { connection: 'close' } }).then((r) => r.status, errorText));
}

export interface Watch {
  /** Samples with /readyz not 200 (time since the watch started, status). */
  notReady: { atMs: number; status: number | string }[];
  /** Longest time the committed count did not move while the watch ran (ms). */
  longestStallMs(): number;
  stop(): Promise<void>;
}

/**
 * Samples the scorer every `everyMs`: /readyz, and the count of committed records. A stall is
 * the time between two increases of that count; the input stream must be flowing for it to mean
 * anything, which the tests ensure (they stop the stream only after stopping the watch).
 */
export function watchScorer(p: ScorerProcess, everyMs = 100): Watch {
  const started = Date.now();
  const notReady: Watch['notReady'] = [];
  let lastCount = -1;
  let lastMoved = Date.now();
  let longest = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const status = await readyz(p.port);
      if (status !== 200) notReady.push({ atMs: Date.now() - started, status });
      const count = await processedSoFar(p).catch(() => lastCount);
      const now = Date.now();
      if (count > lastCount) {
        longest = Math.max(longest, now - lastMoved);
        lastCount = count;
        lastMoved = now;
      }
      await new Promise((r) => setTimeout(r, everyMs)); // the sampling period, not a wait for a result
    }
  })();
  return {
    notReady,
    longestStallMs: () => Math.max(longest, Date.now() - lastMoved),
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
