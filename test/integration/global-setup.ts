/**
 * Finds or starts the real Kafka broker and schema registry one broker line of the integration
 * tests talks to (test/integration/lines.ts; the line is the vitest project running this setup):
 *  1. for the default line, KAFKA_BROKERS and SCHEMA_REGISTRY_URL from the environment, when both
 *     are set (a line pinned to a release or a cluster always gets its own: that is its point);
 *  2. otherwise, when a Docker engine answers, containers via testcontainers (official images),
 *     except for the cluster line, whose tests stop and start nodes of the local stack by pid;
 *  3. otherwise the local JVM stack (scripts/stack), stopped again afterwards if this run started it;
 *     a moved line's stack runs in its own directory on its own ports, beside the default one.
 *     It is driven through its CLI in a child process, not imported: vitest evaluates this file
 *     once per project, and a second evaluation of src/kafka/kafkajs-fix.ts (which the stack's
 *     readiness probe loads) in the same process refuses to run, kafkajs being loaded already.
 * If none works, setup throws and the whole run fails with the reason: integration tests never skip.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { type StackOptions, stackEnv, stackOptions } from '../../scripts/stack/options.js';
import type { StackInfo } from '../../scripts/stack/stack.js';
import { startContainers } from './containers.js';
import { BROKER_LINES, type BrokerLine } from './lines.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    schemaRegistryUrl: string;
    /** How the stack was obtained; tests that stop a service (registry outage) need to know. */
    stackMode: 'env' | 'docker' | 'local';
    /** This line's local stack (meaningful when stackMode is 'local'): tests that stop and restart it pass it on. */
    stack: StackOptions;
    /** What this line runs against, for people: "Apache Kafka 4.4.0 (local stack)". */
    brokerLine: string;
    /** This line's vitest project name (test logs go to .stack/logs/<it>/). */
    lineName: string;
    /** Scorer settings of this line (e.g. EOS_MODE), given to every scorer a test starts (test/helpers/scorer.ts). */
    lineScorerEnv: Record<string, string>;
    /** A secure line's TLS/SASL/registry settings for the stack's admin (scorer env names; scripts/stack/security.ts), else {}. */
    stackSecurityEnv: Record<string, string>;
  }
}

/** The local stack of a line: the environment's, with the line's release, and moved if the line is. */
function lineStack(line: BrokerLine, base: StackOptions = stackOptions()): StackOptions {
  const kafkaVersion = line.kafkaVersion ?? base.kafkaVersion;
  const brokers = line.brokers ?? base.brokers;
  const security = line.security ?? 'none';
  if (line.moved === undefined) return { ...base, kafkaVersion, brokers, security };
  const { portOffset, subdir } = line.moved;
  const { kafka, controller, registry } = base.ports;
  return { dir: join(base.dir, subdir), ports: { ...base.ports, kafka: kafka + portOffset, controller: controller + portOffset, registry: registry + portOffset }, kafkaVersion, brokers, security };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const line = BROKER_LINES.find((l) => l.project === project.name);
  if (line === undefined) throw new Error(`global-setup: project ${project.name} is not a broker line in test/integration/lines.ts`);
  const say = (msg: string) => console.log(`${project.name}: ${msg}`);
  const stack = lineStack(line);
  const provide = (kafkaBrokers: string, schemaRegistryUrl: string, stackMode: 'env' | 'docker' | 'local', brokerLine: string, securityEnv: Record<string, string> = {}) => {
    project.provide('stackSecurityEnv', securityEnv);
    project.provide('kafkaBrokers', kafkaBrokers);
    project.provide('schemaRegistryUrl', schemaRegistryUrl);
    project.provide('stackMode', stackMode);
    project.provide('stack', stack);
    project.provide('lineScorerEnv', line.scorerEnv ?? {});
    project.provide('lineName', line.project);
    project.provide('brokerLine', brokerLine);
  };

  const envBrokers = process.env.KAFKA_BROKERS;
  const envRegistry = process.env.SCHEMA_REGISTRY_URL;
  if (line.kafkaVersion === undefined && line.brokers === undefined && line.security === undefined && envBrokers && envRegistry) {
    say(`using KAFKA_BROKERS=${envBrokers} SCHEMA_REGISTRY_URL=${envRegistry} from the environment`);
    provide(envBrokers, envRegistry, 'env', `KAFKA_BROKERS=${envBrokers} (from the environment)`);
    return async () => undefined;
  }

  // A cluster line kills and restarts its nodes by pid, a secure line needs the stack's certificates and users: both always run the local stack.
  const docker = stack.brokers > 1 || stack.security !== 'none' ? undefined : await startContainers(stack.kafkaVersion).catch((err: unknown) => {
    say(`no Docker engine (${(err as Error).message.split('\n')[0]}); using the local JVM stack`);
    return undefined;
  });
  if (docker !== undefined) {
    provide(docker.kafkaBrokers, docker.schemaRegistryUrl, 'docker', `Apache Kafka ${stack.kafkaVersion} (${docker.kafkaImage})`);
    return docker.stop;
  }

  const info = JSON.parse(await stackCli(['up', '--json'], stack, say)) as StackInfo;
  provide(info.kafkaBrokers, info.schemaRegistryUrl, 'local', `Apache Kafka ${info.kafkaVersion} (local stack${stack.security === 'none' ? '' : `, ${stack.security}`})`, info.securityEnv);
  return async () => {
    // Stop only what this run started; a stack the developer started stays up.
    if (info.started.length > 0) await stackCli(['down'], stack, say);
  };
}

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

/** Runs `scripts/stack.ts <args>` for `stack`; resolves with its stdout, passes each stderr line (or any line, without --json) to say. */
function stackCli(args: string[], stack: StackOptions, say: (line: string) => void): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts', ...args], { cwd: ROOT, env: { ...process.env, ...stackEnv(stack) }, stdio: ['ignore', 'pipe', 'pipe'] });
    const json = args.includes('--json');
    let stdout = '';
    const lines: string[] = [];
    const sayLines = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter((l) => l !== '')) {
        lines.push(line);
        say(line);
      }
    };
    child.stdout.on('data', (d: Buffer) => (json ? (stdout += d.toString()) : sayLines(d)));
    child.stderr.on('data', sayLines);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`scripts/stack.ts ${args.join(' ')} failed (exit ${code}):\n${lines.slice(-30).join('\n')}`));
    });
  });
}
