/**
 * The deployment files agree with the code: Kubernetes manifests (k8s/base as files, and the example
 * overlay as `kubectl kustomize` renders it), docker-compose.yml, the Dockerfile and the Grafana
 * dashboard are checked against src/config.ts (names, values, defaults), src/http.ts (the probe
 * and metrics paths, by serving them), src/metrics.ts (every charted series exists) and each other.
 * `yaml` is a transitive dependency (vite, testcontainers); nothing here installs anything.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_KEYS, DEFAULTS, loadConfig } from '../../src/config.js';
import { startHttpServer, type HealthState, type HttpServer } from '../../src/http.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { DEFAULT_KAFKA_VERSION, parseKafkaVersion } from '../../scripts/stack/kafka.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const at = (...p: string[]): string => resolve(ROOT, ...p);
const text = (...p: string[]): string => readFileSync(at(...p), 'utf8');

// ---- minimal shapes of what is read (the assertions check the values) -----------------------
type Labels = Record<string, string>;
interface Obj { apiVersion: string; kind: string; metadata: { name: string; labels?: Labels }; [k: string]: unknown }
interface Probe { httpGet?: { path: string; port: number | string } }
interface EnvVar { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } }
interface Container {
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe;
  resources?: { requests?: Labels; limits?: Labels };
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] }; seccompProfile?: { type: string } };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Deployment extends Obj { spec: { replicas?: number; selector: { matchLabels: Labels }; template: { metadata: { labels: Labels }; spec: { terminationGracePeriodSeconds?: number; securityContext?: Container['securityContext']; containers: Container[]; volumes?: { name: string; emptyDir?: object }[] } } } }
interface Port { name?: string; port: number | string; targetPort?: number | string }
type Service = Obj & { spec: { selector: Labels; ports: Port[] } };
type ServiceMonitor = Obj & { spec: { selector: { matchLabels: Labels }; endpoints: { port: string; path: string }[] } };
type NetworkPolicy = Obj & { spec: { podSelector: { matchLabels: Labels }; ingress: { ports: Port[] }[]; egress: { ports: Port[] }[] } };
type Pdb = Obj & { spec: { maxUnavailable?: number; selector: { matchLabels: Labels } } };
type ScaledObject = Obj & { spec: { scaleTargetRef: { name: string }; maxReplicaCount: number; minReplicaCount?: number; triggers: { type: string; metadata: Labels; authenticationRef?: { name: string } }[] } };
type TriggerAuth = Obj & { spec: { secretTargetRef: { parameter: string; name: string; key: string }[] } };
type Hpa = Obj & { spec: { scaleTargetRef: { name: string }; maxReplicas: number } };
type Secret = Obj & { stringData?: Labels; data?: Labels };

const yamlDocs = (src: string, where: string): Obj[] =>
  parseAllDocuments(src).map((d) => {
    expect(d.errors, `${where}: YAML errors`).toEqual([]);
    return d.toJS() as Obj;
  }).filter((o) => o !== null);

/** k8s/base as its kustomization lists it (no kustomize needed). */
function baseFiles(): Obj[] {
  const k = parse(text('k8s/base/kustomization.yaml')) as { resources: string[] };
  return k.resources.flatMap((f) => yamlDocs(text('k8s/base', f), `k8s/base/${f}`));
}
/** kubectl ships kustomize; it is on this project's machines, but say so rather than fail where it is not. */
const kubectl = ((): boolean => { try { execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const rendered = (dir: string): Obj[] => yamlDocs(execFileSync('kubectl', ['kustomize', at(dir)], { encoding: 'utf8' }), dir);

const one = <T extends Obj>(objs: Obj[], kind: string): T => {
  const found = objs.filter((o) => o.kind === kind);
  expect(found.map((o) => o.metadata.name), `exactly one ${kind}`).toHaveLength(1);
  return found[0] as T;
};
const matches = (selector: Labels, labels: Labels): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
const hostPort = (s: string): { host: string; port: number } => {
  const m = /^(.*):(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`not host:port: ${s}`);
  return { host: m[1] as string, port: Number(m[2]) };
};
const SECRET_NAME = /PASSWORD|USERNAME|_KEY_FILE$/;

// ---- the code side -----------------------------------------------------------------------------
const servers: HttpServer[] = [];
afterAll(async () => Promise.all(servers.splice(0).map((s) => s.close())));
/** Serves src/http.ts on a free port with the given health, as the scorer does. */
async function serve(health: HealthState): Promise<string> {
  const server = await startHttpServer({ port: 0, host: '127.0.0.1', registry: new Registry(), health: () => health, logger: createLogger('silent') });
  servers.push(server);
  return `http://127.0.0.1:${server.port}`;
}
const READY: HealthState = { live: true, ready: true, checks: {} };
const STARTING: HealthState = { live: true, ready: false, checks: { consumer: false } };

/** Every series name the scorer exports (histograms with their _bucket/_sum/_count). */
async function seriesNames(): Promise<Set<string>> {
  const metrics = await createMetrics(new Registry()).registry.getMetricsAsJSON();
  return new Set(metrics.flatMap((m) => (String(m.type) === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => m.name + s) : [m.name])));
}

// ---- Kubernetes ----------------------------------------------------------------------------------
const SETS: [string, () => Obj[], boolean][] = [
  ['k8s/base', baseFiles, true],
  ['k8s/overlays/example (kubectl kustomize)', () => rendered('k8s/overlays/example'), kubectl],
];

describe.each(SETS)('%s', (_name, load, available) => {
  const objs = available ? load() : [];
  const get = <T extends Obj>(kind: string): T => one<T>(objs, kind);
  const cm = (): Labels => (get<Obj & { data: Labels }>('ConfigMap')).data;
  const deploy = (): Deployment => get<Deployment>('Deployment');
  const container = (): Container => {
    const cs = deploy().spec.template.spec.containers;
    expect(cs).toHaveLength(1);
    return cs[0] as Container;
  };
  const httpPort = (): number => Number(cm().HTTP_PORT ?? DEFAULTS.HTTP_PORT);
  const secret = (): Labels => {
    const s = objs.find((o): o is Secret => o.kind === 'Secret');
    return s ? { ...s.stringData, ...Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])) } : {};
  };
  const it_ = available ? it : it.skip;

  it_('uses only variable names the scorer reads, with non-empty string values, secrets only in Secrets', () => {
    const data = cm();
    for (const [k, v] of Object.entries(data)) {
      expect(CONFIG_KEYS, `ConfigMap key ${k}`).toContain(k);
      expect(typeof v, `ConfigMap ${k} must be a quoted string`).toBe('string');
      expect(v, `ConfigMap ${k} is empty`).not.toBe('');
      expect(k, 'credentials belong in a Secret').not.toMatch(SECRET_NAME);
    }
    for (const k of Object.keys(secret())) expect(CONFIG_KEYS, `Secret key ${k}`).toContain(k);
    const c = container();
    for (const e of c.env ?? []) {
      expect(CONFIG_KEYS, `Deployment env ${e.name}`).toContain(e.name);
      const ref = e.valueFrom?.secretKeyRef;
      if (SECRET_NAME.test(e.name)) expect(ref, `${e.name} must come from a Secret`).toBeDefined();
      if (ref) expect(ref.key).toBe(e.name);
    }
    expect(c.envFrom?.map((f) => f.configMapRef?.name)).toContain(get('ConfigMap').metadata.name);
  });

  it_('passes loadConfig with the ConfigMap (+ the Secret), overriding only MODEL_PATH', () => {
    const data = cm();
    const modelFile = basename(data.MODEL_PATH ?? '');
    expect(data.MODEL_PATH, 'the image bakes models/ into /app/models').toBe(`/app/models/${modelFile}`);
    expect(existsSync(at('models', modelFile)), `models/${modelFile} exists in the repo`).toBe(true);
    const env: Labels = { ...data, ...secret(), MODEL_PATH: at('models', modelFile) };
    const changed = Object.keys(env).filter((k) => env[k] !== ({ ...data, ...secret() } as Labels)[k]);
    expect(changed).toEqual(['MODEL_PATH']);
    const config = loadConfig(env);
    expect(config.http.port).toBe(httpPort());
    expect(config.topics.input).toBe(data.INPUT_TOPIC);
    expect(config.shutdownTimeoutMs).toBe(Number(data.SHUTDOWN_TIMEOUT_MS ?? DEFAULTS.SHUTDOWN_TIMEOUT_MS));
    if (data.KAFKA_SASL_MECHANISM !== undefined) expect(config.kafka.sasl?.mechanism).toBe(data.KAFKA_SASL_MECHANISM);
  });

  it_('exposes HTTP_PORT as the named container port, Service, ServiceMonitor and NetworkPolicy port', () => {
    const port = httpPort();
    const named = container().ports?.find((p) => p.name === 'http');
    expect(named?.containerPort).toBe(port);
    const svc = get<Service>('Service');
    expect(matches(svc.spec.selector, deploy().spec.template.metadata.labels)).toBe(true);
    const svcPort = svc.spec.ports.find((p) => p.name === 'http');
    expect([port, 'http']).toContain(svcPort?.targetPort);
    const sm = get<ServiceMonitor>('ServiceMonitor');
    expect(matches(sm.spec.selector.matchLabels, svc.metadata.labels ?? {})).toBe(true);
    expect(sm.spec.endpoints.map((e) => [e.port, e.path])).toEqual([['http', '/metrics']]);
    const np = get<NetworkPolicy>('NetworkPolicy');
    expect(matches(np.spec.podSelector.matchLabels, deploy().spec.template.metadata.labels)).toBe(true);
    expect(np.spec.ingress.flatMap((r) => r.ports.map((p) => p.port))).toEqual([port]);
  });

  it_('lets the scorer reach its brokers and registry through the NetworkPolicy', () => {
    const data = cm();
    const egress = new Set(get<NetworkPolicy>('NetworkPolicy').spec.egress.flatMap((r) => r.ports.map((p) => Number(p.port))));
    const url = new URL(data.SCHEMA_REGISTRY_URL ?? '');
    const wanted = [53, ...(data.KAFKA_BROKERS ?? '').split(',').map((b) => hostPort(b).port), Number(url.port || (url.protocol === 'https:' ? 443 : 80))];
    for (const p of wanted) expect(egress, `egress port ${p}`).toContain(p);
  });

  it_('probes /healthz (startup, liveness) and /readyz (readiness) on the http port', async () => {
    const c = container();
    const port = httpPort();
    const probes = { startupProbe: '/healthz', livenessProbe: '/healthz', readinessProbe: '/readyz' } as const;
    for (const [probe, path] of Object.entries(probes) as [keyof typeof probes, string][]) {
      const get_ = c[probe]?.httpGet;
      expect(get_?.path, probe).toBe(path);
      expect(get_?.port === 'http' || get_?.port === port, `${probe} port`).toBe(true);
    }
    // ... and src/http.ts really answers them: 200 when healthy, /readyz 503 while starting.
    const url = await serve(READY);
    for (const path of [...Object.values(probes), '/metrics']) expect((await fetch(url + path)).status, path).toBe(200);
    const starting = await serve(STARTING);
    expect((await fetch(`${starting}${probes.livenessProbe}`)).status).toBe(200);
    expect((await fetch(`${starting}${probes.readinessProbe}`)).status).toBe(503);
  });

  it_('gives the drain more time than SHUTDOWN_TIMEOUT_MS before SIGKILL', () => {
    const grace = deploy().spec.template.spec.terminationGracePeriodSeconds ?? 30;
    expect(grace * 1000).toBeGreaterThan(Number(cm().SHUTDOWN_TIMEOUT_MS ?? DEFAULTS.SHUTDOWN_TIMEOUT_MS) + 5000);
  });

  it_('runs non-root (uid 10001, as the Dockerfile), read-only, no privileges, /tmp on an emptyDir', () => {
    const pod = deploy().spec.template.spec;
    const sc = container().securityContext;
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBe(10001);
    expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    expect(sc).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(sc?.runAsUser).toBe(dockerfileUid());
    const tmp = container().volumeMounts?.find((m) => m.mountPath === '/tmp');
    expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
    for (const kind of ['requests', 'limits'] as const) expect(Object.keys(container().resources?.[kind] ?? {}).sort()).toEqual(['cpu', 'memory']);
  });

  it_('autoscales with KEDA on the scorer group/topic lag, never past TOPIC_PARTITIONS replicas', () => {
    const data = cm();
    expect(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler'), 'KEDA and an HPA would fight').toHaveLength(0);
    expect(deploy().spec.replicas, 'the autoscaler owns replicas').toBeUndefined();
    const so = get<ScaledObject>('ScaledObject');
    expect(so.spec.scaleTargetRef.name).toBe(deploy().metadata.name);
    expect(so.spec.maxReplicaCount).toBeLessThanOrEqual(Number(data.TOPIC_PARTITIONS ?? DEFAULTS.TOPIC_PARTITIONS));
    expect(so.spec.minReplicaCount ?? 0).toBeGreaterThanOrEqual(1);
    const kafka = so.spec.triggers.filter((t) => t.type === 'kafka');
    expect(kafka).toHaveLength(1);
    const t = kafka[0] as ScaledObject['spec']['triggers'][number];
    expect(t.metadata).toMatchObject({ bootstrapServers: data.KAFKA_BROKERS, consumerGroup: data.GROUP_ID ?? DEFAULTS.GROUP_ID, topic: data.INPUT_TOPIC });
    expect(Number(t.metadata.lagThreshold)).toBeGreaterThan(0);
    if (data.KAFKA_SASL_MECHANISM === undefined) return;
    // SASL: KEDA must authenticate like the scorer does, with the same Secret.
    const KEDA_SASL: Labels = { plain: 'plaintext', 'scram-sha-256': 'scram_sha256', 'scram-sha-512': 'scram_sha512' };
    expect(t.metadata.sasl).toBe(KEDA_SASL[data.KAFKA_SASL_MECHANISM]);
    expect(t.metadata.tls).toBe(data.KAFKA_SSL === 'true' ? 'enable' : undefined);
    const auth = objs.find((o): o is TriggerAuth => o.kind === 'TriggerAuthentication' && o.metadata.name === t.authenticationRef?.name);
    expect(auth, 'TriggerAuthentication').toBeDefined();
    const s = secret();
    for (const ref of auth?.spec.secretTargetRef ?? []) expect(s[ref.key], `Secret key ${ref.key}`).toBeDefined();
  });

  it_('limits voluntary disruptions to one pod', () => {
    const pdb = get<Pdb>('PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(matches(pdb.spec.selector.matchLabels, deploy().spec.template.metadata.labels)).toBe(true);
    expect(matches(deploy().spec.selector.matchLabels, deploy().spec.template.metadata.labels)).toBe(true);
  });
});

describe('k8s/base alternatives and overlay', () => {
  it('keeps the CPU HPA alternative consistent (target, max replicas <= partitions)', () => {
    const hpa = one<Hpa>(yamlDocs(text('k8s/base/hpa.yaml'), 'hpa.yaml'), 'HorizontalPodAutoscaler');
    const cm = one<Obj & { data: Labels }>(baseFiles(), 'ConfigMap').data;
    expect(hpa.spec.scaleTargetRef.name).toBe(one(baseFiles(), 'Deployment').metadata.name);
    expect(hpa.spec.maxReplicas).toBeLessThanOrEqual(Number(cm.TOPIC_PARTITIONS));
    expect(text('k8s/base/kustomization.yaml')).toMatch(/^\s*#\s*- hpa\.yaml/m);
  });

  it('lists every manifest in k8s/base (hpa.yaml only as the commented alternative)', () => {
    const k = parse(text('k8s/base/kustomization.yaml')) as { resources: string[] };
    const files = readdirSync(at('k8s/base')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'hpa.yaml');
    expect([...k.resources].sort()).toEqual(files.sort());
  });

  it.skipIf(!kubectl)('renders the example overlay with a pinned image and placeholder-only credentials', () => {
    const objs = rendered('k8s/overlays/example');
    const image = (one<Deployment>(objs, 'Deployment').spec.template.spec.containers[0] as Container).image;
    expect(image).toMatch(/^[\w.-]+\/[\w./-]+:[\w.-]+$/);
    const s = one<Secret>(objs, 'Secret');
    for (const v of Object.values(s.stringData ?? {})) expect(v).toMatch(/^REPLACE_ME/);
  });
});

// ---- Dockerfile ---------------------------------------------------------------------------------
interface Instr { op: string; args: string; stage: string }
function dockerfile(): Instr[] {
  const lines = text('Dockerfile').replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  let stage = '';
  return lines.map((l) => {
    const [op = '', ...rest] = l.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? args;
    return { op: op.toUpperCase(), args, stage };
  });
}
const finalStage = (): Instr[] => {
  const all = dockerfile();
  const last = all.at(-1)?.stage;
  return all.filter((i) => i.stage === last);
};
const dockerfileUid = (): number => Number(/^(\d+)/.exec(finalStage().filter((i) => i.op === 'USER').at(-1)?.args ?? '')?.[1]);

describe('Dockerfile', () => {
  it('runs the final stage as a numeric non-root USER', () => {
    const uid = dockerfileUid();
    expect(Number.isInteger(uid) && uid > 0).toBe(true);
    expect(uid).toBe(10001);
  });

  it('has a HEALTHCHECK on /healthz, EXPOSE/ENV HTTP_PORT matching the default, STOPSIGNAL SIGTERM', () => {
    const f = finalStage();
    expect(f.find((i) => i.op === 'HEALTHCHECK')?.args).toContain('/healthz');
    expect(f.find((i) => i.op === 'EXPOSE')?.args).toBe(String(DEFAULTS.HTTP_PORT));
    expect(f.find((i) => i.op === 'ENV' && /HTTP_PORT=/.test(i.args))?.args).toMatch(new RegExp(`HTTP_PORT=${DEFAULTS.HTTP_PORT}\\b`));
    expect(f.find((i) => i.op === 'STOPSIGNAL')?.args).toBe('SIGTERM');
  });

  it('starts dist/cli.js, which tsconfig.build.json compiles from src/cli.ts', () => {
    const cmd = JSON.parse(finalStage().find((i) => i.op === 'CMD')?.args ?? '[]') as string[];
    expect(cmd[0]).toBe('node');
    const build = JSON.parse(text('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    const source = (cmd[1] ?? '').replace(new RegExp(`^${build.compilerOptions.outDir}/`), `${build.compilerOptions.rootDir}/`).replace(/\.js$/, '.ts');
    expect(source).toBe('src/cli.ts');
    expect(existsSync(at(source))).toBe(true);
  });

  it('copies only what .dockerignore keeps in the context, and production dependencies only at runtime', () => {
    const ignored = text('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const must of ['node_modules', 'dist', '.git', 'models/.venv']) expect(ignored).toContain(must);
    const sources = dockerfile().filter((i) => i.op === 'COPY' && !i.args.includes('--from=')).flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1));
    for (const src of sources) {
      expect(ignored.some((p) => src === p || src.startsWith(`${p}/`)), `${src} is excluded by .dockerignore`).toBe(false);
      expect(readdirSync(at(src.includes('*') ? src.slice(0, src.lastIndexOf('/')) : '.')).length, src).toBeGreaterThan(0);
    }
    const all = dockerfile();
    const depsStage = /--from=(\S+)\s+\/app\/node_modules/.exec(finalStage().map((i) => i.args).join('\n'))?.[1];
    expect(all.some((i) => i.stage === depsStage && /npm ci --omit=dev/.test(i.args))).toBe(true);
  });
});

// ---- docker-compose.yml -------------------------------------------------------------------------
interface ComposeService { image?: string; build?: { target?: string }; environment?: Record<string, string>; ports?: string[]; command?: string[]; healthcheck?: { test: string[] }; stop_grace_period?: string; depends_on?: Record<string, { condition: string }> }
const compose = (): Record<string, ComposeService> => (parse(text('docker-compose.yml')) as { services: Record<string, ComposeService> }).services;
/** `${X:-default}` as compose resolves it with X unset. */
const interpolate = (v: string): string => v.replace(/\$\{\w+:-([^}]*)\}/g, '$1');
const seconds = (d: string): number => [...d.matchAll(/(\d+)(h|ms|m|s)/g)].reduce((t, [, n, u]) => t + Number(n) * { h: 3600, m: 60, s: 1, ms: 0.001 }[u as 'h' | 'm' | 's' | 'ms'], 0);

describe('docker-compose.yml', () => {
  const services = compose();
  const scorer = services.scorer as ComposeService;
  const env = (): Labels => Object.fromEntries(Object.entries(scorer.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));

  it("gives the scorer only known, non-empty variables that pass loadConfig (MODEL_PATH overridden)", () => {
    expect(scorer.environment, 'environment as a map').not.toBeInstanceOf(Array);
    for (const [k, v] of Object.entries(env())) {
      expect(CONFIG_KEYS, `compose scorer env ${k}`).toContain(k);
      expect(v, `${k} is empty`).not.toBe('');
    }
    expect(env().MODEL_PATH).toBe('/app/models/churn.onnx');
    const config = loadConfig({ ...env(), MODEL_PATH: at('models/churn.onnx') });
    expect(config.kafka.brokers).toEqual(['kafka:19092']);
  });

  it('points the scorer at the internal Kafka listener and the registry service', () => {
    const kafkaEnv = services.kafka?.environment ?? {};
    expect(kafkaEnv.KAFKA_ADVERTISED_LISTENERS?.split(',').map((l) => l.replace(/^\w+:\/\//, ''))).toContain(env().KAFKA_BROKERS);
    // The broker release follows the local stack's: same variable, same default, a release it accepts.
    expect(services.kafka?.image).toBe(`apache/kafka:\${STACK_KAFKA_VERSION:-${DEFAULT_KAFKA_VERSION}}`);
    expect(parseKafkaVersion(interpolate(services.kafka?.image ?? '').split(':')[1])).toBe(DEFAULT_KAFKA_VERSION);
    const reg = new URL(env().SCHEMA_REGISTRY_URL ?? '');
    expect(services[reg.hostname]?.environment?.SCHEMA_REGISTRY_LISTENERS).toBe(`http://0.0.0.0:${reg.port}`);
    expect(scorer.depends_on).toMatchObject({ kafka: { condition: 'service_healthy' }, 'schema-registry': { condition: 'service_healthy' }, 'topics-init': { condition: 'service_completed_successfully' } });
  });

  it('creates the scorer topics, the input with TOPIC_PARTITIONS partitions', () => {
    const script = (services['topics-init']?.command ?? []).join('\n');
    const e = env();
    for (const topic of [e.INPUT_TOPIC, e.OUTPUT_TOPIC, e.DLQ_TOPIC]) expect(script).toMatch(new RegExp(`--create --if-not-exists --topic ${topic} `));
    expect(script).toMatch(new RegExp(`--topic ${e.INPUT_TOPIC} --partitions ${e.TOPIC_PARTITIONS}\\b`));
  });

  it('publishes HTTP_PORT, checks readiness on it, and waits longer than the drain on stop', () => {
    const port = env().HTTP_PORT;
    expect(scorer.ports?.some((p) => p.endsWith(`:${port}`))).toBe(true);
    expect(scorer.healthcheck?.test.join(' ')).toContain(`:${port}/readyz`);
    expect(seconds(scorer.stop_grace_period ?? '10s') * 1000).toBeGreaterThan(Number(env().SHUTDOWN_TIMEOUT_MS) + 5000);
    const prom = parse(text('deploy/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[] };
    const job = prom.scrape_configs.find((j) => j.static_configs.some((s) => s.targets.includes(`scorer:${port}`)));
    expect(job?.metrics_path ?? '/metrics').toBe('/metrics');
  });

  it('builds the scorer and the load generator from Dockerfile stages, on the same topic', () => {
    const stages = new Set(dockerfile().filter((i) => i.op === 'FROM').map((i) => i.stage));
    expect(scorer.build?.target).toBe(dockerfile().at(-1)?.stage);
    const loadgen = services.loadgen as ComposeService;
    expect(stages).toContain(loadgen.build?.target);
    expect(loadgen.environment).toMatchObject({ KAFKA_BROKERS: env().KAFKA_BROKERS, SCHEMA_REGISTRY_URL: env().SCHEMA_REGISTRY_URL, INPUT_TOPIC: env().INPUT_TOPIC });
  });
});

// ---- Grafana --------------------------------------------------------------------------------------
interface Panel { id: number; type: string; title: string; targets?: { expr: string }[] }
describe('Grafana provisioning and dashboard', () => {
  const dashboard = JSON.parse(text('deploy/grafana/dashboards/scorer.json')) as { uid: string; panels: Panel[] };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it('charts only series the scorer exports', async () => {
    const names = await seriesNames();
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:scorer|kafka_consumergroup|nodejs|process)_[a-z0-9_]+)\b/g)].map((m) => m[1] as string)));
    expect(used.size).toBeGreaterThan(15);
    for (const n of used) expect(names, `dashboard series ${n}`).toContain(n);
  });

  it('covers throughput, lag, batch sizes, latencies, dead letters, transactions and process health', () => {
    const all = exprs.join('\n');
    for (const needed of [
      'rate(scorer_records_scored_total', 'kafka_consumergroup_lag{', 'kafka_consumergroup_lag_seconds{',
      'histogram_quantile(0.99, sum by (le) (rate(scorer_batch_size_rows_bucket', 'scorer_inference_duration_seconds_bucket',
      'scorer_end_to_end_latency_seconds_bucket', 'sum by (code) (rate(scorer_records_dead_lettered_total', 'scorer_transactions_total',
      'scorer_partitions_paused', 'scorer_circuit_open', 'scorer_ready', 'nodejs_eventloop_lag_p99_seconds', 'process_resident_memory_bytes',
    ]) expect(all, needed).toContain(needed);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });

  it('is provisioned from the directory compose mounts, against the Prometheus service', () => {
    const grafana = compose().grafana as ComposeService & { volumes: string[] };
    const provider = parse(text('deploy/grafana/provisioning/dashboards/scorer.yml')) as { providers: { options: { path: string } }[] };
    const mount = grafana.volumes.find((v) => v.startsWith('./deploy/grafana/dashboards:'))?.split(':')[1];
    expect(provider.providers[0]?.options.path).toBe(mount);
    const ds = parse(text('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { type: string; url: string }[] };
    const url = new URL(ds.datasources[0]?.url ?? '');
    expect(ds.datasources[0]?.type).toBe('prometheus');
    expect(compose()[url.hostname]?.image).toMatch(/^prom\/prometheus:/);
  });
});
