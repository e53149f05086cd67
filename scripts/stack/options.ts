/**
 * Which local stack: its state directory, its ports on 127.0.0.1 and the Kafka release it runs,
 * and the environment variables that name them (STACK_DIR, STACK_KAFKA_PORT,
 * STACK_CONTROLLER_PORT, STACK_REGISTRY_PORT, STACK_KAFKA_VERSION, STACK_BROKERS,
 * STACK_BROKER_PORT_STEP, STACK_SECURITY). Free of kafkajs on purpose:
 * the integration tests' global setup reads options in vitest's own process, once per broker
 * line, and drives the stack through the CLI (see test/integration/global-setup.ts).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StackPorts } from './components.js';
import { parseKafkaVersion } from './kafka.js';
import { StackError } from './process.js';
import { type StackSecurity, parseStackSecurity } from './security.js';

export interface StackOptions {
  dir: string;
  ports: StackPorts;
  kafkaVersion: string;
  /** Kafka nodes (STACK_BROKERS): 1, or a cluster of 3 (up to 5). */
  brokers: number;
  /** STACK_SECURITY: `none` (plaintext, no auth) or `sasl_ssl` (./security.ts). */
  security: StackSecurity;
}

export function stackDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.STACK_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.stack');
}

/** The stack the environment names; a bad value throws a StackError naming the variable. */
export function stackOptions(env: NodeJS.ProcessEnv = process.env): StackOptions {
  const int = (name: string, dflt: number, min: number, max: number, what: string) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new StackError(`${name}: expected ${what} ${min}-${max}, got '${raw}'`);
    return n;
  };
  const port = (name: string, dflt: number) => int(name, dflt, 1, 65535, 'a TCP port');
  return {
    dir: stackDir(env),
    ports: {
      kafka: port('STACK_KAFKA_PORT', 9092),
      controller: port('STACK_CONTROLLER_PORT', 9093),
      registry: port('STACK_REGISTRY_PORT', 8081),
      step: int('STACK_BROKER_PORT_STEP', 100, 2, 10000, 'a port distance between nodes'),
    },
    kafkaVersion: parseKafkaVersion(env.STACK_KAFKA_VERSION),
    brokers: int('STACK_BROKERS', 1, 1, 5, 'a number of Kafka nodes'),
    security: parseStackSecurity(env.STACK_SECURITY),
  };
}

/** The environment that names `opts` (the inverse of stackOptions). */
export function stackEnv(opts: StackOptions): Record<string, string> {
  return {
    STACK_DIR: opts.dir,
    STACK_KAFKA_PORT: String(opts.ports.kafka),
    STACK_CONTROLLER_PORT: String(opts.ports.controller),
    STACK_REGISTRY_PORT: String(opts.ports.registry),
    STACK_KAFKA_VERSION: opts.kafkaVersion,
    STACK_BROKERS: String(opts.brokers),
    STACK_BROKER_PORT_STEP: String(opts.ports.step),
    STACK_SECURITY: opts.security,
  };
}
