/**
 * The Confluent wire format, in one place: magic byte 0, a 4-byte big-endian schema id, then
 * the Avro body. Read by the decode stage, written by the encode stage.
 * https://docs.confluent.io/platform/current/schema-registry/fundamentals/serdes-develop/index.html#wire-format
 */
import { ScorerError } from '../../errors.js';

export const HEADER_BYTES = 5;
export const MAGIC_BYTE = 0;

/** Largest finite float32: a feature beyond it cannot be a model input (it would become ±Infinity). */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** The schema id of a well-framed value, or undefined (the decoder then says what is wrong). */
export function peekSchemaId(value: Buffer | null): number | undefined {
  return value !== null && value.length >= HEADER_BYTES && value[0] === MAGIC_BYTE ? value.readInt32BE(1) : undefined;
}

/** The schema id of a framed value, or BAD_MAGIC_BYTE saying why it is not framed. */
export function schemaIdOf(value: Buffer | null): number {
  if (value === null || value.length < HEADER_BYTES) {
    throw new ScorerError('BAD_MAGIC_BYTE', value === null ? 'record has no value (tombstone)' : `value is ${value.length} bytes, shorter than the 5-byte Confluent header`);
  }
  if (value[0] !== MAGIC_BYTE) throw new ScorerError('BAD_MAGIC_BYTE', `first byte is ${value[0]}, expected 0 (Confluent wire format)`);
  return value.readInt32BE(1);
}

/** The 5-byte header of values written with `schemaId`. */
export function header(schemaId: number): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  buf[0] = MAGIC_BYTE;
  buf.writeInt32BE(schemaId, 1);
  return buf;
}
