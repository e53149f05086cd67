/**
 * Avro object container files (the format of `avro-tools`, Spark's `avro`, Kafka Connect's S3
 * sink) through avsc's block streams. Input records are not decoded here: avsc hands each one
 * over as its raw bytes (`noDecode`), and they go through the stream's own RowDecoder, the writer
 * schema of the file header standing in for the registry's. So a file row gets exactly the Kafka
 * path: the fused fast decoder or avsc's resolver, the vectorizer, the same error codes.
 * Memory: one chunk of records plus avsc's block buffers; the output is written as it comes.
 */
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import avro from 'avsc';
import { ScorerError } from '../../errors.js';
import type { Manifest } from '../../model/manifest.js';
import { RowDecoder } from '../../stages/decode/row-decoder.js';
import { HEADER_BYTES, header } from '../../stages/decode/wire.js';
import type { ScoredEvent } from '../../stages/encode.js';
import type { FeatureFile, ScoredFile } from './types.js';

/** The id the file's writer schema is known by to the decoder (any id works: there is only one). */
const FILE_SCHEMA_ID = 1;
const CODECS = ['null', 'deflate'];

/**
 * The raw records of a BlockDecoder, a few at a time. With noDecode its readable side is a byte
 * stream, not an object stream, so read() (and for-await) would glue records together; only
 * 'data' events in flowing mode hand them over one by one. Paused while `high` wait unread.
 */
async function* recordsOf(blocks: NodeJS.ReadableStream, high: number): AsyncGenerator<Buffer[]> {
  let queue: Buffer[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  blocks.on('data', (b: Buffer) => {
    queue.push(b);
    if (queue.length >= high) blocks.pause();
    poke();
  });
  blocks.on('end', () => ((ended = true), poke()));
  blocks.on('error', (err) => ((failure = err), poke()));
  for (;;) {
    if (failure !== undefined) throw new ScorerError('MALFORMED_PAYLOAD', `the Avro file is corrupt: ${(failure as Error).message}`);
    if (queue.length > 0) {
      const out = queue;
      queue = [];
      blocks.resume();
      yield out;
    } else if (ended) return;
    else await new Promise<void>((resolve) => (wake = resolve));
  }
}

export async function openAvroFeatureFile(path: string, opts: { manifest: Manifest; readerSchema: avro.Schema }): Promise<FeatureFile & { codec: string }> {
  const size = statSync(path).size;
  let read = 0;
  const raw = createReadStream(path);
  raw.on('data', (b) => (read += b.length));
  const blocks = new avro.streams.BlockDecoder({ noDecode: true });
  raw.on('error', (err) => blocks.destroy(err));
  raw.pipe(blocks);
  const [writer, codec] = (await Promise.race([
    once(blocks, 'metadata'),
    once(blocks, 'error').then(([err]) => Promise.reject(new ScorerError('CONFIG_INVALID', `score-file: ${path} is not an Avro object container file: ${(err as Error).message}`))),
    once(blocks, 'end').then(() => Promise.reject(new ScorerError('CONFIG_INVALID', `score-file: ${path} is empty`))),
  ])) as [avro.Type, string];
  if (!CODECS.includes(codec)) throw new ScorerError('CONFIG_INVALID', `score-file: ${path} uses the ${codec} codec; supported: ${CODECS.join(', ')}`);
  const decoder = new RowDecoder({ registry: { getSchema: async () => writer }, readerSchema: opts.readerSchema, manifest: opts.manifest, registryTimeoutMs: 1_000 });
  const frame = header(FILE_SCHEMA_ID);

  async function* chunks(maxRecords: number) {
    let first = 0;
    let batch: Buffer[] = [];
    const flush = async () => {
      // One allocation per chunk: every record framed as the Kafka decoder expects, side by side.
      const all = Buffer.allocUnsafe(batch.reduce((n, b) => n + b.length + HEADER_BYTES, 0));
      const values: Buffer[] = new Array(batch.length);
      let at = 0;
      batch.forEach((b, i) => {
        frame.copy(all, at);
        b.copy(all, at + HEADER_BYTES);
        values[i] = all.subarray(at, at + HEADER_BYTES + b.length);
        at += HEADER_BYTES + b.length;
      });
      const decoded = await decoder.decodeChunk(values);
      const out = { ...decoded, first, count: batch.length };
      first += batch.length;
      batch = [];
      return out;
    };
    for await (const records of recordsOf(blocks, maxRecords)) {
      for (const record of records) {
        batch.push(record);
        if (batch.length >= maxRecords) yield await flush();
      }
    }
    if (batch.length > 0) yield await flush();
  }

  return {
    codec,
    chunks,
    fraction: () => (size === 0 ? 1 : read / size),
    close: async () => {
      raw.destroy();
      blocks.destroy();
    },
  };
}

export function createAvroScoredFile(path: string, schema: avro.Schema, codec: string): ScoredFile {
  const out = createWriteStream(path);
  const encoder = new avro.streams.BlockEncoder(schema, { codec });
  encoder.pipe(out);
  const failed = new Promise<never>((_, reject) => {
    out.on('error', reject);
    encoder.on('error', reject);
  });
  failed.catch(() => undefined);
  return {
    async write(events: readonly ScoredEvent[]) {
      let full = false;
      for (const e of events) full = !encoder.write(e) || full;
      // Backpressure: wait for the file to take what is buffered before the next chunk.
      if (full) await Promise.race([once(encoder, 'drain'), failed]);
    },
    async close() {
      const finished = once(out, 'finish');
      encoder.end();
      await Promise.race([finished, failed]);
    },
  };
}
