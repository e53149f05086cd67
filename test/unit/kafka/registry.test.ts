/**
 * The registry-error classifier and the plain REST calls, against the error shapes the scorer
 * really meets: our own REST client's and the @kafkajs/confluent-schema-registry client's, from a
 * loopback HTTP server answering like Confluent Schema Registry (the integration tests talk to
 * the real Apicurio), a closed port and a server that never answers.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type avro from 'avsc';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScorerError } from '../../../src/errors.js';
import { RegistryHttpError, RegistryRest, classifyRegistryError, prepareOutputSchema, registerSchema, registryStatusOf } from '../../../src/kafka/registry.js';
import { freePort } from '../../helpers/net.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const scoredSchema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as avro.Schema;
const otherSchema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/feature-event.avsc'), 'utf8')) as avro.Schema;
const silent = pino({ level: 'silent' });
const fast = { initialDelayMs: 1, maxDelayMs: 2 };

type Handler = (req: IncomingMessage, body: string) => { status: number; body?: unknown } | 'hang';

/** A loopback HTTP server answering with `handler`; records every request as "METHOD /path". */
class FakeRegistry {
  readonly requests: string[] = [];
  handler: Handler = () => ({ status: 500 });
  #server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        this.requests.push(`${req.method} ${req.url}`);
        const answer = this.handler(req, body);
        if (answer === 'hang') return; // never answers; the client's timeout must fire
        res.writeHead(answer.status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
        res.end(answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((r) => this.#server?.listen(0, '127.0.0.1', r));
    this.port = (this.#server?.address() as { port: number }).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/apis/ccompat/v7`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((r) => this.#server?.close(r));
  }
}

const fake = new FakeRegistry();
beforeAll(() => fake.start());
afterAll(() => fake.stop());

/** What a call rejects with. */
async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('classifyRegistryError', () => {
  it.each([
    ['a 5xx answer', { status: 503 }, 'transient'],
    ['500', { status: 500 }, 'transient'],
    ['408 request timeout', { status: 408 }, 'transient'],
    ['429 too many requests', { status: 429 }, 'transient'],
    ['409 incompatible', { status: 409 }, 'permanent'],
    ['401 unauthorised', { status: 401 }, 'permanent'],
    ['403 forbidden', { status: 403 }, 'permanent'],
    ['404 not found', { status: 404 }, 'permanent'],
    ['422 invalid schema', { status: 422 }, 'permanent'],
    ['a real 400', Object.assign(new Error('Schema registry - Error, status 400: bad request'), { status: 400 }), 'permanent'],
    ['mappersmith\'s 400 for a refused connection', Object.assign(new Error('Schema registry - Error, status 400: connect ECONNREFUSED 127.0.0.1:1'), { status: 400 }), 'transient'],
    ['mappersmith\'s 400 for its timeout', Object.assign(new Error('Error, status 400: Timeout (1000ms)'), { status: 400 }), 'transient'],
    ['mappersmith\'s 400 for a reset', Object.assign(new Error('Error, status 400: socket hang up'), { status: 400 }), 'transient'],
    ['a socket error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'transient'],
    ['a DNS failure', Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' }), 'transient'],
    ['an untrusted certificate', Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'permanent'],
    ['a transient ScorerError (our timeout)', new ScorerError('REGISTRY_UNAVAILABLE', 'no answer'), 'transient'],
    ['a permanent ScorerError', new ScorerError('REGISTRY_REJECTED', 'refused'), 'permanent'],
    ['an error without status or code (the client refusing a compatibility level)', new Error('Compatibility does not match the configuration (BACKWARD != FULL)'), 'permanent'],
    ['a bug', new TypeError('x is not a function'), 'permanent'],
    ['not an error at all', undefined, 'permanent'],
  ])('%s is %s', (_what, err, kind) => {
    expect(classifyRegistryError(err)).toBe(kind);
  });
});

describe('errors as they really arrive', () => {
  const closed = async () => `http://127.0.0.1:${await freePort()}`;

  it('our REST client: a closed port and a server that never answers are transient', async () => {
    const refused = await failure(new RegistryRest({ url: await closed() }).get('/config'));
    expect((refused as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(classifyRegistryError(refused)).toBe('transient');
    fake.handler = () => 'hang';
    const timedOut = await failure(new RegistryRest({ url: fake.url, timeoutMs: 100 }).get('/config'));
    expect(classifyRegistryError(timedOut)).toBe('transient');
  });

  it.each([
    [503, 'transient'],
    [401, 'permanent'],
    [403, 'permanent'],
    [404, 'permanent'],
    [409, 'permanent'],
  ])('our REST client: HTTP %i is %s, with status, error code and message kept', async (status, kind) => {
    fake.handler = () => ({ status, body: { error_code: status * 100 + 1, message: `answered ${status}` } });
    const err = await failure(new RegistryRest({ url: fake.url }).get('/schemas/ids/7'));
    expect(err).toBeInstanceOf(RegistryHttpError);
    expect(registryStatusOf(err)).toBe(status);
    expect((err as RegistryHttpError).errorCode).toBe(status * 100 + 1);
    expect((err as Error).message).toBe(`GET /schemas/ids/7: HTTP ${status} (error ${status * 100 + 1}): answered ${status}`);
    expect(classifyRegistryError(err)).toBe(kind);
  });

  it('our REST client: a 2xx that is not JSON (a proxy page) is permanent', async () => {
    fake.handler = () => ({ status: 200, body: '<html>login</html>' });
    expect(classifyRegistryError(await failure(new RegistryRest({ url: fake.url }).get('/config')))).toBe('permanent');
  });

  it('the registry client (mappersmith): a closed port is transient, 401 and 404 are permanent', async () => {
    const client = (host: string) => new SchemaRegistry({ host, retry: { retries: 0 } });
    expect(classifyRegistryError(await failure(client(await closed()).getSchema(7)))).toBe('transient');
    fake.handler = () => ({ status: 401, body: { error_code: 401, message: 'Unauthorized' } });
    expect(classifyRegistryError(await failure(client(fake.url).getSchema(7)))).toBe('permanent');
    fake.handler = () => ({ status: 404, body: { error_code: 40403, message: 'Schema not found' } });
    const notFound = await failure(client(fake.url).getSchema(8));
    expect(registryStatusOf(notFound)).toBe(404);
    expect(classifyRegistryError(notFound)).toBe('permanent');
  });

  it('sends credentials as basic auth, from the URL too, and never puts them in a message', async () => {
    let authorization: string | undefined;
    fake.handler = (req) => {
      authorization = req.headers.authorization;
      return { status: 401, body: { error_code: 401, message: 'Unauthorized' } };
    };
    const err = await failure(new RegistryRest({ url: `http://scorer:s3cret-pw@127.0.0.1:${fake.port}/apis/ccompat/v7` }).get('/config'));
    expect(authorization).toBe(`Basic ${Buffer.from('scorer:s3cret-pw').toString('base64')}`);
    const explained = await failure(registerSchema(new RegistryRest({ url: `http://scorer:s3cret-pw@127.0.0.1:${fake.port}` }), 's-value', scoredSchema));
    expect(`${(err as Error).message} ${(explained as Error).message}`).not.toContain('s3cret-pw');
    expect((explained as Error).message).toContain('SCHEMA_REGISTRY_USERNAME');
  });
});

describe('registerSchema', () => {
  it('POSTs the schema and nothing else: no configuration read or written on success', async () => {
    fake.requests.length = 0;
    fake.handler = () => ({ status: 200, body: { id: 41 } });
    expect(await registerSchema(new RegistryRest({ url: fake.url }), 'scores-value', scoredSchema)).toBe(41);
    expect(fake.requests).toEqual(['POST /apis/ccompat/v7/subjects/scores-value/versions']);
  });

  it('retries 5xx and unreachable, then gives the registry time to come back', async () => {
    let calls = 0;
    fake.handler = () => (++calls < 3 ? { status: 503, body: { error_code: 50003, message: 'busy' } } : { status: 200, body: { id: 42 } });
    expect(await registerSchema(new RegistryRest({ url: fake.url }), 'scores-value', scoredSchema, { retry: fast })).toBe(42);
    expect(calls).toBe(3);
  });

  it.each([
    ['Confluent / Karapace: the subject has no level (404 40408), the default is read', { status: 404, body: { error_code: 40408, message: "Subject 'scores-value' does not have subject-level compatibility configured" } }, "subject 'scores-value' (no compatibility level of its own; the registry's default is BACKWARD)"],
    ['Apicurio or a subject level: 200 with the level', { status: 200, body: { compatibilityLevel: 'FULL' } }, "subject 'scores-value' (compatibility FULL)"],
  ])('a 409 stops at once, naming the subject and its level — %s', async (_what, subjectConfig, named) => {
    fake.requests.length = 0;
    fake.handler = (req) => {
      if (req.method === 'POST') return { status: 409, body: { error_code: 409, message: 'Schema being registered is incompatible with an earlier schema' } };
      if (req.url?.endsWith('/config/scores-value')) return subjectConfig;
      return { status: 200, body: { compatibilityLevel: 'BACKWARD' } };
    };
    const err = await failure(registerSchema(new RegistryRest({ url: fake.url }), 'scores-value', scoredSchema, { advice: 'Do this.', retry: fast }));
    expect(err).toBeInstanceOf(ScorerError);
    expect((err as ScorerError).code).toBe('REGISTRY_REJECTED');
    expect((err as Error).message).toContain(named);
    expect((err as Error).message).toContain('incompatible with an earlier schema');
    expect((err as Error).message).toContain('Do this.');
    // One attempt, then read-only lookups of the level: nothing written, nothing retried.
    expect(fake.requests[0]).toBe('POST /apis/ccompat/v7/subjects/scores-value/versions');
    expect(fake.requests.slice(1).every((r) => r.startsWith('GET /apis/ccompat/v7/config'))).toBe(true);
  });

  it('gives up on an unreachable registry as REGISTRY_UNAVAILABLE naming SCHEMA_REGISTRY_URL', async () => {
    const err = await failure(registerSchema(new RegistryRest({ url: `http://127.0.0.1:${await freePort()}` }), 'x-value', scoredSchema, { retry: { ...fast, attempts: 2 } }));
    expect((err as ScorerError).code).toBe('REGISTRY_UNAVAILABLE');
    expect((err as Error).message).toMatch(/SCHEMA_REGISTRY_URL.*ECONNREFUSED/);
  });
});

describe('prepareOutputSchema with OUTPUT_SCHEMA_ID', () => {
  it('reads the id, registers nothing, and accepts the same schema with other docs', async () => {
    fake.requests.length = 0;
    const withOtherDocs = { ...(scoredSchema as object), doc: 'written by the platform team' };
    fake.handler = () => ({ status: 200, body: { schema: JSON.stringify(withOtherDocs) } });
    const r = await prepareOutputSchema(new RegistryRest({ url: fake.url }), { outputTopic: 'scores', schema: scoredSchema, schemaId: 77, logger: silent });
    expect(r).toEqual({ subject: 'scores-value', schemaId: 77, source: 'OUTPUT_SCHEMA_ID' });
    expect(fake.requests).toEqual(['GET /apis/ccompat/v7/schemas/ids/77']);
  });

  it.each([
    ['an id the registry does not have', { status: 404, body: { error_code: 40403, message: 'Schema not found' } }, /^OUTPUT_SCHEMA_ID: schema id 77 is not in the schema registry/],
    ['another Avro schema', { status: 200, body: { schema: JSON.stringify(otherSchema) } }, /^OUTPUT_SCHEMA_ID: schema id 77 is Avro io\.kafkaonnxscorer\.v1\.FeatureEvent .*not the scorer's output schema/],
    ['a Protobuf schema', { status: 200, body: { schema: 'syntax = "proto3";', schemaType: 'PROTOBUF' } }, /^OUTPUT_SCHEMA_ID: schema id 77 is a PROTOBUF schema/],
  ])('stops with REGISTRY_REJECTED for %s', async (_what, answer, message) => {
    fake.handler = () => answer;
    const err = await failure(prepareOutputSchema(new RegistryRest({ url: fake.url }), { outputTopic: 'scores', schema: scoredSchema, schemaId: 77, logger: silent }));
    expect((err as ScorerError).code).toBe('REGISTRY_REJECTED');
    expect((err as Error).message).toMatch(message);
  });
});
