// The error catalogue: every code is classified, and the helpers sort errors the way the pipeline routes them.
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ScorerError, describeError, isBug, isPermanent, isTransient } from '../../src/errors.js';
import type { ErrorCode } from '../../src/errors.js';

const codes = Object.keys(ErrorCodes) as ErrorCode[];
const STAGES = ['decode', 'vectorize', 'infer', 'produce', 'config'];

describe('ErrorCodes', () => {
  it.each(codes)('%s has a known kind, a stage and a doc', (code) => {
    const entry = ErrorCodes[code];
    expect(['permanent', 'transient', 'fatal']).toContain(entry.kind);
    expect(STAGES).toContain(entry.stage);
    expect(entry.doc.length).toBeGreaterThan(0);
  });

  it('classifies the codes the pipeline routes on', () => {
    const byKind = (kind: string) => codes.filter((c) => ErrorCodes[c].kind === kind).sort();
    expect(byKind('permanent')).toEqual(['BAD_MAGIC_BYTE', 'INCOMPATIBLE_SCHEMA', 'INFERENCE_FAILED', 'INVALID_FEATURE', 'MALFORMED_PAYLOAD', 'RECORD_TOO_LARGE', 'UNKNOWN_SCHEMA_ID', 'UNSUPPORTED_SCHEMA_TYPE']);
    expect(byKind('transient')).toEqual(['KAFKA_UNAVAILABLE', 'REGISTRY_UNAVAILABLE', 'TRANSACTION_FAILED']);
    expect(byKind('fatal')).toEqual(['BATCH_INFERENCE_FAILED', 'CONFIG_INVALID', 'KAFKA_AUTH_FAILED', 'KAFKA_NOT_AUTHORIZED', 'KAFKA_TLS_UNTRUSTED', 'MODEL_UNAVAILABLE', 'PRODUCER_FENCED', 'REGISTRY_REJECTED']);
  });
});

describe('ScorerError', () => {
  it('carries code, kind, stage, message and cause', () => {
    const cause = new Error('socket hang up');
    const err = new ScorerError('REGISTRY_UNAVAILABLE', 'fetching schema id 7 failed', { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ScorerError');
    expect(err.code).toBe('REGISTRY_UNAVAILABLE');
    expect(err.kind).toBe('transient');
    expect(err.stage).toBe('decode');
    expect(err.message).toBe('fetching schema id 7 failed');
    expect(err.cause).toBe(cause);
  });

  it.each(codes)('%s is retried (isTransient) exactly when its kind is transient', (code) => {
    const err = new ScorerError(code, 'x');
    expect(err.kind).toBe(ErrorCodes[code].kind);
    expect(err.stage).toBe(ErrorCodes[code].stage);
    expect(isTransient(err)).toBe(ErrorCodes[code].kind === 'transient');
  });

  it('has no cause unless given one', () => {
    expect(new ScorerError('INVALID_FEATURE', 'x').cause).toBeUndefined();
  });
});

describe('classification helpers', () => {
  const permanent = new ScorerError('INVALID_FEATURE', 'features.x is null');
  const transient = new ScorerError('KAFKA_UNAVAILABLE', 'broker down');
  const fatal = new ScorerError('PRODUCER_FENCED', 'fenced');

  it('isPermanent is true only for permanent ScorerErrors', () => {
    expect(isPermanent(permanent)).toBe(true);
    expect(isPermanent(transient)).toBe(false);
    expect(isPermanent(fatal)).toBe(false);
    expect(isPermanent(new Error('plain'))).toBe(false);
    expect(isPermanent({ kind: 'permanent', code: 'INVALID_FEATURE' })).toBe(false);
  });

  it('isTransient is true only for transient ScorerErrors', () => {
    expect(isTransient(transient)).toBe(true);
    expect(isTransient(permanent)).toBe(false);
    expect(isTransient(fatal)).toBe(false);
    expect(isTransient(new Error('ETIMEDOUT'))).toBe(false);
    expect(isTransient(undefined)).toBe(false);
  });

  it('isBug flags built-in programming errors and nothing else', () => {
    expect(isBug(new TypeError('x is not a function'))).toBe(true);
    expect(isBug(new RangeError('offset out of range'))).toBe(true);
    expect(isBug(new ReferenceError('y is not defined'))).toBe(true);
    expect(isBug(new Error('plain'))).toBe(false);
    expect(isBug(permanent)).toBe(false);
    expect(isBug(transient)).toBe(false);
    expect(isBug('TypeError')).toBe(false);
  });
});

describe('describe()', () => {
  it('is the message alone without an Error cause', () => {
    expect(describeError(new ScorerError('INVALID_FEATURE', 'features.x is NaN'))).toBe('features.x is NaN');
    expect(describeError(new ScorerError('INVALID_FEATURE', 'm', { cause: 'a string' }))).toBe('m');
  });

  it("appends the cause's message", () => {
    const err = new ScorerError('REGISTRY_UNAVAILABLE', 'fetching schema id 3 failed', { cause: new Error('ECONNREFUSED 127.0.0.1:8081') });
    expect(describeError(err)).toBe('fetching schema id 3 failed: ECONNREFUSED 127.0.0.1:8081');
    // A message that already quotes its cause is not repeated.
    const cause = new Error('indices out of bounds');
    expect(describeError(new ScorerError('MODEL_UNAVAILABLE', `warm-up inference failed: ${cause.message}`, { cause }))).toBe('warm-up inference failed: indices out of bounds');
  });

  it('stringifies non-errors', () => {
    expect(describeError('boom')).toBe('boom');
    expect(describeError(42)).toBe('42');
    expect(describeError(null)).toBe('null');
  });
});
