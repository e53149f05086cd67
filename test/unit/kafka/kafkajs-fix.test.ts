/**
 * The read_committed filter that replaces kafkajs 2.2.4's (src/kafkajs-fix.ts), on the record
 * layout that made kafkajs deliver aborted records: aborted transactions listed out of offset order.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { filterAbortedMessages } from '../../../src/kafka/kafkajs-fix.js';

const ABORT = Buffer.from([0, 0, 0, 0]);
const COMMIT = Buffer.from([0, 0, 0, 1]);
const rec = (offset: number, producerId: number, key: string) => ({ offset: String(offset), key: Buffer.from(key), batchContext: { producerId: String(producerId), inTransaction: true } });
const ctrl = (offset: number, producerId: number, key: Buffer) => ({ offset: String(offset), key, isControlRecord: true, batchContext: { producerId: String(producerId), inTransaction: true } });

describe('filterAbortedMessages (kafkajs read_committed fix)', () => {
  // Three transactional producers sharing one partition, as the dead-letter topic is.
  const messages = [
    rec(0, 10, 'c0'), ctrl(1, 10, COMMIT),
    rec(2, 14, 'a-14'), rec(3, 12, 'a-12'), ctrl(4, 14, ABORT), ctrl(5, 12, ABORT),
    rec(6, 10, 'a-10'), rec(7, 10, 'a-10b'),
    rec(8, 12, 'c12'), ctrl(9, 12, COMMIT),
    ctrl(10, 10, ABORT),
    rec(11, 10, 'c10-new-epoch'), ctrl(12, 10, COMMIT),
  ];
  // The broker's order is not by first offset (observed on Kafka 3.9): kafkajs only looked at the head.
  const aborted = [
    { producerId: '14', firstOffset: '2' },
    { producerId: '10', firstOffset: '6' },
    { producerId: '12', firstOffset: '3' },
  ];

  it('drops every record of every aborted transaction, whatever order the broker lists them in', () => {
    const kept = filterAbortedMessages({ messages, abortedTransactions: aborted }).filter((m) => m.isControlRecord !== true).map((m) => m.key?.toString());
    expect(kept).toEqual(['c0', 'c12', 'c10-new-epoch']);
  });

  it('the filter kafkajs 2.2.4 ships leaks aborted records on the same input (why the fix exists)', () => {
    // Evaluated from its file: the module cache holds our replacement under that path now.
    const path = createRequire(import.meta.url).resolve('kafkajs/src/consumer/filterAbortedMessages.js');
    const mod = { exports: {} as unknown };
    new Function('require', 'module', 'exports', readFileSync(path, 'utf8'))(createRequire(path), mod, mod.exports);
    const original = mod.exports as typeof filterAbortedMessages;
    const kept = original({ messages, abortedTransactions: aborted }).filter((x) => x.isControlRecord !== true).map((x) => x.key?.toString());
    expect(kept.filter((k) => k?.startsWith('a-'))).not.toEqual([]);
  });

  it('keeps everything when there is no aborted transaction, and is installed in place of kafkajs\'s', () => {
    expect(filterAbortedMessages({ messages, abortedTransactions: [] })).toBe(messages);
    const require = createRequire(import.meta.url);
    expect(require('kafkajs/src/consumer/filterAbortedMessages.js')).toBe(filterAbortedMessages);
  });
});

describe('groupMessagesPerPartition (kafkajs O(n²) grouping replaced)', () => {
  it('groups exactly as kafkajs 2.2.4 does, in order', async () => {
    const { groupMessagesPerPartition } = await import('../../../src/kafka/kafkajs-fix.js');
    const path = createRequire(import.meta.url).resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
    const mod = { exports: {} as unknown };
    new Function('require', 'module', 'exports', readFileSync(path, 'utf8'))(createRequire(path), mod, mod.exports);
    const original = mod.exports as typeof groupMessagesPerPartition;
    const messages = Array.from({ length: 200 }, (_, i) => ({ key: `k${i % 17}`, value: String(i) }));
    const partitioner = ({ message }: { message: unknown }) => Number((message as { key: string }).key.slice(1)) % 5;
    const args = { topic: 't', partitionMetadata: [{}, {}, {}, {}, {}], messages, partitioner };
    expect(groupMessagesPerPartition(args)).toEqual(original(args));
    expect(groupMessagesPerPartition({ ...args, partitionMetadata: [] })).toEqual({});
    expect(createRequire(import.meta.url)('kafkajs/src/producer/groupMessagesPerPartition.js')).toBe(groupMessagesPerPartition);
  });
});
