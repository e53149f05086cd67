/**
 * Broker and registry addresses, and their security settings, for the scripts and test helpers:
 * the environment first, else `.stack/env` written by `npm run stack:up`. The security settings
 * use the scorer's own names (KAFKA_SSL_CA_FILE, KAFKA_SASL_*, SCHEMA_REGISTRY_USERNAME/PASSWORD/CA_FILE),
 * so a tool and the scorer started from the same environment talk to the same secure stack.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import type { RegistryEndpoint } from '../../src/kafka/registry.js';
import { ROOT } from './feature-events.js';

const SECURITY_KEYS = ['KAFKA_SSL_CA_FILE', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'SCHEMA_REGISTRY_USERNAME', 'SCHEMA_REGISTRY_PASSWORD', 'SCHEMA_REGISTRY_CA_FILE'] as const;

export interface StackEnv {
  KAFKA_BROKERS: string;
  SCHEMA_REGISTRY_URL: string;
  /** The security settings that are set (none for a plaintext stack). */
  security: Record<string, string>;
}

export function stackEnv(): StackEnv {
  const fromFile: Record<string, string> = {};
  const file = resolve(ROOT, '.stack/env');
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^export (\w+)=(.*)$/.exec(line.trim());
      if (m) fromFile[m[1] as string] = m[2] as string;
    }
  }
  const brokers = process.env.KAFKA_BROKERS ?? fromFile.KAFKA_BROKERS;
  const registry = process.env.SCHEMA_REGISTRY_URL ?? fromFile.SCHEMA_REGISTRY_URL;
  if (!brokers || !registry) {
    console.error('No Kafka/registry address: run `npm run stack:up` first (it writes .stack/env), or export KAFKA_BROKERS and SCHEMA_REGISTRY_URL.');
    process.exit(2);
  }
  const security: Record<string, string> = {};
  for (const k of SECURITY_KEYS) {
    const v = process.env[k] ?? fromFile[k];
    if (v) security[k] = v;
  }
  return { KAFKA_BROKERS: brokers, SCHEMA_REGISTRY_URL: registry, security };
}

/** kafkajs TLS and SASL settings from the scorer's variable names (nothing when none is set). */
export function kafkaSecurity(env: Record<string, string | undefined>): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const ca = env.KAFKA_SSL_CA_FILE;
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = env;
  return {
    ...(ca && { ssl: { ca: [readFileSync(ca, 'utf8')] } }),
    ...(mechanism && username && password && { sasl: { mechanism, username, password } as SASLOptions }),
  };
}

/** A registry endpoint (src/kafka/registry.ts RegistryRest) with the credentials and CA the variables name. */
export function registryEndpoint(url: string, env: Record<string, string | undefined>): RegistryEndpoint {
  const { SCHEMA_REGISTRY_USERNAME: username, SCHEMA_REGISTRY_PASSWORD: password, SCHEMA_REGISTRY_CA_FILE: ca } = env;
  return { url, ...(username && password && { auth: { username, password } }), ...(ca && { ca: readFileSync(ca, 'utf8') }) };
}
