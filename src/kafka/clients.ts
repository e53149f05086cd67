/**
 * Kafka and schema-registry clients built from configuration, security included (TLS, SASL,
 * registry basic auth and CA). kafkajs logs go through pino; kafkajs reports every retried
 * broker error at ERROR, so its ERROR becomes our warn (our own code logs real failures).
 */
// Must come before kafkajs is loaded: fixes its read_committed filtering (see the module).
import './kafkajs-fix.js';
import { Agent as HttpsAgent } from 'node:https';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { type Consumer, Kafka, type KafkaConfig, type SASLOptions, logLevel as kafkaLogLevel } from 'kafkajs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { RegistryRest } from './registry.js';

// kafkajs warns about its v2 partitioner change on every producer; we set keys, not partitions.
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

export function createKafka(config: Config, logger: Logger): Kafka {
  const { kafka } = config;
  const ssl = kafka.ssl;
  const kafkaConfig: KafkaConfig = {
    clientId: kafka.clientId,
    brokers: kafka.brokers,
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 10_000 },
    logLevel: kafkaLogLevel.INFO,
    logCreator: () => ({ level, log }) => {
      const { message, ...extra } = log;
      const namespace = log.namespace as string | undefined;
      // Our producers are transactional: a send that runs out of retries aborts the transaction,
      // so kafkajs's warning about limited idempotent retries does not apply (and would repeat per partition).
      if (message.startsWith('Limiting retries for the idempotent producer')) return logger.debug({ namespace }, message);
      if (level === kafkaLogLevel.ERROR || level === kafkaLogLevel.WARN) logger.warn({ namespace, ...extra }, message);
      else if (level === kafkaLogLevel.INFO) logger.debug({ namespace, ...extra }, message);
      else logger.trace({ namespace, ...extra }, message);
    },
  };
  if (ssl.enabled) {
    kafkaConfig.ssl = {
      rejectUnauthorized: ssl.rejectUnauthorized,
      ...(ssl.ca ? { ca: [ssl.ca.pem] } : {}),
      ...(ssl.cert ? { cert: ssl.cert.pem } : {}),
      ...(ssl.key ? { key: ssl.key.pem } : {}),
    };
  }
  if (kafka.sasl !== undefined) {
    kafkaConfig.sasl = { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username, password: kafka.sasl.password } as SASLOptions;
  }
  return new Kafka(kafkaConfig);
}

export function createSchemaRegistry(config: Config): SchemaRegistry {
  const { registry } = config;
  const agent = registry.ca ? new HttpsAgent({ ca: registry.ca.pem, keepAlive: true }) : undefined;
  return new SchemaRegistry({
    host: registry.url,
    clientId: config.kafka.clientId,
    ...(registry.auth ? { auth: { username: registry.auth.username, password: registry.auth.password } } : {}),
    ...(agent ? { agent } : {}),
    // The client retries 5xx itself; our decode stage adds its own timeout and retry on top.
    retry: { retries: 2, initialRetryTimeInSecs: 0.1, maxRetryTimeInSecs: 2 },
  });
}

/** The group's consumer, read_committed, offsets committed only inside transactions (src/stages/produce.ts). */
export function createGroupConsumer(kafka: Kafka, config: Config): Consumer {
  const { kafka: k } = config;
  return kafka.consumer({
    groupId: k.groupId,
    readUncommitted: false,
    sessionTimeout: k.sessionTimeoutMs,
    heartbeatInterval: k.heartbeatIntervalMs,
    rebalanceTimeout: Math.max(60_000, k.sessionTimeoutMs * 2),
    maxBytesPerPartition: k.fetch.maxBytesPerPartition,
    maxBytes: k.fetch.maxBytes,
    minBytes: k.fetch.minBytes,
    maxWaitTimeInMs: k.fetch.maxWaitTimeMs,
    // kafkajs restarts the consumer on retriable failures; a crash it cannot recover from ends the process.
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 30_000 },
  });
}

/** Plain REST calls to the registry (registration, checks), with the same credentials and CA as the client. */
export function createRegistryRest(config: Config): RegistryRest {
  const { registry } = config;
  return new RegistryRest({ url: registry.url, timeoutMs: registry.timeoutMs, ...(registry.auth && { auth: registry.auth }), ...(registry.ca && { ca: registry.ca.pem }) });
}
