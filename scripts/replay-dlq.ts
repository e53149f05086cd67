/**
 * Replays dead letters: copies records from the dead-letter topic back to the input topic with
 * their original key, value and headers (the dlq.* headers removed), optionally only those with
 * given error codes — e.g. after registering a schema late, or deploying a model that accepts them.
 *
 *   npm run replay-dlq -- --from scores-dlq --to features [--code UNKNOWN_SCHEMA_ID,INVALID_FEATURE] [--dry-run]
 *
 * It reads the dead-letter topic read_committed from the beginning up to its end offsets at start
 * (records arriving later are left for the next replay) and writes with an idempotent producer.
 * Brokers come from KAFKA_BROKERS, else .stack/env. Prints what it copied, by code.
 */
import { parseArgs } from 'node:util';
import '../src/kafka/kafkajs-fix.js'; // before kafkajs: see the module
import { type IHeaders, Kafka, Partitioners, logLevel } from 'kafkajs';
import { DLQ_HEADERS } from '../src/stages/deadletter.js';
import { kafkaSecurity, stackEnv } from './lib/stack-env.js';

const { values } = parseArgs({
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    code: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
  },
});
if (!values.from || !values.to) {
  console.error('usage: npm run replay-dlq -- --from <dlq topic> --to <input topic> [--code CODE[,CODE]] [--dry-run]');
  process.exit(2);
}
const codes = values.code ? new Set(values.code.split(',').map((c) => c.trim())) : undefined;
const dlqPrefix = 'dlq.';
const env = stackEnv();
const kafka = new Kafka({ clientId: 'kafka-onnx-scorer-replay', brokers: env.KAFKA_BROKERS.split(','), logLevel: logLevel.WARN, ...kafkaSecurity(env.security) });

const admin = kafka.admin();
await admin.connect();
const ends = new Map((await admin.fetchTopicOffsets(values.from)).map((p) => [p.partition, BigInt(p.high)]));
await admin.disconnect();

const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
await producer.connect();
const consumer = kafka.consumer({ groupId: `replay-${values.from}-${Date.now()}`, maxWaitTimeInMs: 200 });
await consumer.connect();
await consumer.subscribe({ topic: values.from, fromBeginning: true });

const copied = new Map<string, number>();
let skipped = 0;
/** Cut dead letters (RECORD_TOO_LARGE) hold only the head of the value: replaying one would feed a truncated record. */
let cut = 0;
const done = new Set([...ends].filter(([, end]) => end === 0n).map(([p]) => p));
await new Promise<void>((resolve, reject) => {
  if (done.size === ends.size) return resolve();
  consumer
    .run({
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        const end = ends.get(batch.partition) ?? 0n;
        const out = [];
        for (const m of batch.messages) {
          if (BigInt(m.offset) >= end) break;
          const code = m.headers?.[DLQ_HEADERS.errorCode]?.toString() ?? 'UNKNOWN';
          if (code === 'RECORD_TOO_LARGE') cut += 1;
          else if (codes === undefined || codes.has(code)) {
            const headers: IHeaders = Object.fromEntries(Object.entries(m.headers ?? {}).filter(([k]) => !k.startsWith(dlqPrefix)));
            out.push({ key: m.key, value: m.value, headers });
            copied.set(code, (copied.get(code) ?? 0) + 1);
          } else skipped += 1;
          resolveOffset(m.offset);
        }
        if (out.length > 0 && !values['dry-run']) await producer.send({ topic: values.to as string, messages: out });
        await heartbeat();
        if (BigInt(batch.lastOffset()) + 1n >= end) done.add(batch.partition);
        if (done.size === ends.size) resolve();
      },
    })
    .catch(reject);
});
await consumer.disconnect();
await producer.disconnect();
const total = [...copied.values()].reduce((a, b) => a + b, 0);
console.log(`${values['dry-run'] ? 'would replay' : 'replayed'} ${total} dead letters from ${values.from} to ${values.to}; left ${skipped} with other codes`);
for (const [code, n] of copied) console.log(`  ${code}: ${n}`);
if (cut > 0) console.log(`  not replayed: ${cut} cut dead letters (RECORD_TOO_LARGE); their originals are at dlq.source.* in the input topic`);
process.exit(0);
