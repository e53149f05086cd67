/**
 * The scorer's talk with the schema registry beyond the decode stage's cached reads by id
 * (src/stages/decode): the one classifier of registry errors, the plain REST calls, and the
 * output schema — registered under the topic-name strategy subject `<OUTPUT_TOPIC>-value`, or
 * an id the platform team registered for it (OUTPUT_SCHEMA_ID) — checked at start.
 *
 * Registration is the registry's own `POST /subjects/{subject}/versions`, not the client's
 * `register()`: that one reads `GET /config/{subject}`, refuses any level but the one it was given
 * (BACKWARD by default) and `PUT`s that level on a subject that had none, i.e. it changes the
 * registry's policy as a side effect. Here the registry alone judges compatibility, whatever the
 * subject's or the registry's level; nothing here ever writes configuration. The only reads of
 * configuration are the two that explain a 409 (incompatible) answer.
 */
import { request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import avro from 'avsc';
import type { Logger } from 'pino';
import { ScorerError } from '../errors.js';
import { type RetryOptions, retry } from '../retry.js';
import { certificateErrorCode } from './access.js';

// ---------------------------------------------------------------------------------------------
// Classification: one answer to "is this registry error worth another attempt?"

export type RegistryErrorKind = 'transient' | 'permanent';

/** Socket error codes that mean "the registry is not reachable right now". */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
// mappersmith (the registry client's HTTP layer) reports a socket error or its own timeout as a
// response with status 400 (408 with enableHTTP408OnTimeouts) whose message is the error's text.
const NETWORK_TEXT = new RegExp(`\\b(${[...NETWORK_CODES].join('|')})\\b|socket hang up|Timeout \\(\\d+ms\\)`);

/** HTTP status of a registry error (ours or the client's), undefined when there was no answer. */
export function registryStatusOf(err: unknown): number | undefined {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * transient: unreachable, timed out, 5xx, 408, 429 -> retry with backoff;
 * permanent: every other 4xx (incompatible, unauthorised, forbidden, not found, invalid) and
 * anything that is not a registry answer or a socket error -> stop, retrying cannot help.
 */
export function classifyRegistryError(err: unknown): RegistryErrorKind {
  if (err instanceof ScorerError) return err.kind === 'transient' ? 'transient' : 'permanent';
  const status = registryStatusOf(err);
  if (status === undefined) {
    const code = (err as { code?: unknown } | null)?.code;
    return typeof code === 'string' && NETWORK_CODES.has(code) ? 'transient' : 'permanent';
  }
  if (status >= 500 || status === 408 || status === 429) return 'transient';
  if (status === 400 && NETWORK_TEXT.test(String((err as Error).message))) return 'transient';
  return 'permanent';
}

// ---------------------------------------------------------------------------------------------
// Plain REST calls (Confluent Schema Registry API; Apicurio's /apis/ccompat/v7, Karapace)

export interface RegistryEndpoint {
  url: string;
  auth?: { username: string; password: string };
  /** PEM of the CA that signed the registry's certificate. */
  ca?: string;
  /** Per request, ms. */
  timeoutMs?: number;
}

/** A non-2xx answer. `errorCode` is the registry's own (Confluent: 40401 subject not found, 40408 no subject level, 409 incompatible, ...). */
export class RegistryHttpError extends Error {
  override name = 'RegistryHttpError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly errorCode: number | undefined,
    readonly detail: string,
  ) {
    // Apicurio lists every incompatible difference: keep messages readable.
    const text = detail.length > 300 ? `${detail.slice(0, 300)}...` : detail;
    super(`${method} ${path}: HTTP ${status}${errorCode !== undefined && errorCode !== status ? ` (error ${errorCode})` : ''}${text ? `: ${text}` : ''}`);
  }
}

export class RegistryRest {
  readonly #base: URL;
  readonly #prefix: string;
  readonly #authHeader: string | undefined;
  readonly #agent: HttpsAgent | undefined;
  readonly #timeoutMs: number;

  constructor({ url, auth, ca, timeoutMs = 10_000 }: RegistryEndpoint) {
    const base = new URL(url);
    // Credentials in the URL go into the header like SCHEMA_REGISTRY_USERNAME/PASSWORD, never into messages.
    const user = auth ?? (base.username ? { username: decodeURIComponent(base.username), password: decodeURIComponent(base.password) } : undefined);
    base.username = '';
    base.password = '';
    this.#base = base;
    this.#prefix = base.pathname.replace(/\/+$/, '');
    this.#authHeader = user && `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
    this.#agent = ca !== undefined && base.protocol === 'https:' ? new HttpsAgent({ ca, keepAlive: true }) : undefined;
    this.#timeoutMs = timeoutMs;
  }

  /** Which CAs verify the registry's certificate, for messages. */
  get caNote(): string {
    return this.#agent !== undefined ? 'SCHEMA_REGISTRY_CA_FILE' : "Node's default CAs (SCHEMA_REGISTRY_CA_FILE is unset)";
  }

  /** The registry URL without credentials, for messages. */
  get url(): string {
    return this.#base.href;
  }

  get<T>(path: string): Promise<T> {
    return this.#call<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.#call<T>('POST', path, body);
  }

  #call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const url = new URL(this.#base.href);
    const [pathname, query] = path.split('?');
    url.pathname = `${this.#prefix}${pathname}`;
    if (query !== undefined) url.search = query;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/vnd.schemaregistry.v1+json, application/json' };
    if (payload) Object.assign(headers, { 'content-type': 'application/vnd.schemaregistry.v1+json', 'content-length': String(payload.length) });
    if (this.#authHeader) headers.authorization = this.#authHeader;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method, headers, ...(this.#agent && { agent: this.#agent }) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text.length > 0 ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300 && json !== undefined) return resolve(json as T);
          // Confluent-style bodies carry error_code and message; others (a proxy, a wrong path) get their text cut short.
          const { error_code: code, message, title } = (json ?? {}) as { error_code?: unknown; message?: unknown; title?: unknown };
          const detail = typeof message === 'string' ? message : typeof title === 'string' ? title : text.slice(0, 200);
          reject(new RegistryHttpError(method, pathname ?? path, status, typeof code === 'number' ? code : undefined, status < 300 ? `not JSON: ${detail}` : detail));
        });
      });
      req.setTimeout(this.#timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${this.#timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Registering and checking schemas

const subjectPath = (subject: string) => encodeURIComponent(subject);

/** Retries transient registry errors (about 14 s in all by default), stops at once on permanent ones. */
export function withRegistryRetry<T>(fn: () => Promise<T>, what: string, logger: Pick<Logger, 'warn'> | undefined, opts: Partial<RetryOptions> = {}): Promise<T> {
  return retry(fn, {
    attempts: 8,
    initialDelayMs: 250,
    maxDelayMs: 5_000,
    shouldRetry: (err) => classifyRegistryError(err) === 'transient',
    onRetry: (err, attempt) => logger?.warn({ attempt, err: String(err) }, `${what} failed; retrying`),
    ...opts,
  });
}

/**
 * The subject's compatibility for a message, read-only: its own level, else the registry's
 * default. Confluent and Karapace answer 404 (error 40408) for a subject without a level of its
 * own; Apicurio answers 200 with the global level for an existing subject (so the two cannot be told apart there).
 */
export async function describeCompatibility(rest: RegistryRest, subject: string): Promise<string> {
  try {
    const { compatibilityLevel } = await rest.get<{ compatibilityLevel?: string }>(`/config/${subjectPath(subject)}`);
    return `compatibility ${compatibilityLevel ?? 'unknown'}`;
  } catch (err) {
    if (registryStatusOf(err) !== 404) return `compatibility unknown (${(err as Error).message})`;
  }
  try {
    const { compatibilityLevel } = await rest.get<{ compatibilityLevel?: string }>('/config');
    return `no compatibility level of its own; the registry's default is ${compatibilityLevel ?? 'unknown'}`;
  } catch (err) {
    return `compatibility unknown (${(err as Error).message})`;
  }
}

/**
 * Registers an Avro schema under a subject and returns its id (the existing id when it is already
 * there). The registry judges compatibility; a refusal is a REGISTRY_REJECTED error naming the
 * subject, its level and, in `advice`, what the caller's user can do.
 */
export async function registerSchema(rest: RegistryRest, subject: string, schema: avro.Schema, { advice = '', logger, retry: retryOpts }: { advice?: string; logger?: Pick<Logger, 'warn'>; retry?: Partial<RetryOptions> } = {}): Promise<number> {
  try {
    const { id } = await withRegistryRetry(() => rest.post<{ id: number }>(`/subjects/${subjectPath(subject)}/versions`, { schema: JSON.stringify(schema) }), `registering a schema under subject '${subject}'`, logger, retryOpts);
    return id;
  } catch (err) {
    throw await explain(rest, err, { subject, action: `registering a schema under subject '${subject}'`, advice });
  }
}

/** Turns a registry failure into a ScorerError whose message says what failed and what to do. */
async function explain(rest: RegistryRest, err: unknown, { subject, action, advice }: { subject?: string; action: string; advice: string }): Promise<ScorerError> {
  if (err instanceof ScorerError) return err;
  const status = registryStatusOf(err);
  const why = err instanceof Error ? err.message : String(err);
  if (classifyRegistryError(err) === 'transient') {
    return new ScorerError('REGISTRY_UNAVAILABLE', `${action} failed: the schema registry at ${rest.url} (SCHEMA_REGISTRY_URL) did not answer: ${why}`, { cause: err });
  }
  const then = advice ? ` ${advice}` : '';
  const certificate = certificateErrorCode(err);
  if (certificate !== undefined) {
    return new ScorerError('REGISTRY_REJECTED', `${action}: SCHEMA_REGISTRY_CA_FILE: the certificate of the schema registry at ${rest.url} does not verify against ${rest.caNote} (${certificate}); point SCHEMA_REGISTRY_CA_FILE at the CA that signed it`, { cause: err });
  }
  if (status === 409 && subject !== undefined) {
    const level = await describeCompatibility(rest, subject);
    return new ScorerError('REGISTRY_REJECTED', `subject '${subject}' (${level}) refuses the schema as incompatible with its existing versions (${why}).${then} Nothing in the registry was changed.`, { cause: err });
  }
  if (status === 401 || status === 403) {
    return new ScorerError('REGISTRY_REJECTED', `${action}: the schema registry refused the credentials (HTTP ${status}); check SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD and what they may do.${then}`, { cause: err });
  }
  if (status === 404 && subject !== undefined) {
    return new ScorerError('REGISTRY_REJECTED', `${action}: ${rest.url} answered 404: is SCHEMA_REGISTRY_URL the Confluent-compatible API (Apicurio: .../apis/ccompat/v7)? (${why})`, { cause: err });
  }
  return new ScorerError('REGISTRY_REJECTED', `${action} failed: ${why}`, { cause: err });
}

export interface OutputSchemaRegistration {
  subject: string;
  schemaId: number;
  /** How the id was obtained: registered at start, or given as OUTPUT_SCHEMA_ID and checked. */
  source: 'registered' | 'OUTPUT_SCHEMA_ID';
}

/**
 * The output schema's id: registered under `<outputTopic>-value`, or, when `schemaId` is given
 * (OUTPUT_SCHEMA_ID, for read-only registry credentials), that id. Either way the id is then read
 * back (`GET /schemas/ids/{id}`), which proves the scorer may read schemas, and must be this
 * schema (same Avro canonical form: consumers decode our records with it).
 */
export async function prepareOutputSchema(rest: RegistryRest, { outputTopic, schema, schemaId, logger }: { outputTopic: string; schema: avro.Schema; schemaId?: number; logger: Logger }): Promise<OutputSchemaRegistration> {
  const subject = `${outputTopic}-value`;
  const advice =
    'Write to a new OUTPUT_TOPIC, or have the subject\'s owner make the scorer\'s output schema (schemas/scored-event.avsc) acceptable there, ' +
    'or register it for the scorer and set OUTPUT_SCHEMA_ID to its id.';
  const id = schemaId ?? (await registerSchema(rest, subject, schema, { advice, logger }));
  const source = schemaId === undefined ? 'registered' : 'OUTPUT_SCHEMA_ID';
  const named = source === 'OUTPUT_SCHEMA_ID' ? `OUTPUT_SCHEMA_ID: schema id ${id}` : `schema id ${id} (registered under '${subject}')`;
  let found: { schema?: unknown; schemaType?: unknown };
  try {
    found = await withRegistryRetry(() => rest.get<{ schema?: unknown; schemaType?: unknown }>(`/schemas/ids/${id}`), `reading ${named}`, logger);
  } catch (err) {
    if (registryStatusOf(err) === 404) throw new ScorerError('REGISTRY_REJECTED', `${named} is not in the schema registry at ${rest.url}.`, { cause: err });
    throw await explain(rest, err, { action: `reading ${named}`, advice: '' });
  }
  const mismatch = schemaMismatch(found, schema);
  if (mismatch !== undefined) throw new ScorerError('REGISTRY_REJECTED', `${named} is ${mismatch}, not the scorer's output schema (schemas/scored-event.avsc).`);
  return { subject, schemaId: id, source };
}

/** Why a registry answer is not the expected Avro schema, or undefined when it is (same canonical form). */
function schemaMismatch(found: { schema?: unknown; schemaType?: unknown }, expected: avro.Schema): string | undefined {
  if (found.schemaType !== undefined && found.schemaType !== 'AVRO') return `a ${String(found.schemaType)} schema`;
  let type: avro.Type;
  try {
    type = avro.Type.forSchema(JSON.parse(String(found.schema)) as avro.Schema);
  } catch (err) {
    return `not a readable Avro schema (${(err as Error).message})`;
  }
  const want = avro.Type.forSchema(expected);
  return type.equals(want) ? undefined : `Avro ${type.name ?? type.typeName} with fingerprint ${type.fingerprint().toString('hex')} (expected ${want.name ?? want.typeName}, ${want.fingerprint().toString('hex')})`;
}
