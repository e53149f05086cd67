/**
 * Kafka security failures, in one place: an untrusted broker certificate, refused SASL
 * credentials and a missing ACL are settings (or grants) to change, never worth another attempt,
 * so each becomes a fatal ScorerError whose message names what to change — the process exits 1
 * (src/main.ts) instead of retrying. No message here ever carries a password.
 *
 * kafkajs treats a TLS handshake failure like any connection error and retries it for half a
 * minute (then reports only "Connection error"), so `checkBrokerTls` shakes hands with the brokers
 * itself before the first kafkajs connection, with the same CA and client certificate.
 */
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Config } from '../config.js';
import { ScorerError } from '../errors.js';

/** Node's codes for a peer certificate that does not verify (chain, name, dates). */
export const CERTIFICATE_ERROR_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The first error code in the cause chain that is a certificate failure. */
export function certificateErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 8; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && CERTIFICATE_ERROR_CODES.has(e.code)) return e.code;
  }
  return undefined;
}

/** The Kafka protocol error type (`TOPIC_AUTHORIZATION_FAILED`, …) anywhere in a kafkajs error's cause chain. */
export function kafkaErrorType(err: unknown): string | undefined {
  const e = err as { type?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown } | undefined;
  if (e === undefined || e === null) return undefined;
  if (typeof e.type === 'string') return e.type;
  // KafkaJSAggregateError (createTopics): one error per topic.
  if (Array.isArray(e.errors) && e.errors.length > 0) return kafkaErrorType(e.errors[0]);
  if (e.originalError !== undefined) return kafkaErrorType(e.originalError);
  if (e.cause !== undefined && e.cause !== err) return kafkaErrorType(e.cause);
  return undefined;
}

const AUTHORIZATION_TYPES = new Set(['TOPIC_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED']);

/** The authorization failure type of a kafkajs error, or undefined when it is none. */
export const authorizationFailure = (err: unknown): string | undefined => ((t) => (t !== undefined && AUTHORIZATION_TYPES.has(t) ? t : undefined))(kafkaErrorType(err));

/** Who the broker sees: `User:<KAFKA_SASL_USERNAME>`, or the anonymous/TLS principal without SASL. */
export const principalOf = (config: Config): string => (config.kafka.sasl ? `User:${config.kafka.sasl.username}` : 'this client (no KAFKA_SASL_USERNAME)');

export interface AccessNeeded {
  /** What the principal needs, as kafka-acls names it: `Write on topic 'scores-dlq'`. */
  needs: string;
  /** What was being done. */
  action: string;
}

/** A missing ACL: fatal, naming the principal, the resource and the operation. */
export function notAuthorized(who: Config | string, err: unknown, { needs, action }: AccessNeeded): ScorerError {
  const type = authorizationFailure(err) ?? 'not authorized';
  const principal = typeof who === 'string' ? who : principalOf(who);
  return new ScorerError('KAFKA_NOT_AUTHORIZED', `${action}: the broker refused it (${type}): ${principal} needs ${needs} (README "Security" lists the minimal ACLs)`, { cause: err });
}

/** A failure of the first Kafka connection explained as the setting to change, or undefined when it is not a security failure. */
export function explainConnectFailure(config: Config, err: unknown): ScorerError | undefined {
  const name = (err as { name?: unknown } | undefined)?.name;
  if (name === 'KafkaJSSASLAuthenticationError') {
    const { sasl } = config.kafka;
    const user = sasl ? `user '${sasl.username}' (${sasl.mechanism.toUpperCase()})` : 'the client';
    return new ScorerError('KAFKA_AUTH_FAILED', `KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD: the broker refused to authenticate ${user}: wrong password, unknown user or a mechanism the listener does not enable (${(err as Error).message})`, { cause: err });
  }
  const code = certificateErrorCode(err);
  if (code !== undefined) return untrusted(config, config.kafka.brokers.join(','), code, err);
  const type = authorizationFailure(err);
  if (type !== undefined) return notAuthorized(config, err, { action: 'connecting to Kafka', needs: type === 'CLUSTER_AUTHORIZATION_FAILED' ? 'Describe on the cluster' : 'access to the resource named in the error' });
  return undefined;
}

function untrusted(config: Config, broker: string, code: string, cause: unknown): ScorerError {
  const ca = config.kafka.ssl.ca ? `KAFKA_SSL_CA_FILE (${config.kafka.ssl.ca.path})` : "Node's default CAs (KAFKA_SSL_CA_FILE is unset)";
  return new ScorerError('KAFKA_TLS_UNTRUSTED', `KAFKA_SSL_CA_FILE: the certificate of broker ${broker} does not verify against ${ca} (${code}); point KAFKA_SSL_CA_FILE at the CA that signed the broker's certificate`, { cause });
}

/**
 * Before kafkajs connects (TLS on only): a TLS handshake with every broker, as kafkajs would
 * make it. A certificate that does not verify throws KAFKA_TLS_UNTRUSTED; an unreachable broker
 * is left to kafkajs's own retries (transient).
 */
export async function checkBrokerTls(config: Config, timeoutMs = 5_000): Promise<void> {
  const { ssl, brokers } = config.kafka;
  if (!ssl.enabled || !ssl.rejectUnauthorized) return;
  const failures = await Promise.all(
    brokers.map(
      (broker) =>
        new Promise<ScorerError | undefined>((resolve) => {
          const at = broker.lastIndexOf(':');
          const host = broker.slice(0, at);
          const socket = tlsConnect({
            host,
            port: Number(broker.slice(at + 1)),
            ...(isIP(host) === 0 && { servername: host }),
            ...(ssl.ca && { ca: [ssl.ca.pem] }),
            ...(ssl.cert && { cert: ssl.cert.pem }),
            ...(ssl.key && { key: ssl.key.pem }),
            timeout: timeoutMs,
          });
          const done = (result: ScorerError | undefined) => {
            socket.destroy();
            resolve(result);
          };
          socket.once('secureConnect', () => done(undefined));
          socket.once('timeout', () => done(undefined));
          socket.once('error', (err) => {
            const code = certificateErrorCode(err);
            done(code === undefined ? undefined : untrusted(config, broker, code, err));
          });
        }),
    ),
  );
  const failure = failures.find((f) => f !== undefined);
  if (failure !== undefined) throw failure;
}
