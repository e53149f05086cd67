/**
 * Finds or starts the real Kafka broker and schema registry the integration tests talk to:
 *  1. KAFKA_BROKERS and SCHEMA_REGISTRY_URL from the environment, when both are set;
 *  2. otherwise, when a Docker engine answers, containers via testcontainers (official images);
 *  3. otherwise the local JVM stack (scripts/stack), stopped again afterwards if this run started it.
 * If none works, setup throws and the whole run fails with the reason: integration tests never skip.
 */
import type { TestProject } from 'vitest/node';
import { stackDown, stackUp } from '../../scripts/stack/stack.js';
import { startContainers } from './containers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    schemaRegistryUrl: string;
    /** How the stack was obtained; tests that stop a service (registry outage) need to know. */
    stackMode: 'env' | 'docker' | 'local';
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const envBrokers = process.env.KAFKA_BROKERS;
  const envRegistry = process.env.SCHEMA_REGISTRY_URL;
  if (envBrokers && envRegistry) {
    console.log(`integration: using KAFKA_BROKERS=${envBrokers} SCHEMA_REGISTRY_URL=${envRegistry} from the environment`);
    provide(project, envBrokers, envRegistry, 'env');
    return async () => undefined;
  }

  const docker = await startContainers().catch((err: unknown) => {
    console.log(`integration: no Docker engine (${(err as Error).message.split('\n')[0]}); using the local JVM stack`);
    return undefined;
  });
  if (docker !== undefined) {
    provide(project, docker.kafkaBrokers, docker.schemaRegistryUrl, 'docker');
    return docker.stop;
  }

  const info = await stackUp((line) => console.log(`integration: ${line}`));
  provide(project, info.kafkaBrokers, info.schemaRegistryUrl, 'local');
  return async () => {
    // Stop only what this run started; a stack the developer started stays up.
    if (info.started.length > 0) await stackDown((line) => console.log(`integration: ${line}`));
  };
}

function provide(project: TestProject, kafkaBrokers: string, schemaRegistryUrl: string, stackMode: 'env' | 'docker' | 'local'): void {
  project.provide('kafkaBrokers', kafkaBrokers);
  project.provide('schemaRegistryUrl', schemaRegistryUrl);
  project.provide('stackMode', stackMode);
}
