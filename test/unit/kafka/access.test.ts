/**
 * kafka/access.ts: security failures become fatal errors naming the setting or the ACL. The TLS
 * check shakes hands with a real local TLS server whose certificate one CA signed and another did
 * not (made with openssl for the test); the registry's certificate check goes through RegistryRest.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../../../src/config.js';
import { ScorerError } from '../../../src/errors.js';
import { authorizationFailure, checkBrokerTls, explainConnectFailure, kafkaErrorType } from '../../../src/kafka/access.js';
import { RegistryRest, registerSchema } from '../../../src/kafka/registry.js';
import { tempDir } from '../../helpers/fixtures.js';

let dir: string;
let port: number;
let close: () => void;

/** A CA, a second CA, and a server certificate for 127.0.0.1 signed by the first. */
function makeCertificates(d: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: d, stdio: 'ignore' });
  for (const ca of ['ca', 'other']) ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=srv');
  writeFileSync(join(d, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext');
}

beforeAll(async () => {
  dir = tempDir('access-');
  makeCertificates(dir);
  const server = createTlsServer({ cert: readFileSync(join(dir, 'srv.pem')), key: readFileSync(join(dir, 'srv.key')) }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  close = () => server.close();
});
afterAll(() => close?.());

const config = (env: Record<string, string>): Config =>
  loadConfig({ KAFKA_BROKERS: `127.0.0.1:${port}`, INPUT_TOPIC: 'in', OUTPUT_TOPIC: 'out', DLQ_TOPIC: 'dlq', SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1', MODEL_PATH: join(import.meta.dirname, '../../../models/churn.onnx'), ...env });

describe('checkBrokerTls', () => {
  it('passes a broker whose certificate KAFKA_SSL_CA_FILE signed', async () => {
    await expect(checkBrokerTls(config({ KAFKA_SSL_CA_FILE: join(dir, 'ca.pem') }))).resolves.toBeUndefined();
  });

  it('stops on a certificate another CA signed: KAFKA_TLS_UNTRUSTED naming KAFKA_SSL_CA_FILE and its path', async () => {
    const err = await checkBrokerTls(config({ KAFKA_SSL_CA_FILE: join(dir, 'other.pem') })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScorerError);
    expect(err).toMatchObject({ code: 'KAFKA_TLS_UNTRUSTED', kind: 'fatal' });
    expect((err as Error).message).toMatch(new RegExp(`^KAFKA_SSL_CA_FILE: the certificate of broker 127.0.0.1:${port} does not verify against KAFKA_SSL_CA_FILE \\(${join(dir, 'other.pem')}\\)`));
  });

  it('leaves an unreachable broker to kafkajs (transient), and does nothing without TLS', async () => {
    await expect(checkBrokerTls(config({ KAFKA_BROKERS: '127.0.0.1:1', KAFKA_SSL_CA_FILE: join(dir, 'ca.pem') }))).resolves.toBeUndefined();
    await expect(checkBrokerTls(config({}))).resolves.toBeUndefined();
  });
});

describe('explainConnectFailure and the error walk', () => {
  it('a SASL refusal names KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD and the user, never the password', () => {
    const c = config({ KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'scorer', KAFKA_SASL_PASSWORD: 'pa55-secret' });
    const err = explainConnectFailure(c, Object.assign(new Error('SASL SCRAM SHA512 authentication failed: invalid credentials'), { name: 'KafkaJSSASLAuthenticationError' }));
    expect(err).toMatchObject({ code: 'KAFKA_AUTH_FAILED' });
    expect(err?.message).toContain("KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD: the broker refused to authenticate user 'scorer' (SCRAM-SHA-512)");
    expect(err?.message).not.toContain('pa55-secret');
    expect(explainConnectFailure(c, new Error('ECONNREFUSED'))).toBeUndefined();
  });

  it('finds the protocol error type through kafkajs wrappers and aggregate errors', () => {
    const denied = Object.assign(new Error('x'), { type: 'TOPIC_AUTHORIZATION_FAILED' });
    expect(kafkaErrorType({ errors: [denied] })).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(authorizationFailure({ originalError: { cause: denied } })).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(authorizationFailure(Object.assign(new Error('y'), { type: 'NOT_LEADER_FOR_PARTITION' }))).toBeUndefined();
  });
});

describe('registry certificate', () => {
  it('a registry certificate SCHEMA_REGISTRY_CA_FILE did not sign stops at once, naming SCHEMA_REGISTRY_CA_FILE', async () => {
    const server = createHttpsServer({ cert: readFileSync(join(dir, 'srv.pem')), key: readFileSync(join(dir, 'srv.key')) }, (_req, res) => res.end('{}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const err = await registerSchema(new RegistryRest({ url, ca: readFileSync(join(dir, 'other.pem'), 'utf8') }), 's-value', { type: 'string' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'REGISTRY_REJECTED' });
      expect((err as Error).message).toContain('SCHEMA_REGISTRY_CA_FILE: the certificate of the schema registry');
    } finally {
      server.close();
    }
  });
});
