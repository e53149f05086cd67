/**
 * Fixes kafkajs 2.2.4's read_committed filtering, which can deliver records of ABORTED
 * transactions. Import this module before anything imports `kafkajs` (src/clients.ts does).
 *
 * kafkajs (src/consumer/filterAbortedMessages.js) assumes the broker lists a fetch's aborted
 * transactions sorted by first offset and looks only at the head of that list, marking at most
 * one transaction per record. Kafka does not sort the list: we observed
 *   [{pid 1014, first 21}, {pid 1012, first 34}, {pid 1014, first 85}, {pid 1012, first 59}, {pid 1010, first 50}]
 * and kafkajs then delivered the aborted records 50.. of producer 1010 to a read_committed
 * consumer. The Java client keeps the list in a priority queue by first offset
 * (clients/.../internals/CompletedFetch.java, abortedTransactions); this does the same.
 * Found by test/integration/exactly-once.test.ts, whose dead-letter topic is written by several
 * transactional producers at once; a Java read_committed consumer of the same topic showed every
 * key exactly once, so the broker side was right and only the kafkajs reader was wrong.
 */
import { createRequire } from 'node:module';

interface FetchedMessage {
  offset: string;
  key?: Buffer | null;
  isControlRecord?: boolean;
  batchContext: { producerId: string | number; inTransaction: boolean };
}
interface AbortedTransaction {
  producerId: string | number;
  firstOffset: string | number;
}

const ABORT_MARKER_KEY = Buffer.from([0, 0, 0, 0]); // control record key: version 0, type 0 (ABORT)

/** Drops records that belong to aborted transactions; keeps everything else, control records included. */
export function filterAbortedMessages({ messages, abortedTransactions }: { messages: FetchedMessage[]; abortedTransactions?: AbortedTransaction[] }): FetchedMessage[] {
  if (abortedTransactions === undefined || abortedTransactions.length === 0) return messages;
  const pending = [...abortedTransactions].sort((a, b) => {
    const d = BigInt(a.firstOffset) - BigInt(b.firstOffset);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  });
  const abortedProducers = new Set<string>();
  let next = 0;
  return messages.filter((message) => {
    const offset = BigInt(message.offset);
    // Every aborted transaction that has begun by this offset, not just the first one.
    while (next < pending.length && offset >= BigInt((pending[next] as AbortedTransaction).firstOffset)) {
      abortedProducers.add(String((pending[next] as AbortedTransaction).producerId));
      next++;
    }
    const producerId = String(message.batchContext.producerId);
    if (message.isControlRecord === true && message.key !== null && message.key !== undefined && Buffer.from(message.key).equals(ABORT_MARKER_KEY)) {
      abortedProducers.delete(producerId); // the abort marker ends that producer's aborted transaction
      return true;
    }
    return !(message.batchContext.inTransaction && abortedProducers.has(producerId));
  });
}

const require = createRequire(import.meta.url);
const target = require.resolve('kafkajs/src/consumer/filterAbortedMessages.js');
const dependent = require.resolve('kafkajs/src/consumer/batch.js');
if (require.cache[dependent] !== undefined && require.cache[target]?.exports !== filterAbortedMessages) {
  // kafkajs captured the buggy function already; running on would silently read aborted records.
  throw new Error('kafkajs-fix must be imported before kafkajs (see src/kafkajs-fix.ts)');
}
const version = (require('kafkajs/package.json') as { version: string }).version;
if (version !== '2.2.4') {
  throw new Error(`src/kafkajs-fix.ts patches kafkajs 2.2.4 internals, but kafkajs ${version} is installed: check whether the bug is fixed there and update or remove the patch`);
}
require(target);
const cached = require.cache[target];
if (cached === undefined) throw new Error(`kafkajs-fix: ${target} did not load`);
cached.exports = filterAbortedMessages;
