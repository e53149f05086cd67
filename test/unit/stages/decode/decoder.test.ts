// The pure part of the decode stage: Confluent wire-format framing (magic byte 0 + 4-byte big-endian schema id).
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, schemaIdOf } from '../../../../src/stages/decode/wire.js';
import { ScorerError } from '../../../../src/errors.js';

/** A framed value: magic byte, big-endian id, then `body`. */
function framed(id: number, body: number[] = [], magic = 0): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = magic;
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, Buffer.from(body)]);
}

function badMagic(value: Buffer | null): ScorerError {
  try {
    schemaIdOf(value);
  } catch (err) {
    expect(err).toBeInstanceOf(ScorerError);
    const e = err as ScorerError;
    expect(e.code).toBe('BAD_MAGIC_BYTE');
    expect(e.kind).toBe('permanent');
    expect(e.stage).toBe('decode');
    return e;
  }
  throw new Error('expected BAD_MAGIC_BYTE, nothing was thrown');
}

describe('schemaIdOf', () => {
  it('the header is 5 bytes', () => {
    expect(HEADER_BYTES).toBe(5);
  });

  it('reads the schema id big-endian from bytes 1..4', () => {
    expect(schemaIdOf(Buffer.from([0, 0x01, 0x02, 0x03, 0x04, 0xaa]))).toBe(0x01020304);
    expect(schemaIdOf(Buffer.from([0, 0, 0, 0, 42]))).toBe(42);
    expect(schemaIdOf(Buffer.from([0, 0, 0, 0x01, 0x00]))).toBe(256);
  });

  it('round-trips ids written with writeInt32BE, whatever the body', () => {
    for (const id of [0, 1, 255, 65_536, 100_001, 2 ** 31 - 1]) {
      expect(schemaIdOf(framed(id, [2, 4, 6]))).toBe(id);
    }
  });

  it('accepts a header with an empty body (the body is checked by the decoder)', () => {
    expect(schemaIdOf(framed(7))).toBe(7);
  });

  it('rejects a tombstone (null value)', () => {
    expect(badMagic(null).message).toMatch(/tombstone/);
  });

  it.each([0, 1, 4])('rejects a %i-byte value as shorter than the header', (n) => {
    const value = Buffer.alloc(n); // all zero: the magic byte would be right
    expect(badMagic(value).message).toBe(`value is ${n} bytes, shorter than the 5-byte Confluent header`);
  });

  it.each([1, 0x7b, 0xff])('rejects a first byte of %i', (magic) => {
    expect(badMagic(framed(42, [1, 2], magic)).message).toBe(`first byte is ${magic}, expected 0 (Confluent wire format)`);
  });

  it('rejects plain JSON sent without framing', () => {
    expect(badMagic(Buffer.from('{"event_id":"e1"}')).message).toMatch(/^first byte is 123,/);
  });
});
