/**
 * The chunk processor on fakes of its stages: every way a record can end (scored, dead-lettered
 * at decode, at inference, with no outcome) and every way a chunk can fail (nothing committed).
 */
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ScorerError } from '../../../src/errors.js';
import { createLogger } from '../../../src/ops/logger.js';
import { ChunkProcessor, ChunkSuperseded } from '../../../src/stages/chunk.js';
import { DLQ_HEADERS } from '../../../src/stages/deadletter.js';
import type { ChunkDecoder, DecodedChunk } from '../../../src/stages/decode/row-decoder.js';
import type { ScoredEventEncoder } from '../../../src/stages/encode.js';
import type { RowOutcome, RowScorer } from '../../../src/stages/infer/infer.js';
import type { Lease, Served } from '../../../src/model/generation.js';
import { Router } from '../../../src/model/routing.js';
import type { ChunkCommit, ChunkCommitter } from '../../../src/stages/produce.js';

const WIDTH = 2;
const NOW = 1_700_000_123_000;

/** Records whose value is their verdict at decode: 'ok:<x>' a row with feature x, otherwise a dead letter of that code. */
const record = (offset: number, value: string): KafkaMessage =>
  ({ key: Buffer.from(`k${offset}`), value: Buffer.from(value), offset: String(offset), timestamp: String(NOW - 1_000), attributes: 0, headers: { trace: 'abc' } }) as KafkaMessage;

const decoder: ChunkDecoder = {
  width: WIDTH,
  async decodeChunk(values) {
    const rowOf = new Int32Array(values.length).fill(-1);
    const envelopes: DecodedChunk['envelopes'] = new Array(values.length);
    const failures = new Map<number, ScorerError>();
    const feats: number[] = [];
    values.forEach((v, i) => {
      const text = v?.toString() ?? '';
      if (text === 'registry-down') throw new ScorerError('REGISTRY_UNAVAILABLE', 'registry did not answer');
      if (text.startsWith('ok:')) {
        rowOf[i] = feats.length / WIDTH;
        feats.push(Number(text.slice(3)), i);
        envelopes[i] = { event_id: `e${i}`, entity_id: `c${i}`, event_time: NOW - 500 + i };
      } else failures.set(i, new ScorerError(text as 'BAD_MAGIC_BYTE', `bad record ${i}`));
    });
    return { features: Float32Array.from(feats), rows: feats.length / WIDTH, rowOf, envelopes, failures, schemaIds: [1] };
  },
};

/** Scores feature x as x/10; a row with x = 99 fails alone; x = 77 gets no outcome at all. */
function scorer(calls: number[] = []) {
  return {
    async score(features: Float32Array, rows: number): Promise<RowOutcome[]> {
      calls.push(rows);
      const out: RowOutcome[] = [];
      for (let r = 0; r < rows; r++) {
        const x = features[r * WIDTH] as number;
        if (x === 77) continue;
        out[r] = x === 99 ? { ok: false, error: new ScorerError('INFERENCE_FAILED', 'model rejected the row') } : { ok: true, score: x / 10, scores: { yes: x / 10 } };
      }
      return out;
    },
  };
}

/** Encodes `<offset>=<score>`, prefixed with the version for any version but '1'. */
const encoderOf = (version: string): ScoredEventEncoder => ({
  scoredEvent: (event, source, outcome, scoredTime) => ({
    event_id: event.event_id,
    entity_id: event.entity_id,
    source: { topic: source.topic, partition: source.partition, offset: Number(source.offset) },
    event_time: event.event_time,
    scored_time: scoredTime,
    model: { name: 'm', version },
    score: outcome.score,
    scores: outcome.scores,
    label: null,
  }),
  encode: (v) => Buffer.from(`${v.model.version === '1' ? '' : `${v.model.version}:`}${v.source.offset}=${v.score}`),
});

type Score = Pick<RowScorer, 'score'>;

/** A version as a generation serves it: only what the chunk processor reads. */
const served = (version: string, score: Score = scorer()): Served => ({ version, model: { manifest: { name: 'm', version } }, scorer: score }) as unknown as Served;

/** One generation: stable, and optionally a canary for the keys in `canaryKeys` and a shadow for `shadowKeys`. */
function generation({ stable = served('1'), canary, shadow, canaryKeys = [], shadowKeys = [] }: { stable?: Served; canary?: Served; shadow?: Served; canaryKeys?: string[]; shadowKeys?: string[] } = {}) {
  const released: number[] = [];
  let n = 0;
  const models = {
    acquire(): Lease {
      const generation = ++n;
      return {
        generation,
        stable,
        canary: canary === undefined ? undefined : { ...canary, percent: 50 },
        shadow: shadow === undefined ? undefined : { ...shadow, topic: 'shadow', percent: 100 },
        router: new Router({ canaryPercent: 0, shadowPercent: 0 }),
        pick: (key) => (canary !== undefined && canaryKeys.includes(String(key)) ? canary : stable),
        shadowed: (key) => shadow !== undefined && shadowKeys.includes(String(key)),
        release: () => released.push(generation),
      };
    },
  };
  return { models, released };
}

function processor({ commitError, score = scorer(), models = generation({ stable: served('1', score) }).models }: { commitError?: unknown; score?: Score; models?: ReturnType<typeof generation>['models'] } = {}) {
  const commits: ChunkCommit[] = [];
  const committer: ChunkCommitter = {
    async commit(c) {
      if (commitError !== undefined) throw commitError;
      commits.push(c);
    },
  };
  const p = new ChunkProcessor({
    models,
    stages: (model) => ({ decoder, encoder: encoderOf(model.manifest.version), deadLetterContext: { scorerVersion: '0.1.0', modelName: 'm', modelVersion: model.manifest.version } }),
    committer,
    outputTopic: 'out',
    dlqTopic: 'dlq',
    logger: createLogger('silent'),
    now: () => NOW,
  });
  return { p, commits };
}

const values = (c: ChunkCommit, topic: string): string[] => (c.outputs.find((o) => o.topic === topic)?.messages ?? []).map((m) => String(m.value));
const keys = (c: ChunkCommit, topic: string): string[] => (c.outputs.find((o) => o.topic === topic)?.messages ?? []).map((m) => String(m.key));

describe('ChunkProcessor', () => {
  it('scores every good record, in order, keys kept, and commits the next offset with them', async () => {
    const { p, commits } = processor();
    const result = await p.process({ topic: 'in', partition: 3, messages: [record(10, 'ok:1'), record(11, 'ok:2'), record(12, 'ok:3')] });
    expect(result).toEqual({ scored: 3, deadLettered: {}, eventTimes: [NOW - 500, NOW - 499, NOW - 498], nextOffset: 13n, versions: [{ version: '1', role: 'stable', scored: 3, failed: 0 }] });
    expect(commits).toHaveLength(1);
    const c = commits[0] as ChunkCommit;
    expect(c.partition).toBe(3);
    expect(c.nextOffset).toBe(13n);
    expect(values(c, 'out')).toEqual(['10=0.1', '11=0.2', '12=0.3']);
    expect(keys(c, 'out')).toEqual(['k10', 'k11', 'k12']);
    expect(values(c, 'dlq')).toEqual([]);
  });

  it('dead-letters decode failures, failed rows and rows without an outcome, each with its code, in the same commit', async () => {
    const { p, commits } = processor();
    const messages = [record(0, 'ok:1'), record(1, 'BAD_MAGIC_BYTE'), record(2, 'ok:99'), record(3, 'INVALID_FEATURE'), record(4, 'ok:77'), record(5, 'ok:5')];
    const result = await p.process({ topic: 'in', partition: 0, messages });
    expect(result.scored).toBe(2);
    expect(result.deadLettered).toEqual({ BAD_MAGIC_BYTE: 1, INVALID_FEATURE: 1, INFERENCE_FAILED: 2 });
    const c = commits[0] as ChunkCommit;
    expect(values(c, 'out')).toEqual(['0=0.1', '5=0.5']);
    const dlq = c.outputs.find((o) => o.topic === 'dlq')?.messages ?? [];
    expect(dlq.map((m) => String(m.key))).toEqual(['k1', 'k2', 'k3', 'k4']);
    // the original value and headers, byte for byte, plus the reason
    expect(dlq.map((m) => String(m.value))).toEqual(['BAD_MAGIC_BYTE', 'ok:99', 'INVALID_FEATURE', 'ok:77']);
    expect(dlq.map((m) => (m.headers as Record<string, string>)[DLQ_HEADERS.errorCode])).toEqual(['BAD_MAGIC_BYTE', 'INFERENCE_FAILED', 'INVALID_FEATURE', 'INFERENCE_FAILED']);
    expect(dlq.map((m) => (m.headers as Record<string, string>)[DLQ_HEADERS.sourceOffset])).toEqual(['1', '2', '3', '4']);
    expect((dlq[3]?.headers as Record<string, string>)[DLQ_HEADERS.errorMessage]).toBe('no inference result for this row');
    expect((dlq[0]?.headers as Record<string, string>).trace).toBe('abc');
    expect(c.nextOffset).toBe(6n);
  });

  it('a chunk of only bad records skips inference and still commits its dead letters and offset', async () => {
    const calls: number[] = [];
    const { p, commits } = processor({ score: scorer(calls) });
    const result = await p.process({ topic: 'in', partition: 1, messages: [record(7, 'MALFORMED_PAYLOAD'), record(8, 'UNKNOWN_SCHEMA_ID')] });
    expect(calls).toEqual([]);
    expect(result).toMatchObject({ scored: 0, deadLettered: { MALFORMED_PAYLOAD: 1, UNKNOWN_SCHEMA_ID: 1 }, nextOffset: 9n });
    expect(commits).toHaveLength(1);
  });

  it('commits nothing when decoding fails transiently', async () => {
    const { p, commits } = processor();
    await expect(p.process({ topic: 'in', partition: 0, messages: [record(0, 'ok:1'), record(1, 'registry-down')] })).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
    expect(commits).toEqual([]);
  });

  it('commits nothing when inference fails for the whole batch (the model, not a record)', async () => {
    const failing = { score: async (): Promise<RowOutcome[]> => Promise.reject(new ScorerError('BATCH_INFERENCE_FAILED', 'every row failed')) };
    const { p, commits } = processor({ score: failing });
    await expect(p.process({ topic: 'in', partition: 0, messages: [record(0, 'ok:1')] })).rejects.toMatchObject({ code: 'BATCH_INFERENCE_FAILED' });
    expect(commits).toEqual([]);
  });

  it('passes a failed transaction on to the caller (which reads the chunk again)', async () => {
    const { p } = processor({ commitError: new ScorerError('TRANSACTION_FAILED', 'aborted') });
    await expect(p.process({ topic: 'in', partition: 0, messages: [record(0, 'ok:1')] })).rejects.toMatchObject({ code: 'TRANSACTION_FAILED' });
  });

  it("gives each scored event a key of its own, not a view into the fetched record's buffer (which would keep the fetch response alive until the commit)", async () => {
    const { p, commits } = processor();
    const fetched = Buffer.from('k7|k8');
    const messages = [record(7, 'ok:1'), record(8, 'ok:2')];
    (messages[0] as { key: Buffer }).key = fetched.subarray(0, 2);
    (messages[1] as { key: Buffer }).key = fetched.subarray(3, 5);
    await p.process({ topic: 'in', partition: 0, messages });
    fetched.fill(0); // the fetch response's memory is reused
    expect(keys(commits[0] as ChunkCommit, 'out')).toEqual(['k7', 'k8']);
  });

  it('commits only after the chunk before it (Chunk.after) committed, and nothing when that one failed', async () => {
    const { p, commits } = processor();
    let before: (committed: boolean) => void = () => undefined;
    const committing = p.process({ topic: 'in', partition: 0, messages: [record(3, 'ok:1')], after: new Promise<boolean>((r) => (before = r)) });
    await new Promise((r) => setImmediate(r)); // scored and encoded meanwhile: only the commit waits
    expect(commits).toEqual([]);
    before(true);
    await expect(committing).resolves.toMatchObject({ nextOffset: 4n });
    expect(commits).toHaveLength(1);
    await expect(p.process({ topic: 'in', partition: 0, messages: [record(4, 'ok:1')], after: Promise.resolve(false) })).rejects.toBeInstanceOf(ChunkSuperseded);
    expect(commits).toHaveLength(1);
  });

  it('refuses an empty chunk as a bug', async () => {
    const { p } = processor();
    await expect(p.process({ topic: 'in', partition: 0, messages: [] })).rejects.toThrow('bug: empty chunk');
  });
});

describe('ChunkProcessor across model versions', () => {
  const dlqVersions = (c: ChunkCommit): string[] => (c.outputs.find((o) => o.topic === 'dlq')?.messages ?? []).map((m) => String((m.headers as Record<string, string>)[DLQ_HEADERS.modelVersion]));
  const chunk = [record(0, 'ok:1'), record(1, 'ok:2'), record(2, 'ok:99'), record(3, 'ok:4'), record(4, 'BAD_MAGIC_BYTE')];

  it('scores each record by the version its key routes to, output in input order, dead letters naming that version', async () => {
    const stableCalls: number[] = [];
    const canaryCalls: number[] = [];
    const { models } = generation({ stable: served('1', scorer(stableCalls)), canary: served('2', scorer(canaryCalls)), canaryKeys: ['k1', 'k2', 'k4'] });
    const { p, commits } = processor({ models });
    const result = await p.process({ topic: 'in', partition: 0, messages: chunk });
    const c = commits[0] as ChunkCommit;
    expect(values(c, 'out')).toEqual(['0=0.1', '2:1=0.2', '3=0.4']);
    expect(keys(c, 'out')).toEqual(['k0', 'k1', 'k3']);
    // each version scored only its own rows: stable 0 and 3, canary 1 and 2 (4 failed at decode)
    expect(stableCalls).toEqual([2]);
    expect(canaryCalls).toEqual([2]);
    expect(dlqVersions(c)).toEqual(['2', '2']);
    expect(result.versions).toEqual([
      { version: '1', role: 'stable', scored: 2, failed: 0 },
      { version: '2', role: 'canary', scored: 1, failed: 2 },
    ]);
  });

  it('writes shadow events for the shadowed records into the shadow topic in the same commit, never dead-lettering its failures', async () => {
    const { models } = generation({ shadow: served('3'), shadowKeys: ['k0', 'k2', 'k3'] });
    const { p, commits } = processor({ models });
    const result = await p.process({ topic: 'in', partition: 0, messages: chunk });
    const c = commits[0] as ChunkCommit;
    expect(values(c, 'shadow')).toEqual(['3:0=0.1', '3:3=0.4']);
    expect(keys(c, 'shadow')).toEqual(['k0', 'k3']);
    expect(dlqVersions(c)).toEqual(['1', '1']); // row 99 and the bad record, by stable only
    expect(result.versions.at(-1)).toEqual({ version: '3', role: 'shadow', scored: 2, failed: 1 });

    // The main output is the same as without the shadow.
    const plain = processor();
    await plain.p.process({ topic: 'in', partition: 0, messages: chunk });
    const without = plain.commits[0] as ChunkCommit;
    expect(values(c, 'out')).toEqual(values(without, 'out'));
    expect(values(c, 'dlq')).toEqual(values(without, 'dlq'));
  });

  it('commits the main output when the shadow cannot score at all, with an empty shadow share counted as failed', async () => {
    const broken = { score: async (): Promise<RowOutcome[]> => Promise.reject(new ScorerError('MODEL_UNAVAILABLE', 'shadow workers died')) };
    const { models } = generation({ shadow: served('3', broken), shadowKeys: ['k0', 'k1'] });
    const { p, commits } = processor({ models });
    const result = await p.process({ topic: 'in', partition: 0, messages: chunk });
    const c = commits[0] as ChunkCommit;
    expect(values(c, 'out')).toEqual(['0=0.1', '1=0.2', '3=0.4']);
    expect(values(c, 'shadow')).toEqual([]);
    expect(result.versions.at(-1)).toEqual({ version: '3', role: 'shadow', scored: 0, failed: 2 });
  });

  it('holds one generation per chunk and releases it after the commit and after a failure', async () => {
    const { models, released } = generation();
    const ok = processor({ models });
    await ok.p.process({ topic: 'in', partition: 0, messages: [record(0, 'ok:1')] });
    await expect(ok.p.process({ topic: 'in', partition: 0, messages: [record(1, 'registry-down')] })).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
    expect(released).toEqual([1, 2]);
  });
});
