/**
 * The two JVM services of the local stack, as data: which Maven Central artifacts they are
 * made of, how they are prepared on first start and how they are launched. scripts/stack/stack.ts
 * drives them; nothing here starts a process by itself. The broker is in ./kafka.ts.
 *
 * Apicurio Registry 3.0.9 is chosen deliberately (see README "Local stack"): the newest release
 * on Maven Central that runs on Java 17 (3.1.x is not published there as the `:zip:all`
 * artifact; 3.2+ needs Java 21).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StackError, run } from './process.js';
import { type StackSecurity, prepareSecurity, registrySecurityConfig, writeSecretFile } from './security.js';

export const APICURIO_VERSION = '3.0.9';

/**
 * Ports on 127.0.0.1; override with STACK_KAFKA_PORT / STACK_CONTROLLER_PORT / STACK_REGISTRY_PORT.
 * In a cluster (STACK_BROKERS > 1) node n listens on kafka + (n-1)*step and controller + (n-1)*step
 * (STACK_BROKER_PORT_STEP, default 100: 9092/9192/9292 and 9093/9193/9293).
 */
export interface StackPorts {
  kafka: number;
  controller: number;
  registry: number;
  step: number;
}

export interface Component {
  /** Short name used for pid and log files: `kafka` (one broker) or `kafka-<node>`, `registry`. */
  name: string;
  /** What runs, release included (a running stack of another release is not reused). */
  identity: string;
  /** Download (via Maven, cached in ~/.m2) and lay out what the component needs. Idempotent. */
  prepare(): Promise<void>;
  /** The java command line (without `java`). */
  args(marker: string): string[];
  /** Directory the JVM runs in. */
  cwd: string;
  /** TCP ports that must be free before start. */
  ports: number[];
  /** Human-readable address printed when ready. */
  url: string;
}

export const pom = (deps: string) => `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kafka-onnx-scorer</groupId>
  <artifactId>stack-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>${deps}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version>
  </plugin></plugins></build>
</project>
`;

export const mvn = (cwd: string, goalArgs: string[]) =>
  run('mvn', ['-q', '-B', '-f', join(cwd, 'pom.xml'), ...goalArgs], {
    cwd,
    what: 'Maven download',
    hint: 'Maven resolves the stack from Maven Central into ~/.m2; check that `mvn -v` works and Maven Central is reachable, then retry.',
  });

export function registryComponent(root: string, ports: StackPorts, security: StackSecurity = 'none'): Component {
  const dir = join(root, 'registry');
  // sasl_ssl: HTTPS with basic auth (./security.ts), from a config file of mode 0600 (its passwords stay off the command line).
  const securityFile = join(dir, 'security.properties');
  const secure = security === 'sasl_ssl';
  const appDir = join(dir, `apicurio-registry-${APICURIO_VERSION}`);
  const runnerJar = `apicurio-registry-app-${APICURIO_VERSION}-runner.jar`;
  return {
    name: 'registry',
    identity: `Apicurio Registry ${APICURIO_VERSION}${secure ? ' (https, basic auth)' : ''}`,
    cwd: appDir,
    ports: [ports.registry],
    url: `${secure ? 'https' : 'http'}://127.0.0.1:${ports.registry}/apis/ccompat/v7`,
    async prepare() {
      mkdirSync(dir, { recursive: true });
      if (secure) writeSecretFile(securityFile, registrySecurityConfig(await prepareSecurity(root), ports.registry));
      if (existsSync(join(appDir, runnerJar))) return;
      writeFileSync(join(dir, 'pom.xml'), pom(''));
      rmSync(join(dir, 'target'), { recursive: true, force: true }); // unpack markers would skip the work
      // Plugin 2.8 on purpose: 3.x reads the artifact's parent pom, which Maven Central does not
      // carry for this release; 2.8 unpacks the zip without it.
      await mvn(dir, ['org.apache.maven.plugins:maven-dependency-plugin:2.8:unpack', `-Dartifact=io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:zip:all`, `-DoutputDirectory=${appDir}`]);
      if (!existsSync(join(appDir, runnerJar))) {
        throw new StackError(`Apicurio Registry ${APICURIO_VERSION} unpacked into ${appDir} has no ${runnerJar}; remove ${dir} and retry.`);
      }
    },
    args: (marker) => [
      '-Xms128m',
      '-Xmx512m',
      marker,
      '-Dquarkus.http.host=127.0.0.1',
      // Secure: no plain HTTP listener at all (quarkus.http.insecure-requests=disabled), the HTTPS port from the file.
      ...(secure ? [`-Dquarkus.config.locations=file:${securityFile}`] : [`-Dquarkus.http.port=${ports.registry}`]),
      // H2 on disk, not in memory: schema ids must survive a registry restart (the outage test
      // stops and restarts it mid-stream, and producers keep using the ids they were given).
      '-Dapicurio.storage.kind=sql',
      '-Dapicurio.storage.sql.kind=h2',
      `-Dapicurio.datasource.url=jdbc:h2:file:${join(dir, 'data', 'registry')};MODE=PostgreSQL`,
      '-Dapicurio.datasource.username=sa',
      '-Dapicurio.datasource.password=sa',
      // Its defaults open 20 H2 connections at start and give up on one after 5 s: on a busy
      // 2-core machine (load 30) the registry then died during start-up. Two, and a minute.
      '-Dapicurio.datasource.jdbc.initial-size=2',
      '-Dapicurio.datasource.jdbc.min-size=2',
      '-Dquarkus.datasource.h2.jdbc.acquisition-timeout=60S',
      '-Dquarkus.log.level=WARN',
      '-Dquarkus.log.category."io.apicurio".level=INFO',
      '-jar',
      runnerJar,
    ],
  };
}
