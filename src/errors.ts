/**
 * The one error catalogue. Every failure the pipeline handles on purpose is a ScorerError with a
 * stable code (written into dead-letter headers and metrics labels: never rename one) and a kind:
 *
 * - permanent: this record can never be scored (bad framing, unknown or incompatible schema,
 *   invalid features, a row the model rejects) -> dead letter for that record only;
 * - transient: the world is briefly unavailable (broker, registry, timeouts) -> retry with
 *   backoff, pause the partition, never dead-letter, never skip;
 * - fatal: a component is unusable (fenced producer, lost model) -> restart that component.
 *
 * Built-in TypeError/RangeError are bugs: never retried, never dead-lettered silently.
 */

export const ErrorCodes = {
  // permanent, per record (dead-lettered)
  BAD_MAGIC_BYTE: { kind: 'permanent', stage: 'decode', doc: 'value is empty, shorter than the 5-byte Confluent header, or its first byte is not 0' },
  UNKNOWN_SCHEMA_ID: { kind: 'permanent', stage: 'decode', doc: 'the schema id in the header is not in the registry' },
  UNSUPPORTED_SCHEMA_TYPE: { kind: 'permanent', stage: 'decode', doc: 'the schema id names a non-Avro schema (JSON Schema, Protobuf)' },
  INCOMPATIBLE_SCHEMA: { kind: 'permanent', stage: 'decode', doc: 'the writer schema cannot be resolved to the reader schema (missing field without default, wrong type)' },
  MALFORMED_PAYLOAD: { kind: 'permanent', stage: 'decode', doc: 'the Avro body does not decode with its writer schema (truncated, trailing bytes, corrupt)' },
  INVALID_FEATURE: { kind: 'permanent', stage: 'vectorize', doc: 'a feature the model needs is missing, null, NaN, infinite or not a number' },
  INFERENCE_FAILED: { kind: 'permanent', stage: 'infer', doc: 'the model failed on this row alone (isolated by splitting the batch) or returned a non-finite score' },
  RECORD_TOO_LARGE: { kind: 'permanent', stage: 'produce', doc: 'the dead letter (original bytes plus headers) exceeds DLQ_MAX_MESSAGE_BYTES: sent with the value cut, its size and sha256 and the first error in headers' },
  // transient (retried, never dead-lettered)
  REGISTRY_UNAVAILABLE: { kind: 'transient', stage: 'decode', doc: 'the schema registry did not answer or answered 5xx' },
  KAFKA_UNAVAILABLE: { kind: 'transient', stage: 'produce', doc: 'a broker request failed or timed out' },
  TRANSACTION_FAILED: { kind: 'transient', stage: 'produce', doc: 'the transaction was aborted; its records are read again' },
  // fatal (component restarted)
  PRODUCER_FENCED: { kind: 'fatal', stage: 'produce', doc: 'another instance owns this partition\'s transactional id now' },
  MODEL_UNAVAILABLE: { kind: 'fatal', stage: 'infer', doc: 'the model cannot be loaded or its inference worker died' },
  BATCH_INFERENCE_FAILED: { kind: 'fatal', stage: 'infer', doc: 'whole batches fail repeatedly: the model, not a record, is broken' },
  CONFIG_INVALID: { kind: 'fatal', stage: 'config', doc: 'a configuration value is missing or invalid' },
  KAFKA_AUTH_FAILED: { kind: 'fatal', stage: 'config', doc: 'the broker refused the SASL credentials (KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD/KAFKA_SASL_MECHANISM)' },
  KAFKA_TLS_UNTRUSTED: { kind: 'fatal', stage: 'config', doc: 'a broker\'s certificate does not verify against KAFKA_SSL_CA_FILE (or the default CAs)' },
  KAFKA_NOT_AUTHORIZED: { kind: 'fatal', stage: 'config', doc: 'an ACL the scorer needs is missing: the message names the principal, the operation and the resource' },
  REGISTRY_REJECTED: { kind: 'fatal', stage: 'config', doc: 'the schema registry refused a request (4xx: incompatible schema, unauthorised, forbidden, an id or subject the configuration names is not there): a setting or the registry must change' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;
export type ErrorKind = (typeof ErrorCodes)[ErrorCode]['kind'];
export type Stage = (typeof ErrorCodes)[ErrorCode]['stage'];

export class ScorerError extends Error {
  override name = 'ScorerError';
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly stage: Stage;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.kind = ErrorCodes[code].kind;
    this.stage = ErrorCodes[code].stage;
  }
}

export const isPermanent = (err: unknown): err is ScorerError => err instanceof ScorerError && err.kind === 'permanent';
export const isTransient = (err: unknown): err is ScorerError => err instanceof ScorerError && err.kind === 'transient';

/** A bug in our code, never to be hidden as a record error. */
export const isBug = (err: unknown): boolean => err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError;

/** Short text for logs and dead-letter headers: the message plus the first cause's message (unless the message already says it). */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
