/**
 * Fused decode + vectorize fast path: reads the Avro body of a framed value straight into the
 * chunk's Float32Array row, without building the decoded event (256 doubles for a wide event) and
 * reading it back by name. Built once per writer schema id from the WRITER schema, the reader
 * schema and the manifest's column order, as a flat list of field ops in writer order.
 *
 * It only handles the happy path. When a record is anything but a valid, scorable event (truncated,
 * trailing bytes, a bad union index, an unsafe long, a null / NaN / infinite / float32-overflowing
 * feature), decode() returns undefined and the caller runs the generic Decoder + Vectorizer on the
 * same record: those throw exactly the error they always did, so errors need no second copy here.
 * For schemas it does not handle (enums, arrays, maps, fixed, bytes, other nested records, aliases,
 * ...) buildFastDecoder() returns undefined and that id always takes the generic path.
 */
import { endianness } from 'node:os';
import type avro from 'avsc';
import type { EventEnvelope } from '../vectorize.js';
import { FLOAT32_MAX, HEADER_BYTES } from './wire.js';

// Wire kinds of a writer field.
const NULL = 0;
const BOOLEAN = 1;
const INT = 2; // int and long: zig-zag varint
const FLOAT = 3;
const DOUBLE = 4;
const STRING = 5;
const KINDS: Record<string, number> = { null: NULL, boolean: BOOLEAN, int: INT, long: INT, float: FLOAT, double: DOUBLE, string: STRING };

// Where a field's value goes: a column (>= 0), nowhere, or an envelope slot.
const SKIP = -1;
const EVENT_ID = -2;
const EVENT_TIME = -3;
const ENTITY_ID = -4;

interface FieldSchema {
  name: string;
  type: unknown;
  default?: unknown;
  aliases?: string[];
}

/** Wire kind and null branch (-1: not a union) of a writer type, or undefined when unsupported. */
function kindOf(type: unknown): { kind: number; nullBranch: number } | undefined {
  if (Array.isArray(type)) {
    if (type.length !== 2) return undefined;
    const nullBranch = type.indexOf('null');
    const other = kindOf(type[1 - nullBranch]);
    return nullBranch < 0 || other === undefined || other.nullBranch >= 0 || other.kind === NULL ? undefined : { kind: other.kind, nullBranch };
  }
  // {type: 'long', logicalType: 'timestamp-millis'} reads as a plain long: the reader type has no logical types.
  const name = typeof type === 'object' && type !== null ? (type as { type: unknown }).type : type;
  const kind = typeof name === 'string' ? KINDS[name] : undefined;
  return kind === undefined ? undefined : { kind, nullBranch: -1 };
}

function fieldsOf(type: unknown): FieldSchema[] | undefined {
  const t = type as { type?: unknown; fields?: FieldSchema[] };
  return typeof t === 'object' && t !== null && t.type === 'record' && Array.isArray(t.fields) ? t.fields : undefined;
}

/** Read position in the value being decoded; one per decoder, reset by each decode(). */
export interface Cursor {
  pos: number;
}

/** avsc's Tap.readLong, byte for byte (past the end it reads 0s and leaves the cursor beyond it). */
export function readLong(buf: Buffer, c: Cursor): number {
  let n = 0;
  let k = 0;
  let b: number;
  let h: number;
  do {
    b = buf[c.pos++] as number;
    h = b & 0x80;
    n |= (b & 0x7f) << k;
    k += 7;
  } while (h && k < 28);
  if (h) {
    let f = n;
    let fk = 268435456; // 2 ** 28
    do {
      b = buf[c.pos++] as number;
      f += (b & 0x7f) * fk;
      fk *= 128;
    } while (b & 0x80);
    return (f % 2 ? -(f + 1) : f) / 2;
  }
  return (n >> 1) ^ -(n & 1);
}

/** Runs of at least this many consecutive plain doubles are copied in one go and read from a Float64Array. */
const MIN_RUN = 4;

export class FastDecoder {
  readonly #kind: Uint8Array;
  readonly #nullBranch: Int8Array;
  readonly #target: Int32Array;
  /** For a plain double starting a run of >= MIN_RUN plain doubles: the run's length (0 otherwise). */
  readonly #run: Int32Array;
  readonly #runBytes: Uint8Array;
  readonly #runDoubles: Float64Array;
  /** Columns the writer does not have, filled with the reader default: [column, value, column, value, ...]. */
  readonly #defaults: Float64Array;
  readonly #width: number;
  readonly #cursor: Cursor = { pos: 0 };

  constructor(kind: number[], nullBranch: number[], target: number[], defaults: number[], width: number) {
    this.#kind = Uint8Array.from(kind);
    this.#nullBranch = Int8Array.from(nullBranch);
    this.#target = Int32Array.from(target);
    this.#defaults = Float64Array.from(defaults);
    this.#width = width;
    this.#run = new Int32Array(kind.length);
    let longest = 0;
    for (let i = 0; i < kind.length; ) {
      let j = i;
      while (j < kind.length && kind[j] === DOUBLE && nullBranch[j] === -1) j++;
      if (j - i >= MIN_RUN) this.#run[i] = j - i;
      longest = Math.max(longest, j - i);
      i = Math.max(j, i + 1);
    }
    this.#runDoubles = new Float64Array(longest); // host byte order: buildFastDecoder checks it is little-endian
    this.#runBytes = new Uint8Array(this.#runDoubles.buffer);
  }

  /**
   * Writes the features of one framed value (header already checked) into out[row*width ...] and
   * returns its envelope, or returns undefined when the record must go through the generic path.
   */
  decode(buf: Buffer, out: Float32Array, row: number): EventEnvelope | undefined {
    const kinds = this.#kind;
    const nullBranches = this.#nullBranch;
    const targets = this.#target;
    const runs = this.#run;
    const base = row * this.#width;
    const end = buf.length;
    let eventId = '';
    let entityId = '';
    let eventTime = 0;
    let scorable = true;
    const c = this.#cursor;
    c.pos = HEADER_BYTES;
    for (let i = 0; i < kinds.length; i++) {
      const target = targets[i] as number;
      const nullBranch = nullBranches[i] as number;
      let kind = kinds[i] as number;
      if (nullBranch >= 0) {
        const branch = readLong(buf, c);
        if (branch === nullBranch) kind = NULL;
        else if (branch !== 1 - nullBranch) return undefined;
      }
      let x: number;
      switch (kind) {
        case NULL:
          if (target !== SKIP) scorable = false;
          continue;
        case BOOLEAN: {
          const pos = c.pos++;
          if (pos >= end) return undefined;
          x = buf[pos] === 0 ? 0 : 1;
          break;
        }
        case INT:
          x = readLong(buf, c);
          if (!Number.isSafeInteger(x)) return undefined; // avsc throws or rounds: let it decide
          if (target === EVENT_TIME) {
            eventTime = x;
            continue;
          }
          break;
        case FLOAT:
          if (c.pos + 4 > end) return undefined;
          x = buf.readFloatLE(c.pos);
          c.pos += 4;
          break;
        case DOUBLE: {
          const run = runs[i] as number;
          if (c.pos + (run > 0 ? run * 8 : 8) > end) return undefined;
          if (run === 0) {
            x = buf.readDoubleLE(c.pos);
            c.pos += 8;
            break;
          }
          buf.copy(this.#runBytes, 0, c.pos, c.pos + run * 8);
          c.pos += run * 8;
          const doubles = this.#runDoubles;
          for (let j = 0; j < run; j++) {
            const t = targets[i + j] as number;
            const d = doubles[j] as number;
            if (t < 0) continue;
            if (!(d <= FLOAT32_MAX && d >= -FLOAT32_MAX)) scorable = false;
            else out[base + t] = d;
          }
          i += run - 1;
          continue;
        }
        default: {
          // STRING
          const len = readLong(buf, c);
          const pos = c.pos;
          if (len < 0 || pos + len > end) return undefined;
          c.pos = pos + len;
          if (target === EVENT_ID) eventId = buf.toString('utf8', pos, pos + len);
          else if (target === ENTITY_ID) entityId = buf.toString('utf8', pos, pos + len);
          continue;
        }
      }
      if (target < 0) continue;
      // NaN, ±Infinity and float32 overflow all fail this: the vectorizer names the error.
      if (!(x <= FLOAT32_MAX && x >= -FLOAT32_MAX)) scorable = false;
      else out[base + target] = x;
    }
    if (c.pos !== end || !scorable) return undefined;
    const defaults = this.#defaults;
    for (let i = 0; i < defaults.length; i += 2) out[base + (defaults[i] as number)] = defaults[i + 1] as number;
    return { event_id: eventId, entity_id: entityId, event_time: eventTime };
  }
}

/**
 * A fast decoder for one writer schema, or undefined when the schema has anything it does not
 * handle. Call only for a writer that avsc resolved to the reader (Decoder.writerType(id)).
 */
export function buildFastDecoder(writer: avro.Type, reader: avro.Type, features: readonly string[]): FastDecoder | undefined {
  if (endianness() !== 'LE') return undefined; // runs of doubles are read through a Float64Array
  // exportAttrs: with the defaults and aliases.
  const readerFields = fieldsOf(reader.schema({ exportAttrs: true }));
  const readerFeatures = fieldsOf(readerFields?.find((f) => f.name === 'features')?.type);
  const writerFields = fieldsOf(writer.schema({ exportAttrs: true }));
  if (readerFields === undefined || readerFeatures === undefined || writerFields === undefined) return undefined;
  // Reader aliases would rename fields during resolution; writer aliases are not worth a case.
  const all = [...readerFields, ...readerFeatures, ...writerFields, ...(fieldsOf(writerFields.find((f) => f.name === 'features')?.type) ?? [])];
  if (all.some((f) => f.aliases !== undefined && f.aliases.length > 0)) return undefined;

  const envelope: Record<string, { target: number; kinds: number[] }> = {
    event_id: { target: EVENT_ID, kinds: [STRING] },
    event_time: { target: EVENT_TIME, kinds: [INT] },
    entity_id: { target: ENTITY_ID, kinds: [STRING] },
  };
  for (const [name, { kinds }] of Object.entries(envelope)) {
    const r = kindOf(readerFields.find((f) => f.name === name)?.type);
    const w = kindOf(writerFields.find((f) => f.name === name)?.type);
    if (r === undefined || w === undefined || r.nullBranch >= 0 || w.nullBranch >= 0 || !kinds.includes(r.kind) || !kinds.includes(w.kind)) return undefined;
  }
  const columnOf = new Map(features.map((name, column) => [name, column]));
  const kind: number[] = [];
  const nullBranch: number[] = [];
  const target: number[] = [];
  const seen = new Set<string>();
  const add = (field: FieldSchema, to: number): boolean => {
    const k = kindOf(field.type);
    if (k === undefined) return false;
    kind.push(k.kind);
    nullBranch.push(k.nullBranch);
    target.push(to);
    return true;
  };
  let hasFeatures = false;
  for (const field of writerFields) {
    if (field.name === 'features') {
      const nested = fieldsOf(field.type);
      if (nested === undefined) return undefined;
      hasFeatures = true;
      for (const f of nested) {
        const column = columnOf.get(f.name);
        if (column !== undefined) seen.add(f.name);
        if (!add(f, column ?? SKIP)) return undefined;
      }
    } else if (!add(field, envelope[field.name]?.target ?? SKIP)) return undefined;
  }
  if (!hasFeatures) return undefined;
  // A manifest feature the writer lacks takes the reader's default; null or none fails every record.
  const defaults: number[] = [];
  for (const [name, column] of columnOf) {
    if (seen.has(name)) continue;
    const d = readerFeatures.find((f) => f.name === name)?.default;
    const x = typeof d === 'boolean' ? Number(d) : d;
    if (typeof x !== 'number' || !(x <= FLOAT32_MAX && x >= -FLOAT32_MAX)) return undefined;
    defaults.push(column, x);
  }
  return new FastDecoder(kind, nullBranch, target, defaults, features.length);
}
