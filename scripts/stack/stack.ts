/**
 * The local stack without Docker: Apache Kafka (KRaft) and Apicurio Registry as JVM processes
 * built from Maven Central artifacts, on 127.0.0.1 only, state under `.stack/`.
 *
 *   up     start what is not running, wait until both answer, write .stack/env
 *   down   stop exactly the processes `up` started (by pid, checked against a marker)
 *   status say what runs
 *
 * Used by `npm run stack:up|down|status` and by the integration tests' global setup, which runs
 * one stack per broker line (test/integration/lines.ts), through the CLI: every function takes
 * StackOptions (./options.ts), by default the environment's (STACK_DIR, STACK_*_PORT,
 * STACK_KAFKA_VERSION, STACK_BROKERS, STACK_BROKER_PORT_STEP, STACK_SECURITY). STACK_BROKERS=3 runs a three-node
 * KRaft cluster (every node broker and controller, all three voters): see ./kafka.ts.
 * STACK_SECURITY=sasl_ssl runs it with TLS, SCRAM, ACLs and registry auth: see ./security.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { RegistryRest } from '../../src/kafka/registry.js';
import { join, relative } from 'node:path';
import '../../src/kafka/kafkajs-fix.js'; // before kafkajs: see the module
import { Kafka, type KafkaConfig, logLevel } from 'kafkajs';
import { type Component, registryComponent } from './components.js';
import { type KafkaNode, brokerName, kafkaComponent } from './kafka.js';
import { type StackOptions, stackDir, stackOptions } from './options.js';
import { StackError, isOurs, portFree, startDaemon, stopPid, waitUntil } from './process.js';
import { type SecurityFiles, prepareSecurity, securityEnv, writeSecretFile } from './security.js';

export { StackError, type StackOptions, stackDir, stackOptions };

export interface StackInfo {
  /** Every broker, comma-separated (what KAFKA_BROKERS takes). */
  kafkaBrokers: string;
  schemaRegistryUrl: string;
  /** The Apache Kafka release the broker runs. */
  kafkaVersion: string;
  /** Names of the components this call started (empty when everything was already running). */
  started: string[];
  /** STACK_SECURITY=sasl_ssl: the scorer's TLS, SASL and registry settings for the admin (./security.ts `securityEnv`); else empty. */
  securityEnv: Record<string, string>;
}

// Generous: a 2-core machine shared with other work (load 30+) took 2-3 min to start the registry.
const READY_TIMEOUT_MS = 300_000;
/** Opens each start's part of a component's log. */
const START_MARK = '====';

interface Ctx {
  root: string;
  marker: string;
  /** The Kafka nodes, then the registry. */
  components: Component[];
  brokers: Component[];
  say: (line: string) => void;
}

function context(say: (line: string) => void, opts: StackOptions): Ctx {
  const root = opts.dir;
  // A system property on every JVM we start: it names this checkout's stack, so `down` never
  // signals a process that merely reused one of our pids.
  const marker = `-Dkafka-onnx-scorer.stack=${root}`;
  const nodes: KafkaNode[] = Array.from({ length: opts.brokers }, (_, i) => ({ id: i + 1, count: opts.brokers }));
  const brokers = nodes.map((n) => kafkaComponent(root, opts.ports, opts.kafkaVersion, n, opts.security));
  return { root, marker, components: [...brokers, registryComponent(root, opts.ports, opts.security)], brokers, say };
}

const pidFile = (ctx: Ctx, c: Component) => join(ctx.root, 'pids', `${c.name}.pid`);
const logFile = (ctx: Ctx, c: Component) => join(ctx.root, 'logs', `${c.name}.log`);

/** The pid file holds the pid and, on its second line, what that process runs. */
function running(ctx: Ctx, c: Component): { pid: number; identity: string } | undefined {
  const file = pidFile(ctx, c);
  if (!existsSync(file)) return undefined;
  const [pidLine = '', identity = ''] = readFileSync(file, 'utf8').split('\n');
  const pid = Number(pidLine.trim());
  return Number.isInteger(pid) && isOurs(pid, ctx.marker) ? { pid, identity: identity.trim() } : undefined;
}

const runningPid = (ctx: Ctx, c: Component) => running(ctx, c)?.pid;

function checkJava(): void {
  let out: string;
  try {
    out = execFileSync('java', ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; code?: string };
    if (e.code === 'ENOENT') throw new StackError('Java is not installed (no `java` on PATH). Install a JDK 17 or newer (e.g. `apt-get install openjdk-17-jdk-headless`), or use Docker: see README.');
    out = e.stderr ?? '';
  }
  const major = /version "(\d+)/.exec(out)?.[1];
  if (major !== undefined && Number(major) < 17) throw new StackError(`Java ${major} found; the stack needs Java 17 or newer.`);
  try {
    execFileSync('mvn', ['-v'], { stdio: 'ignore' });
  } catch {
    throw new StackError('Maven is not installed (no working `mvn` on PATH). Install it (e.g. `apt-get install maven`): the stack is downloaded from Maven Central with it.');
  }
}

/** Ready: the node answers, and sees the whole cluster (every node registered with the controller). */
async function kafkaReady(broker: string, count: number, sec: SecurityFiles | undefined): Promise<boolean> {
  const admin = new Kafka({ clientId: 'stack-probe', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000, ...adminSecurity(sec) }).admin();
  try {
    await admin.connect();
    const { brokers: list } = await admin.describeCluster();
    return list.length >= count;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The kafkajs TLS and SASL settings of the stack's super user (nothing for a plaintext stack). */
function adminSecurity(sec: SecurityFiles | undefined): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  if (sec === undefined) return {};
  return { ssl: { ca: [readFileSync(sec.caPem, 'utf8')] }, sasl: { mechanism: 'scram-sha-512', username: 'admin', password: sec.credentials.admin } };
}

async function registryReady(url: string, sec: SecurityFiles | undefined): Promise<boolean> {
  if (sec !== undefined) {
    // Every path needs the credentials, health included.
    const auth = { username: 'admin', password: sec.credentials.admin };
    const ca = readFileSync(sec.caPem, 'utf8');
    await new RegistryRest({ url: new URL('/', url).href, auth, ca, timeoutMs: 2000 }).get('/health/ready');
    await new RegistryRest({ url, auth, ca, timeoutMs: 2000 }).get('/subjects');
    return true;
  }
  const health = new URL('/health/ready', url);
  const res = await fetch(health, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) return false;
  // The readiness endpoint can answer before the ccompat API is routed; ask it too.
  const subjects = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2000) });
  return subjects.ok;
}

/** The last lines this start wrote (logs are appended across starts: an older run's error is not this one's). */
function tail(file: string, lines = 25): string {
  if (!existsSync(file)) return '(no log)';
  const all = readFileSync(file, 'utf8').trimEnd().split('\n');
  const start = all.findLastIndex((l) => l.startsWith(START_MARK));
  return all.slice(Math.max(start, all.length - lines)).join('\n');
}

export async function stackUp(say: (line: string) => void = console.log, opts: StackOptions = stackOptions()): Promise<StackInfo> {
  const ctx = context(say, opts);
  mkdirSync(join(ctx.root, 'logs'), { recursive: true });
  mkdirSync(join(ctx.root, 'pids'), { recursive: true });
  const registry = ctx.components.at(-1) as Component;
  const started: string[] = [];
  for (const c of ctx.components) {
    const r = running(ctx, c);
    // An older pid file has no identity line: that stack predates the version switch (3.9.2).
    if (r !== undefined && r.identity !== c.identity) {
      throw new StackError(`${r.identity || 'an earlier stack'} is running from ${ctx.root} (pid ${r.pid}), not ${c.identity}; run \`npm run stack:down\` first.`);
    }
  }
  const toStart = ctx.components.filter((c) => runningPid(ctx, c) === undefined);

  if (toStart.length > 0) {
    checkJava();
    for (const c of toStart) {
      for (const port of c.ports) {
        if (!(await portFree(port))) {
          throw new StackError(
            `port ${port} on 127.0.0.1 is already in use by a process this stack did not start (see \`ss -ltnp 'sport = :${port}'\`). ` +
              `Stop it, or if it is a Kafka/registry you want to use, export KAFKA_BROKERS and SCHEMA_REGISTRY_URL instead of starting the stack.`,
          );
        }
      }
    }
    for (const c of toStart) {
      say(`stack: preparing ${c.name} (first run downloads from Maven Central; later runs use ~/.m2)`);
      await c.prepare();
    }
    for (const c of toStart) {
      writeFileSync(logFile(ctx, c), `\n${START_MARK} ${new Date().toISOString()} stack:up ====\n`, { flag: 'a' });
      const pid = startDaemon(c.args(ctx.marker), c.cwd, logFile(ctx, c));
      writeFileSync(pidFile(ctx, c), `${pid}\n${c.identity}\n`);
      started.push(c.name);
      say(`stack: started ${c.identity} (pid ${pid}), log ${logFile(ctx, c)}`);
    }
  } else {
    say('stack: already running (nothing started); `npm run stack:down` stops it');
  }

  const sec = opts.security === 'sasl_ssl' ? await prepareSecurity(ctx.root) : undefined;
  const probes: [Component, () => Promise<boolean>][] = [
    ...ctx.brokers.map((b): [Component, () => Promise<boolean>] => [b, () => kafkaReady(b.url, opts.brokers, sec)]),
    [registry, () => registryReady(registry.url, sec)],
  ];
  const results = await Promise.all(
    probes.map(async ([c, probe]) => {
      const pid = runningPid(ctx, c);
      const outcome = await waitUntil(probe, () => pid !== undefined && isOurs(pid, ctx.marker), READY_TIMEOUT_MS);
      return { c, outcome };
    }),
  );
  const failed = results.filter((r) => r.outcome !== 'ready');
  if (failed.length > 0) {
    const why = failed.map(({ c, outcome }) => `${c.name} ${outcome === 'died' ? 'exited during start-up' : `did not answer within ${READY_TIMEOUT_MS / 1000}s`}; last lines of ${logFile(ctx, c)}:\n${tail(logFile(ctx, c))}`);
    // Leave nothing half-started behind.
    await stackDown(() => undefined, opts);
    throw new StackError(`stack failed to start:\n${why.join('\n\n')}`);
  }

  const info: StackInfo = { kafkaBrokers: ctx.brokers.map((b) => b.url).join(','), schemaRegistryUrl: registry.url, kafkaVersion: opts.kafkaVersion, started, securityEnv: sec ? securityEnv(sec) : {} };
  const envFile = join(ctx.root, 'env');
  const exports = { KAFKA_BROKERS: info.kafkaBrokers, SCHEMA_REGISTRY_URL: info.schemaRegistryUrl, ...info.securityEnv };
  // Passwords in it when secure: mode 0600 either way.
  writeSecretFile(envFile, Object.entries(exports).map(([k, v]) => `export ${k}=${v}\n`).join(''));
  const kafkaIdentity = opts.brokers === 1 ? (ctx.brokers[0] as Component).identity : `Apache Kafka ${opts.kafkaVersion}, ${opts.brokers} nodes`;
  const secureNote = sec ? `\n  SASL_SSL (SCRAM-SHA-512, users admin and scorer, ACLs on), registry over HTTPS with basic auth; CA ${sec.caPem}; passwords in ${envFile} (mode 0600)` : '';
  say(`stack: ready (${kafkaIdentity}, ${registry.identity})\n  KAFKA_BROKERS=${info.kafkaBrokers}\n  SCHEMA_REGISTRY_URL=${info.schemaRegistryUrl}${secureNote}\n  (written to ${envFile}: \`source ${relative(process.cwd(), envFile).startsWith('..') ? envFile : relative(process.cwd(), envFile)}\`)`);
  return info;
}

/** Pid files of this stack's directory that `opts` does not name (a cluster's nodes, when STACK_BROKERS is unset). */
function otherPidFiles(ctx: Ctx): string[] {
  const dir = join(ctx.root, 'pids');
  const known = new Set(ctx.components.map((c) => `${c.name}.pid`));
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pid') && !known.has(f)).map((f) => f.slice(0, -4)) : [];
}

export async function stackDown(say: (line: string) => void = console.log, opts: StackOptions = stackOptions()): Promise<void> {
  const ctx = context(say, opts);
  const stop = async (name: string) => {
    const file = join(ctx.root, 'pids', `${name}.pid`);
    if (!existsSync(file)) return say(`stack: ${name} not running`);
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    const outcome = Number.isInteger(pid) ? await stopPid(pid, ctx.marker) : 'gone';
    rmSync(file, { force: true });
    say(outcome === 'gone' ? `stack: ${name} was not running (stale pid file removed)` : `stack: ${name} (pid ${pid}) ${outcome}`);
  };
  // Registry first: nothing depends on it, and the brokers keep serving until the end. A
  // cluster's nodes stop together: one by one, the last would wait for a quorum already gone.
  await stop('registry');
  await Promise.all([...ctx.brokers.map((b) => b.name), ...otherPidFiles(ctx)].map(stop));
  rmSync(join(ctx.root, 'env'), { force: true });
}

/**
 * The options with as many Kafka nodes as this stack's directory has pid files for (`kafka-<n>`),
 * when STACK_BROKERS is not set: `stack:status` then shows the nodes of a running cluster.
 */
export function withRunningBrokers(opts: StackOptions, env: NodeJS.ProcessEnv = process.env): StackOptions {
  const dir = join(opts.dir, 'pids');
  const pids = existsSync(dir) ? readdirSync(dir).filter((f) => /^kafka(-\d+)?\.pid$/.test(f)) : [];
  // Likewise STACK_SECURITY, from what the running broker's pid file says it runs (its identity names sasl_ssl).
  const secured = pids.some((f) => readFileSync(join(dir, f), 'utf8').includes('(sasl_ssl)'));
  const withSecurity = (env.STACK_SECURITY === undefined || env.STACK_SECURITY === '') && secured ? { ...opts, security: 'sasl_ssl' as const } : opts;
  if (env.STACK_BROKERS !== undefined && env.STACK_BROKERS !== '') return withSecurity;
  const nodes = pids.filter((f) => f !== 'kafka.pid').length;
  return nodes > 1 ? { ...withSecurity, brokers: nodes } : withSecurity;
}

export function stackStatus(say: (line: string) => void = console.log, opts: StackOptions = withRunningBrokers(stackOptions())): boolean {
  const ctx = context(say, opts);
  let all = true;
  for (const c of ctx.components) {
    const r = running(ctx, c);
    all &&= r !== undefined;
    say(`${c.name}: ${r === undefined ? 'stopped' : `running ${r.identity || '(release unknown)'} (pid ${r.pid}) at ${c.url}`}`);
  }
  for (const name of otherPidFiles(ctx)) say(`${name}: has a pid file but is not part of this stack's settings (STACK_BROKERS=${opts.brokers}); \`npm run stack:down\` stops it`);
  return all;
}

/**
 * Stops one component: `registry`, `kafka` (one broker) or `kafka-<node>` (a cluster's node;
 * `brokerName`), gracefully (SIGTERM: a broker's controlled shutdown) or, with `kill`, by
 * SIGKILL (a crash). `stackUp` starts it again. Used by the outage and failover tests.
 */
export async function stopComponent(name: string, opts: StackOptions = stackOptions(), { kill = false } = {}): Promise<void> {
  const ctx = context(() => undefined, opts);
  const c = ctx.components.find((x) => x.name === name);
  if (c === undefined) throw new StackError(`unknown component ${name} (have ${ctx.components.map((x) => x.name).join(', ')})`);
  const pid = runningPid(ctx, c);
  if (pid !== undefined) await stopPid(pid, ctx.marker, kill ? 0 : undefined);
  rmSync(pidFile(ctx, c), { force: true });
}

/** The component name of a Kafka node id in this stack (`kafka` when it has one broker). */
export const nodeComponent = (id: number, opts: StackOptions): string => brokerName({ id, count: opts.brokers });
