/**
 * The read-back: the output and dead-letter topics as a read_committed consumer sees them. Proves
 * every input offset landed exactly once (as a score or a dead letter, with its key) and picks a
 * few scored events and dead letters to show.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import type { IHeaders, Kafka } from 'kafkajs';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { ROOT } from '../lib/feature-events.js';
import { readCommitted } from '../lib/read-committed.js';
import { PARTITIONS, type RunNames } from './runs.js';
import type { DeadLetterSample, ScoredSample, Verification } from './summary-view.js';

export interface ReadBack {
  verification: Verification | undefined;
  scored: ScoredSample[];
  deadLetters: DeadLetterSample[];
}

const header = (v: Buffer | string | (Buffer | string)[] | undefined): string => (v === undefined ? '' : Array.isArray(v) ? v.map(String).join(',') : v.toString());

/** A dead letter's dlq.* headers as text, in their documented order, times also as ISO dates. */
function shownHeaders(h: IHeaders): [string, string][] {
  return Object.values(DLQ_HEADERS)
    .filter((name) => h[name] !== undefined)
    .map((name): [string, string] => {
      const value = header(h[name]);
      const isTime = name === DLQ_HEADERS.failedAt || name === DLQ_HEADERS.sourceTimestamp;
      return [name, isTime && /^\d+$/.test(value) ? `${value} (${new Date(Number(value)).toISOString()})` : value];
    });
}

export async function readBack(kafka: Kafka, names: RunNames, expected: number, ends: Map<number, number>, signal: AbortSignal): Promise<ReadBack> {
  const outputType = avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as avro.Schema);
  // Verifying means reading everything back: fine for a demo's size, pointless for a billion.
  const verify = expected <= 2_000_000;
  const seen = new Map([...ends].map(([p, end]) => [p, new Uint8Array(end)]));
  const v: Verification = { scoredRead: 0, deadLettersRead: 0, missing: 0, duplicates: 0, keyMismatches: 0, complete: false, inputPartitions: ends.size };
  const mark = (partition: number, offset: number) => {
    const counts = seen.get(partition);
    if (counts === undefined || offset < 0 || offset >= counts.length) return; // produced after the ends were read
    counts[offset] = Math.min(255, (counts[offset] as number) + 1);
  };
  const scoredPool: ScoredSample[] = [];
  const poolPerPartition = new Map<number, number>();
  const deadPool: DeadLetterSample[] = [];
  const complete = await readCommitted(kafka, {
    groupId: `${names.group}-readback`,
    topics: [names.output, names.dlq],
    partitionsConsumedConcurrently: PARTITIONS,
    onBatch: (batch) => {
      for (const m of batch.messages) {
        const key = m.key?.toString() ?? '';
        if (batch.topic === names.output) {
          v.scoredRead += 1;
          if (!verify && scoredPool.length >= 30) continue;
          const event = outputType.fromBuffer((m.value ?? Buffer.alloc(0)).subarray(5)) as ScoredSample['event'];
          mark(event.source.partition, event.source.offset);
          if (key !== event.entity_id) v.keyMismatches += 1;
          const inPool = poolPerPartition.get(batch.partition) ?? 0;
          if (inPool < 5) {
            poolPerPartition.set(batch.partition, inPool + 1);
            scoredPool.push({ key, partition: batch.partition, offset: m.offset, event });
          }
        } else {
          v.deadLettersRead += 1;
          const h = m.headers ?? {};
          mark(Number(header(h[DLQ_HEADERS.sourcePartition])), Number(header(h[DLQ_HEADERS.sourceOffset])));
          if (deadPool.length < 500) deadPool.push({ key, value: m.value, headers: shownHeaders(h) });
        }
      }
    },
    // Everything counted has arrived and nothing more for a moment (a duplicate would show up here);
    // without verifying, as soon as there are samples to show.
    done: (quiet) => (v.scoredRead + v.deadLettersRead >= expected && quiet) || (!verify && scoredPool.length >= 3 && deadPool.length >= 2),
    quietMs: 500,
    timeoutMs: 20_000 + expected / 20,
    signal,
  });
  v.complete = complete && v.scoredRead + v.deadLettersRead >= expected;
  for (const counts of seen.values()) {
    for (const c of counts) {
      if (c === 0) v.missing += 1;
      else if (c > 1) v.duplicates += c - 1;
    }
  }
  return { verification: verify ? v : undefined, scored: pickScored(scoredPool), deadLetters: pickDeadLetters(deadPool) };
}

/** Three scored events that show some variety: both labels if there are, different partitions. */
function pickScored(pool: ScoredSample[]): ScoredSample[] {
  const chosen: ScoredSample[] = [];
  const labels = new Set<string | null>();
  const partitions = new Set<number>();
  for (const pass of [(s: ScoredSample) => !labels.has(s.event.label) && !partitions.has(s.partition), (s: ScoredSample) => !partitions.has(s.partition), () => true]) {
    for (const s of pool) {
      if (chosen.length === 3) break;
      if (chosen.includes(s) || !pass(s)) continue;
      chosen.push(s);
      labels.add(s.event.label);
      partitions.add(s.partition);
    }
  }
  return chosen;
}

/** Two dead letters from different stages (say, decode and vectorize), else with different codes. */
function pickDeadLetters(pool: DeadLetterSample[]): DeadLetterSample[] {
  const get = (d: DeadLetterSample, name: string) => d.headers.find(([k]) => k === name)?.[1];
  const first = pool[0];
  if (first === undefined) return [];
  const second =
    pool.find((d) => get(d, DLQ_HEADERS.errorStage) !== get(first, DLQ_HEADERS.errorStage)) ??
    pool.find((d) => get(d, DLQ_HEADERS.errorCode) !== get(first, DLQ_HEADERS.errorCode)) ??
    pool[1];
  return second === undefined ? [first] : [first, second];
}
