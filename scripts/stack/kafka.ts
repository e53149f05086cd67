/**
 * The Kafka half of the local stack: which Apache Kafka release runs (STACK_KAFKA_VERSION), what
 * it is built from on Maven Central, how its storage is formatted and how it is launched.
 *
 * Two release lines are supported and tested (README "Local stack"), and what differs between
 * them lives here and nowhere else:
 * - 4.x (default 4.4.0): logs through log4j2 (Kafka 4.0 dropped reload4j, KIP-653), so the stack
 *   adds log4j2's slf4j 1.7 binding and writes a log4j2 config. Storage is formatted at the
 *   newest feature levels the release knows (4.1 and 4.4: transaction.version 2 / KIP-890,
 *   group.version 1 / KIP-848); kafkajs uses neither, see README "Known limits".
 * - 3.9.x: logs through reload4j (slf4j-reload4j + a log4j 1 config).
 * Kafka 4.0 removed protocol versions older than what kafkajs 2.2.4 sends (KIP-896): kafkajs picks
 * min(its highest, the broker's highest) for every API, and its highest ones (Produce v7, Fetch
 * v11, EndTxn v1, …) are all still accepted, so both lines serve the scorer unchanged.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Component, type StackPorts, mvn, pom } from './components.js';
import { StackError, run } from './process.js';
import { type StackSecurity, kafkaSecurityConfig, prepareSecurity, scramFormatArgs, writeSecretFile } from './security.js';

/** The default broker: the newest 4.x release Maven Central serves (README "Local stack" says why). */
export const DEFAULT_KAFKA_VERSION = '4.4.0';
/** Releases the integration suite ran against (README "Tests"); others of the same lines are accepted. */
export const TESTED_KAFKA_VERSIONS = ['3.9.2', '4.1.1', '4.4.0'] as const;

/** The log4j2 release whose slf4j binding joins a 4.x broker (log4j-core/api pinned to the same). */
const LOG4J2_VERSION = '2.25.5';

interface Line {
  /** Maven dependencies besides kafka_2.13 itself. */
  deps: string;
  /** Logging config file name, its content, and the system property that points the JVM at it. */
  logConfig: { file: string; text: string; property: string };
  /** Broker settings only this line knows. */
  config: string;
}

const dep = (g: string, a: string, v: string) => `
    <dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;

const LINE_3: Line = {
  deps: dep('org.slf4j', 'slf4j-reload4j', '1.7.36'),
  logConfig: {
    file: 'log4j.properties',
    property: 'log4j.configuration',
    text: `log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
`,
  },
  config: '',
};

const LINE_4: Line = {
  // Kafka 4.x still logs through slf4j 1.7 and brings log4j-core, but no binding between them.
  deps: ['log4j-api', 'log4j-core', 'log4j-slf4j-impl'].map((a) => dep('org.apache.logging.log4j', a, LOG4J2_VERSION)).join(''),
  logConfig: {
    file: 'log4j2.properties',
    property: 'log4j2.configurationFile',
    text: `status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
`,
  },
  // Share groups (KIP-932) are on when storage is formatted by 4.4 (share.version 2; 4.1 formats
  // share.version 0); their state topic is replicated like the other internal topics (replicationConfig).
  config: '',
};

/** Validates STACK_KAFKA_VERSION (empty or unset: the default). */
export function parseKafkaVersion(raw: string | undefined): string {
  if (raw === undefined || raw === '') return DEFAULT_KAFKA_VERSION;
  if (!/^(3\.9|4\.\d+)\.\d+$/.test(raw)) {
    throw new StackError(`STACK_KAFKA_VERSION: expected an Apache Kafka release 3.9.x or 4.x.y (tested: ${TESTED_KAFKA_VERSIONS.join(', ')}), got '${raw}'`);
  }
  return raw;
}

const lineOf = (version: string): Line => (version.startsWith('3.') ? LINE_3 : LINE_4);

/** One KRaft node of the stack: node `id` of `count` (every node is broker and controller). */
export interface KafkaNode {
  id: number;
  count: number;
}

/** The component name of a node: `kafka` for a single broker (as before clusters), else `kafka-<id>`. */
export const brokerName = ({ id, count }: KafkaNode): string => (count === 1 ? 'kafka' : `kafka-${id}`);

/** Where node `id` listens (README "Local stack": ports move by STACK_BROKER_PORT_STEP per node). */
export function nodePorts(ports: StackPorts, id: number): { kafka: number; controller: number } {
  return { kafka: ports.kafka + (id - 1) * ports.step, controller: ports.controller + (id - 1) * ports.step };
}

export function kafkaComponent(root: string, ports: StackPorts, version: string, node: KafkaNode = { id: 1, count: 1 }, security: StackSecurity = 'none'): Component {
  const line = lineOf(version);
  const dir = join(root, 'kafka');
  const own = nodePorts(ports, node.id);
  // One data directory per release: a 4.x broker formats metadata a 3.9 one cannot read, so
  // switching STACK_KAFKA_VERSION starts an empty broker instead of a broken one. A cluster has
  // its own too (cluster<N>-<release>/node-<id>): its nodes share one cluster id and quorum.
  // A secure stack has its own as well: its SCRAM users are written when storage is formatted.
  const secured = security === 'none' ? '' : `-${security}`;
  const clusterDir = join(dir, `cluster${node.count}-${version}${secured}`);
  const dataDir = node.count === 1 ? join(dir, `data-${version}${secured}`) : join(clusterDir, `node-${node.id}`);
  const classpathFile = join(dir, `classpath-${version}.txt`);
  const configFile = node.count === 1 ? join(dir, `server-${version}${secured}.properties`) : join(clusterDir, `server-${node.id}.properties`);
  const logConfigFile = join(dir, line.logConfig.file);
  const classpath = () => readFileSync(classpathFile, 'utf8').trim();
  return {
    name: brokerName(node),
    identity: `${node.count === 1 ? `Apache Kafka ${version}` : `Apache Kafka ${version} node ${node.id}/${node.count}`}${security === 'none' ? '' : ` (${security})`}`,
    cwd: dir,
    ports: [own.kafka, own.controller],
    url: `127.0.0.1:${own.kafka}`,
    async prepare() {
      mkdirSync(dir, { recursive: true });
      if (!existsSync(classpathFile)) {
        const pomDir = join(dir, `maven-${version}`);
        mkdirSync(pomDir, { recursive: true });
        writeFileSync(join(pomDir, 'pom.xml'), pom(dep('org.apache.kafka', 'kafka_2.13', version) + line.deps));
        await mvn(pomDir, ['dependency:build-classpath', `-Dmdep.outputFile=${classpathFile}`]);
      }
      mkdirSync(dataDir, { recursive: true });
      const sec = security === 'sasl_ssl' ? await prepareSecurity(root) : undefined;
      // The secure config holds the store and inter-broker passwords: mode 0600.
      writeSecretFile(configFile, kafkaConfig(ports, node, dataDir, sec && kafkaSecurityConfig(sec, own)) + line.config + replicationConfig(node.count, line));
      writeFileSync(logConfigFile, line.logConfig.text);
      if (!existsSync(join(dataDir, 'meta.properties'))) {
        // KRaft storage must be formatted once with a cluster id before the first start; with
        // static voters (controller.quorum.voters) both lines take the same arguments. The nodes
        // of a cluster share the id (kept beside them), so a node formatted later still joins. The
        // id is attached with '=': one in 64 starts with '-', which `-t <id>` took for an option.
        mkdirSync(dataDir, { recursive: true });
        await run('java', [`-D${line.logConfig.property}=file:${logConfigFile}`, '-cp', classpath(), 'kafka.tools.StorageTool', 'format', `--cluster-id=${sharedClusterId(clusterDir, node.count)}`, '-c', configFile, ...(sec ? scramFormatArgs(sec) : [])], {
          cwd: dir,
          what: `Kafka ${version} storage format (${brokerName(node)})`,
          hint: `remove ${dataDir} and retry.`,
        });
      }
    },
    args: (marker) => [
      '-Xms256m',
      // Three nodes share the machine with the scorer and the tests: half the heap each.
      node.count === 1 ? '-Xmx1g' : '-Xmx512m',
      '-XX:+UseG1GC',
      `-Dkafka.logs.dir=${join(root, 'logs')}`,
      `-D${line.logConfig.property}=file:${logConfigFile}`,
      marker,
      '-cp',
      classpath(),
      'kafka.Kafka',
      configFile,
    ],
  };
}

/** `listeners`: a secure node's listener, TLS and SASL lines (./security.ts) instead of the plaintext ones. */
function kafkaConfig(ports: StackPorts, node: KafkaNode, dataDir: string, listeners?: string): string {
  const own = nodePorts(ports, node.id);
  // Every node is a voter: a three-node quorum keeps a controller majority with one node down.
  const voters = Array.from({ length: node.count }, (_, i) => `${i + 1}@127.0.0.1:${nodePorts(ports, i + 1).controller}`).join(',');
  return `# Written by scripts/stack: KRaft node ${node.id} of ${node.count} (broker+controller) on loopback.
process.roles=broker,controller
node.id=${node.id}
controller.quorum.voters=${voters}
controller.listener.names=CONTROLLER
${
  listeners ??
  `listeners=PLAINTEXT://127.0.0.1:${own.kafka},CONTROLLER://127.0.0.1:${own.controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${own.kafka}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
`
}log.dirs=${dataDir}
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# Topics are created explicitly by the scorer and the tests; auto-creation would hide mistakes.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.partitions=1
log.retention.hours=24
log.segment.bytes=104857600
`;
}

/**
 * Replication of internal and default topics: one node can only keep one replica (and
 * transactions then need min ISR 1); three or more keep 3 replicas with min ISR 2, so the
 * cluster accepts acks=all writes and transactions with any one node down.
 */
function replicationConfig(count: number, line: Line): string {
  const rf = Math.min(count, 3);
  const isr = rf >= 3 ? 2 : 1;
  const share = line === LINE_4 ? `share.coordinator.state.topic.replication.factor=${rf}\nshare.coordinator.state.topic.min.isr=${isr}\n` : '';
  return `offsets.topic.replication.factor=${rf}
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${isr}
default.replication.factor=${rf}
min.insync.replicas=${isr}
${share}`;
}

/** The cluster id of a multi-node stack, made once and kept in its directory (one node: a fresh one). */
function sharedClusterId(clusterDir: string, count: number): string {
  if (count === 1) return kraftClusterId();
  const file = join(clusterDir, 'cluster-id');
  if (!existsSync(file)) {
    mkdirSync(clusterDir, { recursive: true });
    writeFileSync(file, `${kraftClusterId()}\n`);
  }
  return readFileSync(file, 'utf8').trim();
}

/** A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints). */
function kraftClusterId(): string {
  return randomBytes(16).toString('base64url');
}
