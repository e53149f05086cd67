/**
 * The two JVM services of the local stack, as data: which Maven Central artifacts they are
 * made of, how they are prepared on first start, how they are launched and how readiness is
 * checked. scripts/stack/stack.ts drives them; nothing here starts a process by itself.
 *
 * Versions are chosen deliberately (see README "Local stack"):
 * - Apache Kafka 3.9.2: the last 3.x line. Kafka 4.0 removed old protocol versions (KIP-896)
 *   and kafkajs 2.2.4 is unmaintained; 3.9 runs KRaft without ZooKeeper and still accepts
 *   every API version kafkajs speaks.
 * - Apicurio Registry 3.0.9: the newest release on Maven Central that runs on Java 17
 *   (3.1.x is not published there as the `:zip:all` artifact; 3.2+ needs Java 21).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StackError, run } from './process.js';

export const KAFKA_VERSION = '3.9.2';
export const APICURIO_VERSION = '3.0.9';

/** Ports on 127.0.0.1; override with STACK_KAFKA_PORT / STACK_CONTROLLER_PORT / STACK_REGISTRY_PORT. */
export interface StackPorts {
  kafka: number;
  controller: number;
  registry: number;
}

export interface Component {
  /** Short name used for pid and log files. */
  name: 'kafka' | 'registry';
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

const pom = (deps: string) => `<?xml version="1.0" encoding="UTF-8"?>
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

const mvn = (cwd: string, goalArgs: string[]) =>
  run('mvn', ['-q', '-B', '-f', join(cwd, 'pom.xml'), ...goalArgs], {
    cwd,
    what: 'Maven download',
    hint: 'Maven resolves the stack from Maven Central into ~/.m2; check that `mvn -v` works and Maven Central is reachable, then retry.',
  });

export function kafkaComponent(root: string, ports: StackPorts): Component {
  const dir = join(root, 'kafka');
  const dataDir = join(dir, 'data');
  const classpathFile = join(dir, `classpath-${KAFKA_VERSION}.txt`);
  const configFile = join(dir, 'server.properties');
  return {
    name: 'kafka',
    cwd: dir,
    ports: [ports.kafka, ports.controller],
    url: `127.0.0.1:${ports.kafka}`,
    async prepare() {
      mkdirSync(dir, { recursive: true });
      if (!existsSync(classpathFile)) {
        writeFileSync(
          join(dir, 'pom.xml'),
          pom(`
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>`),
        );
        await mvn(dir, ['dependency:build-classpath', `-Dmdep.outputFile=${classpathFile}`]);
      }
      writeFileSync(configFile, kafkaConfig(ports, dataDir));
      writeFileSync(join(dir, 'log4j.properties'), LOG4J);
      if (!existsSync(join(dataDir, 'meta.properties'))) {
        // KRaft storage must be formatted once with a cluster id before the first start.
        mkdirSync(dataDir, { recursive: true });
        await run('java', ['-cp', readFileSync(classpathFile, 'utf8').trim(), 'kafka.tools.StorageTool', 'format', '-t', kraftClusterId(), '-c', configFile], {
          cwd: dir,
          what: 'Kafka storage format',
          hint: `remove ${dataDir} and retry.`,
        });
      }
    },
    args: (marker) => [
      '-Xms256m',
      '-Xmx1g',
      '-XX:+UseG1GC',
      `-Dkafka.logs.dir=${join(root, 'logs')}`,
      `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
      marker,
      '-cp',
      readFileSync(classpathFile, 'utf8').trim(),
      'kafka.Kafka',
      configFile,
    ],
  };
}

export function registryComponent(root: string, ports: StackPorts): Component {
  const dir = join(root, 'registry');
  const appDir = join(dir, `apicurio-registry-${APICURIO_VERSION}`);
  const runnerJar = `apicurio-registry-app-${APICURIO_VERSION}-runner.jar`;
  return {
    name: 'registry',
    cwd: appDir,
    ports: [ports.registry],
    url: `http://127.0.0.1:${ports.registry}/apis/ccompat/v7`,
    async prepare() {
      mkdirSync(dir, { recursive: true });
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
      `-Dquarkus.http.port=${ports.registry}`,
      // H2 on disk, not in memory: schema ids must survive a registry restart (the outage test
      // stops and restarts it mid-stream, and producers keep using the ids they were given).
      '-Dapicurio.storage.kind=sql',
      '-Dapicurio.storage.sql.kind=h2',
      `-Dapicurio.datasource.url=jdbc:h2:file:${join(dir, 'data', 'registry')};MODE=PostgreSQL`,
      '-Dapicurio.datasource.username=sa',
      '-Dapicurio.datasource.password=sa',
      '-Dquarkus.log.level=WARN',
      '-Dquarkus.log.category."io.apicurio".level=INFO',
      '-jar',
      runnerJar,
    ],
  };
}

function kafkaConfig(ports: StackPorts, dataDir: string): string {
  return `# Written by scripts/stack: single-node KRaft broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${ports.controller}
listeners=PLAINTEXT://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports.kafka}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${dataDir}
# One node: internal topics cannot have more than one replica, and transactions need min ISR 1.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
default.replication.factor=1
min.insync.replicas=1
# Topics are created explicitly by the scorer and the tests; auto-creation would hide mistakes.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.partitions=1
log.retention.hours=24
log.segment.bytes=104857600
`;
}

const LOG4J = `log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
`;

/** A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints). */
function kraftClusterId(): string {
  return randomBytes(16).toString('base64url');
}
