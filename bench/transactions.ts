/**
 * `npm run bench:transactions`: what one transaction of the scorer costs on the local stack, the
 * way the produce stage runs it (src/stages/produce.ts fillAndCommit, through the kafkajs patches
 * of src/kafka/): COUNT transactions of RECORDS records each, one after the other on one
 * transactional producer, each with an input offset, as a pipeline commits a live stream (its next
 * transaction begins as soon as the previous one committed). Reports the duration of each
 * (p50/p90/p99) and the requests the producer sent per transaction, by API. `--gap-ms G` waits G ms
 * between transactions (the broker has then finished writing the previous one's markers).
 * Options: --count N (300) --records R (100) --gap-ms G (0). Against KAFKA_BROKERS if set, else the
 * local stack (started if need be). Not part of npm test; a topic and a group named
 * bench-tx-<time> are created and the topic deleted at the end.
 */
import '../src/kafka/kafkajs-fix.js'; // first: the patches must load before kafkajs
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { FIXED } from '../src/config.js';
import { type TransactionStep, fillAndCommit } from '../src/stages/produce.js';
import { stackUp } from '../scripts/stack/stack.js';
import { percentile } from './lib/output.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '300' }, records: { type: 'string', default: '100' }, 'gap-ms': { type: 'string', default: '0' } } });
const COUNT = Number(values.count);
const RECORDS = Number(values.records);
const GAP_MS = Number(values['gap-ms']);
for (const [flag, v, min] of [['--count', COUNT, 1], ['--records', RECORDS, 1], ['--gap-ms', GAP_MS, 0]] as const) {
  if (!Number.isInteger(v) || v < min) {
    console.error(`${flag}: expected an integer >= ${min}, got '${String(values[flag.slice(2) as 'count'])}'`);
    process.exit(2);
  }
}

const brokers = process.env.KAFKA_BROKERS ?? (await stackUp((l) => console.error(`stack: ${l}`))).kafkaBrokers;
const kafka = new Kafka({ clientId: 'bench-transactions', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const name = `bench-tx-${Date.now()}`;
await admin.createTopics({ topics: [{ topic: name, numPartitions: 6 }], waitForLeaders: true });
const producer = kafka.producer({ transactionalId: name, idempotent: true, maxInFlightRequests: 1, retry: FIXED.PRODUCER_RETRY });
const requests: Record<string, number> = {};
producer.on(producer.events.REQUEST, ({ payload }) => void (requests[payload.apiName] = (requests[payload.apiName] ?? 0) + 1));
await producer.connect();
try {
  await (await producer.transaction()).abort(); // InitProducerId, as the scorer's producers start
  for (const k of Object.keys(requests)) delete requests[k];
  const value = Buffer.alloc(60);
  const seconds: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    if (GAP_MS > 0) await new Promise((r) => setTimeout(r, GAP_MS));
    const tx = await producer.transaction();
    const messages = Array.from({ length: RECORDS }, (_, j) => ({ key: `k${j}`, value }));
    const at = { step: 'begin' as TransactionStep };
    seconds.push(await fillAndCommit(tx, [{ topic: name, messages }], { consumerGroupId: name, topics: [{ topic: name, partitions: [{ partition: 0, offset: String(i + 1) }] }] }, at));
  }
  const ms = seconds.map((s) => s * 1000).sort((a, b) => a - b);
  const q = (p: number) => (percentile(ms, p) ?? Number.NaN).toFixed(2);
  const perTx = Object.entries(requests).map(([api, n]) => `${api} ${(n / COUNT).toFixed(2)}`).join(', ');
  console.log(`${COUNT} transactions of ${RECORDS} records${GAP_MS > 0 ? `, ${GAP_MS} ms apart` : ', back to back'}: p50 ${q(0.5)} / p90 ${q(0.9)} / p99 ${q(0.99)} ms`);
  console.log(`requests per transaction: ${perTx}`);
} finally {
  await producer.disconnect();
  await admin.deleteTopics({ topics: [name] }).catch(() => undefined);
  await admin.disconnect();
}
