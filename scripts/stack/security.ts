/**
 * STACK_SECURITY=sasl_ssl: what a secure local stack is made of, in one place (README "Security").
 * - TLS: a CA and one broker/registry certificate (CN=kafka-broker, SAN IP:127.0.0.1 and
 *   DNS:localhost), made once with the machine's `openssl` into `<stack>/security/`; the broker's
 *   PKCS12 key store and trust store come from `openssl pkcs12` and `keytool` (the JDK's).
 * - Kafka: the client listener is SASL_SSL with SCRAM-SHA-512 only, and brokers talk to each other
 *   over it as `admin`. The controller listener is SSL with client certificates required: KRaft
 *   controllers cannot authenticate SCRAM (its credentials live in the metadata they serve), so
 *   nodes prove themselves with the broker certificate, principal `User:CN=kafka-broker`. SCRAM
 *   users (`admin`, the stack's own tools' super user, and `scorer`, which gets nothing but the ACLs
 *   it is granted) are added when storage is formatted (`--add-scram`). StandardAuthorizer on,
 *   super.users admin and the broker certificate, allow.everyone.if.no.acl.found=false.
 * - Registry: Apicurio's own Quarkus HTTPS (no plain HTTP port) with basic auth against embedded
 *   users `admin` and `scorer` on every path, health included. (Apicurio's role-based
 *   authorization stays off: both users may read and register schemas.)
 * Passwords are random per stack, kept in `<stack>/security/credentials.json` (mode 0600) and
 * written only to files of mode 0600 (broker config, registry config, `.stack/env`).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StackError, run } from './process.js';

export const STACK_SECURITIES = ['none', 'sasl_ssl'] as const;
export type StackSecurity = (typeof STACK_SECURITIES)[number];

/** Validates STACK_SECURITY (empty or unset: none). */
export function parseStackSecurity(raw: string | undefined): StackSecurity {
  if (raw === undefined || raw === '') return 'none';
  const v = raw.toLowerCase();
  if (!(STACK_SECURITIES as readonly string[]).includes(v)) throw new StackError(`STACK_SECURITY: expected none or sasl_ssl, got '${raw}'`);
  return v as StackSecurity;
}

/** The SCRAM user the stack's tools (readiness probes, topic creation, test helpers) use: a super user. */
export const ADMIN_USER = 'admin';
/** The least-privileged user the scorer runs as in the tests: only the ACLs granted to it (README "Security"). */
export const SCORER_USER = 'scorer';
/** The principal of the broker certificate (the controller listener's mutual TLS). */
export const BROKER_PRINCIPAL = 'User:CN=kafka-broker';

export interface Credentials {
  /** Password of the PKCS12 key and trust stores. */
  store: string;
  admin: string;
  scorer: string;
}

export interface SecurityFiles {
  dir: string;
  caPem: string;
  /** Broker (and registry) certificate and key, PEM. */
  certPem: string;
  keyPem: string;
  keystore: string;
  truststore: string;
  credentials: Credentials;
}

const secret = () => randomBytes(18).toString('hex');

function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its mode otherwise
}

/** The stack's certificates and passwords, made on first use (idempotent; `rm -r <stack>/security` makes new ones). */
export async function prepareSecurity(root: string): Promise<SecurityFiles> {
  const dir = join(root, 'security');
  const f = (name: string) => join(dir, name);
  const files = { dir, caPem: f('ca.pem'), certPem: f('broker.pem'), keyPem: f('broker.key'), keystore: f('broker.p12'), truststore: f('truststore.p12') };
  const credFile = f('credentials.json');
  if (existsSync(credFile) && existsSync(files.truststore)) {
    return { ...files, credentials: JSON.parse(readFileSync(credFile, 'utf8')) as Credentials };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const credentials: Credentials = { store: secret(), admin: secret(), scorer: secret() };
  const tool = (cmd: string, args: string[], what: string) => run(cmd, args, { cwd: dir, what, hint: `\`${cmd}\` comes with ${cmd === 'keytool' ? 'the JDK' : 'OpenSSL'}; remove ${dir} and retry.` });
  await tool('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '825', '-subj', '/CN=kafka-onnx-scorer local stack CA'], 'making the stack CA');
  await tool('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'broker.key', '-out', 'broker.csr', '-subj', '/CN=kafka-broker'], 'making the broker key');
  writeFileSync(f('broker.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  await tool('openssl', ['x509', '-req', '-in', 'broker.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'broker.pem', '-days', '825', '-extfile', 'broker.ext'], 'signing the broker certificate');
  await tool('openssl', ['pkcs12', '-export', '-in', 'broker.pem', '-inkey', 'broker.key', '-certfile', 'ca.pem', '-name', 'broker', '-out', 'broker.p12', '-passout', `pass:${credentials.store}`], 'making the broker key store');
  await tool('keytool', ['-importcert', '-noprompt', '-alias', 'ca', '-file', 'ca.pem', '-keystore', 'truststore.p12', '-storetype', 'PKCS12', '-storepass', credentials.store], 'making the trust store');
  for (const k of ['ca.key', 'broker.key', 'broker.p12']) chmodSync(f(k), 0o600);
  writePrivate(credFile, `${JSON.stringify(credentials, null, 2)}\n`);
  return { ...files, credentials };
}

/** server.properties lines of a SASL_SSL node (listeners, TLS stores, SCRAM, the authorizer). */
export function kafkaSecurityConfig(sec: SecurityFiles, ports: { kafka: number; controller: number }): string {
  const { store, admin } = sec.credentials;
  return `listeners=SASL_SSL://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.controller}
advertised.listeners=SASL_SSL://127.0.0.1:${ports.kafka}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${ADMIN_USER}" password="${admin}";
listener.name.controller.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=${sec.keystore}
ssl.keystore.password=${store}
ssl.key.password=${store}
ssl.truststore.type=PKCS12
ssl.truststore.location=${sec.truststore}
ssl.truststore.password=${store}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:${ADMIN_USER};${BROKER_PRINCIPAL}
allow.everyone.if.no.acl.found=false
`;
}

/** `kafka-storage format` arguments that create the SCRAM users. */
export const scramFormatArgs = (sec: SecurityFiles): string[] =>
  [ADMIN_USER, SCORER_USER].flatMap((u) => ['--add-scram', `SCRAM-SHA-512=[name=${u},password=${sec.credentials[u === ADMIN_USER ? 'admin' : 'scorer']}]`]);

/** Quarkus runtime configuration of the registry: HTTPS only, basic auth on every path. */
export function registrySecurityConfig(sec: SecurityFiles, port: number): string {
  const { admin, scorer } = sec.credentials;
  return `quarkus.http.ssl-port=${port}
quarkus.http.ssl.certificate.files=${sec.certPem}
quarkus.http.ssl.certificate.key-files=${sec.keyPem}
quarkus.http.insecure-requests=disabled
quarkus.http.auth.basic=true
quarkus.security.users.embedded.enabled=true
quarkus.security.users.embedded.plain-text=true
quarkus.security.users.embedded.users.${ADMIN_USER}=${admin}
quarkus.security.users.embedded.users.${SCORER_USER}=${scorer}
quarkus.http.auth.permission.everything.paths=/*
quarkus.http.auth.permission.everything.policy=authenticated
`;
}

/** Writes a config file with secrets in it (mode 0600). */
export const writeSecretFile = writePrivate;

/**
 * The scorer's settings (src/config.ts names) for this stack, as the admin: what `.stack/env`
 * exports. STACK_SCORER_USERNAME/PASSWORD name the least-privileged user for who wants to run as it.
 */
export function securityEnv(sec: SecurityFiles): Record<string, string> {
  return {
    KAFKA_SSL_CA_FILE: sec.caPem,
    KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KAFKA_SASL_USERNAME: ADMIN_USER,
    KAFKA_SASL_PASSWORD: sec.credentials.admin,
    SCHEMA_REGISTRY_USERNAME: ADMIN_USER,
    SCHEMA_REGISTRY_PASSWORD: sec.credentials.admin,
    SCHEMA_REGISTRY_CA_FILE: sec.caPem,
    STACK_SCORER_USERNAME: SCORER_USER,
    STACK_SCORER_PASSWORD: sec.credentials.scorer,
  };
}
