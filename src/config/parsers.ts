/**
 * The configuration parsers: one per kind of value, each saying what it expected, so every
 * message reads "NAME: expected <what>, got <value>". File parsers read through an injectable Io.
 */
import type { PemFile } from '../config.js';

/** File access, injectable for tests. */
export interface Io {
  readFile: (path: string) => string;
  isFile: (path: string) => boolean;
  isDirectory: (path: string) => boolean;
}

export interface Parser<T> {
  /** The text after "expected" in a message. */
  expected: string;
  /** The value, or undefined when the text is invalid. */
  parse(raw: string, io: Io): T | undefined;
}
export interface Entry<T, K extends 'required' | 'default' | 'optional'> extends Parser<T> {
  kind: K;
  fallback?: T;
  /** Never echoed in a message. */
  secret?: boolean;
}

export const text: Parser<string> = { expected: 'a non-empty string', parse: (raw) => (raw.length > 0 ? raw : undefined) };
export const int = (min: number, max: number): Parser<number> => ({
  expected: `an integer from ${min} to ${max}`,
  parse: (raw) => {
    const n = /^[+-]?\d+$/.test(raw) ? Number(raw) : NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  },
});
/** An integer in [min, max], or 'auto' for what `auto()` answers (clamped to the range). */
export const intOrAuto = (min: number, max: number, auto: () => number): Parser<number> => {
  const n = int(min, max);
  return {
    expected: `${n.expected} or 'auto'`,
    parse: (raw, io) => (raw.toLowerCase() === 'auto' ? Math.min(max, Math.max(min, auto())) : n.parse(raw, io)),
  };
};
const BOOLS: Record<string, boolean> = { true: true, 1: true, yes: true, false: false, 0: false, no: false };
export const bool: Parser<boolean> = { expected: 'a boolean (true/false/1/0/yes/no)', parse: (raw) => BOOLS[raw.toLowerCase()] };
export const oneOf = <T extends string>(values: readonly T[]): Parser<T> => ({
  expected: `one of ${values.join('|')}`,
  parse: (raw) => values.find((v) => v === raw.toLowerCase()),
});
// Kafka's own rule (kafka.common.internals.Topic): legal characters, at most 249, not '.' or '..'.
export const topic: Parser<string> = {
  expected: 'a Kafka topic name ([a-zA-Z0-9._-]{1,249})',
  parse: (raw) => (/^[a-zA-Z0-9._-]{1,249}$/.test(raw) && raw !== '.' && raw !== '..' ? raw : undefined),
};
export const brokers: Parser<string[]> = {
  expected: 'a comma-separated list of host:port (port 1-65535)',
  parse: (raw) => {
    const list = raw.split(',').map((s) => s.trim());
    const ok = list.every((b) => {
      const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(b);
      return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
    });
    return ok ? list : undefined;
  },
};
export const httpUrl: Parser<string> = {
  expected: 'an http or https URL',
  parse: (raw) => {
    try {
      const { protocol } = new URL(raw);
      return protocol === 'http:' || protocol === 'https:' ? raw : undefined;
    } catch {
      return undefined;
    }
  },
};
export const onnxFile: Parser<string> = {
  expected: 'an existing .onnx file',
  parse: (raw, io) => (raw.toLowerCase().endsWith('.onnx') && io.isFile(raw) ? raw : undefined),
};
export const directory: Parser<string> = {
  expected: 'an existing directory',
  parse: (raw, io) => (io.isDirectory(raw) ? raw : undefined),
};
export const jsonFile: Parser<string> = {
  expected: 'an existing .json file',
  parse: (raw, io) => (raw.toLowerCase().endsWith('.json') && io.isFile(raw) ? raw : undefined),
};
export const pemFile: Parser<PemFile> = {
  expected: 'an existing readable file',
  parse: (raw, io) => {
    try {
      return io.isFile(raw) ? { path: raw, pem: io.readFile(raw) } : undefined;
    } catch {
      return undefined;
    }
  },
};

export const required = <T>(p: Parser<T>): Entry<T, 'required'> => ({ ...p, kind: 'required' });
export const withDefault = <T>(p: Parser<T>, fallback: T): Entry<T, 'default'> => ({ ...p, kind: 'default', fallback });
export const optional = <T>(p: Parser<T>, secret = false): Entry<T, 'optional'> => ({ ...p, kind: 'optional', secret });
