/**
 * The generic decoder: a framed value (wire.ts) -> a value of OUR reader schema. The writer schema comes from the registry by id (the client
 * caches it forever and dedupes concurrent misses); the writer->reader resolver is built once
 * per id and cached here, because decoding through the client's `readerSchema` option re-parses
 * the schema on every call (~40x slower, see DESIGN.md).
 *
 * Per chunk: `prepare(ids)` once (async, may hit the registry), then `decode(value)` per record
 * (synchronous, no allocation beyond the decoded value).
 */
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { ScorerError, isBug } from '../../errors.js';
import { classifyRegistryError, registryStatusOf as statusOf } from '../../kafka/registry.js';
import { HEADER_BYTES, schemaIdOf } from './wire.js';

type Resolution = { ok: true; resolver: avro.Resolver; writer: avro.Type } | { ok: false; error: ScorerError; until?: number };

/** How long an id the registry did not know is believed unknown before asking again (it may be registered late). */
const UNKNOWN_ID_RECHECK_MS = 30_000;

export interface DecoderOptions {
  /** Only getSchema(id) is used: a file scorer passes the writer schema of its file header (serve/files/avro-file.ts). */
  registry: Pick<SchemaRegistry, 'getSchema'>;
  /** Our reader schema: every writer schema is resolved to it. */
  readerSchema: avro.Schema;
  /** How long to wait for the registry per schema id, ms. */
  registryTimeoutMs: number;
}

export class Decoder {
  readonly #registry: Pick<SchemaRegistry, 'getSchema'>;
  readonly #reader: avro.Type;
  readonly #resolutions = new Map<number, Resolution>();
  readonly #registryTimeoutMs: number;

  constructor({ registry, readerSchema, registryTimeoutMs }: DecoderOptions) {
    this.#registry = registry;
    this.#reader = avro.Type.forSchema(readerSchema);
    this.#registryTimeoutMs = registryTimeoutMs;
  }

  get readerType(): avro.Type {
    return this.#reader;
  }

  /**
   * Makes sure every id has a cached resolution. An id the registry does not know, or whose
   * schema cannot be resolved to ours, is cached as a permanent failure: for good when it is
   * deterministic (incompatible), for UNKNOWN_ID_RECHECK_MS when the id was unknown. Throws REGISTRY_UNAVAILABLE (transient) when the registry cannot answer.
   */
  async prepare(ids: Iterable<number>, now = Date.now()): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => {
      const r = this.#resolutions.get(id);
      return r === undefined || (!r.ok && r.until !== undefined && r.until <= now);
    });
    await Promise.all(missing.map(async (id) => this.#resolutions.set(id, await this.#resolve(id))));
  }

  async #resolve(id: number): Promise<Resolution> {
    let writer: unknown;
    try {
      writer = await withTimeout(this.#registry.getSchema(id), this.#registryTimeoutMs, `schema registry did not answer for schema id ${id}`);
    } catch (err) {
      if (isBug(err)) throw err;
      const status = statusOf(err);
      if (status === 404) return { ok: false, error: new ScorerError('UNKNOWN_SCHEMA_ID', `schema id ${id} is not in the registry`, { cause: err }), until: Date.now() + UNKNOWN_ID_RECHECK_MS };
      if (err instanceof ScorerError) throw err;
      // The client throws for schema types it cannot build (JSON/PROTOBUF without a helper) as plain Errors.
      if (status === undefined && /schema ?type|not supported|unsupported/i.test(String((err as Error).message))) {
        return { ok: false, error: new ScorerError('UNSUPPORTED_SCHEMA_TYPE', `schema id ${id}: ${(err as Error).message}`) };
      }
      // Any other 4xx (401, 403, ...) is no record's fault: never a dead letter; the partition pauses and retries, saying why.
      if (status !== undefined && classifyRegistryError(err) === 'permanent') {
        throw new ScorerError('REGISTRY_REJECTED', `the schema registry refused reading schema id ${id} (${(err as Error).message}); check the SCHEMA_REGISTRY_* settings`, { cause: err });
      }
      throw new ScorerError('REGISTRY_UNAVAILABLE', `fetching schema id ${id} failed${status ? ` (HTTP ${status})` : ''}`, { cause: err });
    }
    if (!(writer instanceof avro.Type)) {
      return { ok: false, error: new ScorerError('UNSUPPORTED_SCHEMA_TYPE', `schema id ${id} is not an Avro schema`) };
    }
    try {
      return { ok: true, resolver: this.#reader.createResolver(writer), writer };
    } catch (err) {
      return { ok: false, error: new ScorerError('INCOMPATIBLE_SCHEMA', `writer schema id ${id} cannot be read as ${this.#reader.name ?? 'the reader schema'}: ${(err as Error).message}`) };
    }
  }

  /** The writer schema of an id that prepare() resolved to the reader schema; undefined for an unprepared, unknown or incompatible id. */
  writerType(id: number): avro.Type | undefined {
    const r = this.#resolutions.get(id);
    return r?.ok === true ? r.writer : undefined;
  }

  /** Decodes one framed value to a reader-schema value, or throws a permanent ScorerError. Call prepare() first. */
  decode(value: Buffer | null): unknown {
    const id = schemaIdOf(value);
    const buf = value as Buffer;
    const resolution = this.#resolutions.get(id);
    if (resolution === undefined) throw new Error(`bug: decode() before prepare() for schema id ${id}`);
    if (!resolution.ok) throw resolution.error;
    let decoded: { value: unknown; offset: number };
    try {
      decoded = this.#reader.decode(buf, HEADER_BYTES, resolution.resolver);
    } catch (err) {
      throw new ScorerError('MALFORMED_PAYLOAD', `Avro body does not decode with writer schema id ${id}: ${(err as Error).message}`);
    }
    if (decoded.offset === -1) throw new ScorerError('MALFORMED_PAYLOAD', `Avro body is truncated (${buf.length - HEADER_BYTES} bytes) for writer schema id ${id}`);
    if (decoded.offset !== buf.length) throw new ScorerError('MALFORMED_PAYLOAD', `${buf.length - decoded.offset} trailing bytes after the Avro body (writer schema id ${id})`);
    return decoded.value;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ScorerError('REGISTRY_UNAVAILABLE', message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
