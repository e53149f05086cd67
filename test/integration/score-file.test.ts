/**
 * `score-file`: 100,000 events in an Avro object container file are scored in bounded memory
 * (never more than WINDOW x CHUNK_RECORDS records between reading and writing), bad rows land in
 * the sidecar with the dead-letter codes; Parquet in and out; bad arguments exit 2.
 * No broker needed, but it is heavy, so it runs with the integration files (one at a time).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import avro from 'avsc';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/fixtures.js';
import { EventFactory, ROOT } from '../../scripts/lib/feature-events.js';
import { fileEvents, writeAvroEvents, writeParquetEvents } from '../../scripts/lib/feature-files.js';
import { loadConfig } from '../../src/config.js';
import { chooseModel } from '../../src/serve/model-choice.js';
import { createLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { type ScoringEngine, readSchema, startEngine } from '../../src/serve/engine.js';
import { CHUNK_RECORDS, WINDOW, scoreFile } from '../../src/serve/score-file.js';
import { scoreFileCommand } from '../../src/serve/score-file-command.js';

const schema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/feature-event.avsc'), 'utf8')) as avro.Schema & { fields: { name: string; type: unknown }[] };
const outputSchema = readSchema('schemas/scored-event.avsc', 'output');
const dir = tempDir('score-file-');
let engine: ScoringEngine;

beforeAll(async () => {
  const config = loadConfig({ MODEL_PATH: resolve(ROOT, 'models/churn.onnx'), LOG_LEVEL: 'error' }, { notRequired: ['KAFKA_BROKERS', 'INPUT_TOPIC', 'OUTPUT_TOPIC', 'DLQ_TOPIC', 'SCHEMA_REGISTRY_URL'] });
  engine = await startEngine({ config, model: chooseModel(config), metrics: createMetrics(), logger: createLogger('error') });
});
afterAll(() => engine.scorer.close(5_000));

const sidecar = (path: string) => readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { row: number; code: string; message: string });

describe('score-file', () => {
  it('scores 100,000 Avro events in bounded memory and reports every bad row with its code', async () => {
    const { events, bad } = fileEvents(EventFactory.offline({ seed: 9 }), 100_000, { poisonEvery: 1_000 });
    await writeAvroEvents(join(dir, 'big.avro'), schema, events);
    const summary = await scoreFile({ input: join(dir, 'big.avro'), output: join(dir, 'big-scored.avro'), engine, outputSchema });
    expect(summary).toMatchObject({ records: 100_000, scored: 99_900, bad: { INVALID_FEATURE: 100 } });
    expect(summary.maxRecordsInFlight).toBeLessThanOrEqual(WINDOW * CHUNK_RECORDS);

    const reported = sidecar(summary.errors);
    expect(new Map(reported.map((r) => [r.row, r.code]))).toEqual(bad);
    expect(reported.find((r) => r.row === 999)?.message).toBe('features.avg_session_minutes is null');

    // Every good row once, in input order (source.offset = row number).
    const rows: number[] = [];
    await new Promise<void>((ok, fail) => avro.createFileDecoder(join(dir, 'big-scored.avro')).on('data', (s: { source: { offset: number } }) => rows.push(s.source.offset)).on('end', ok).on('error', fail));
    expect(rows).toEqual(Array.from({ length: 100_000 }, (_, i) => i).filter((i) => !bad.has(i)));
  });

  it('scores Parquet into Parquet, with the same scores as the Avro path', async () => {
    const { events, bad } = fileEvents(EventFactory.offline({ seed: 4 }), 6_000, { poisonEvery: 1_500 });
    const featureFields = (schema.fields.find((f) => f.name === 'features')?.type as { fields: { name: string; type: unknown }[] }).fields;
    const types = Object.fromEntries(featureFields.map((f) => {
      const t = Array.isArray(f.type) ? f.type[1] : f.type;
      return [f.name, t === 'int' ? 'INT32' : t === 'boolean' ? 'BOOLEAN' : 'DOUBLE'] as const;
    }));
    writeParquetEvents(join(dir, 'in.parquet'), events, types);
    await writeAvroEvents(join(dir, 'in.avro'), schema, events);
    const pq = await scoreFile({ input: join(dir, 'in.parquet'), output: join(dir, 'out.parquet'), engine, outputSchema });
    const av = await scoreFile({ input: join(dir, 'in.avro'), output: join(dir, 'out.avro'), engine, outputSchema });
    expect(pq).toMatchObject({ records: 6_000, scored: 6_000 - bad.size });
    expect(sidecar(pq.errors).map((r) => r.row)).toEqual([...bad.keys()]);

    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(join(dir, 'out.parquet')) })) as { event_id: string; score: number; label: string; source_offset: bigint; scores_churn: number }[];
    const avroScores = new Map<string, number>();
    await new Promise<void>((ok) => avro.createFileDecoder(join(dir, 'out.avro')).on('data', (s: { event_id: string; score: number }) => avroScores.set(s.event_id, s.score)).on('end', ok));
    expect(rows).toHaveLength(av.scored);
    for (const r of rows) expect(r.score).toBe(avroScores.get(r.event_id));
    expect(rows[0]?.scores_churn).toBe(rows[0]?.score);
  });

  it('exits 2 for a missing input or a mismatched output format, naming it', async () => {
    const env = { MODEL_PATH: resolve(ROOT, 'models/churn.onnx'), LOG_LEVEL: 'silent' };
    expect(await scoreFileCommand([join(dir, 'missing.avro'), join(dir, 'x.avro')], env)).toBe(2);
    expect(await scoreFileCommand([join(dir, 'in.avro'), join(dir, 'x.parquet')], env)).toBe(2);
    expect(await scoreFileCommand([join(dir, 'in.avro')], env)).toBe(2);
  });
});
