/**
 * The Kubernetes manifests agree with the code: k8s/base and the example overlay, each as
 * `kubectl kustomize` renders it (test/helpers/kustomize.ts does that here, without a binary), are
 * checked against src/config.ts (names, values, required settings), src/http.ts (the probe and
 * metrics paths, by serving them), the Dockerfile's user, and each other.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_KEYS, loadConfig } from '../../src/config.js';
import { startHttpServer, type HealthState, type HttpServer } from '../../src/ops/http.js';
import { createLogger } from '../../src/ops/logger.js';
import { at, dockerfileUid, text, yamlDocs } from '../helpers/deploy-files.js';
import { type K8sObject as Obj, renderKustomization } from '../helpers/kustomize.js';

// ---- minimal shapes of what is read (the assertions check the values) -----------------------
type Labels = Record<string, string>;
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
type ConfigMap = Obj & { data?: Labels };

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

/** The variables loadConfig requires, as it names them for an empty environment ("X: expected ..., got nothing (required)"). */
const REQUIRED: string[] = (() => {
  try {
    loadConfig({});
  } catch (err) {
    return [...(err as Error).message.matchAll(/^(\w+): expected .*, got nothing \(required\)$/gm)].map((m) => m[1] as string);
  }
  return [];
})();
/** Settings the other manifests are checked against: the ConfigMap states them rather than relying on a default. */
const PINNED = ['HTTP_PORT', 'GROUP_ID', 'TOPIC_PARTITIONS', 'SHUTDOWN_TIMEOUT_MS'];

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

// ---- Kubernetes ----------------------------------------------------------------------------------
describe.each(['k8s/base', 'k8s/overlays/example'])('%s (rendered as kubectl kustomize does)', (dir) => {
  const objs = renderKustomization(at(dir));
  const get = <T extends Obj>(kind: string): T => one<T>(objs, kind);
  const cm = (): Labels => get<ConfigMap>('ConfigMap').data ?? {};
  const deploy = (): Deployment => get<Deployment>('Deployment');
  const container = (): Container => {
    const cs = deploy().spec.template.spec.containers;
    expect(cs).toHaveLength(1);
    return cs[0] as Container;
  };
  const httpPort = (): number => Number(cm().HTTP_PORT);
  const secret = (): Labels => {
    const s = objs.find((o): o is Secret => o.kind === 'Secret');
    return s ? { ...s.stringData, ...Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])) } : {};
  };

  it('sets every required variable and those the other manifests depend on', () => {
    expect(REQUIRED, "loadConfig's required variables, read from its error").toEqual(expect.arrayContaining(['KAFKA_BROKERS', 'INPUT_TOPIC', 'MODEL_PATH']));
    const data = cm();
    const given = Object.keys({ ...data, ...secret() });
    for (const k of [...REQUIRED, ...PINNED]) expect(given, `ConfigMap (or Secret) sets ${k}`).toContain(k);
  });

  it('uses only variable names the scorer reads, with non-empty string values, secrets only in Secrets', () => {
    const data = cm();
    expect(Object.keys(data).length, 'ConfigMap data').toBeGreaterThan(0);
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

  it('passes loadConfig with the ConfigMap (+ the Secret), overriding only MODEL_PATH', () => {
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
    expect(config.kafka.groupId).toBe(data.GROUP_ID);
    expect(config.shutdownTimeoutMs).toBe(Number(data.SHUTDOWN_TIMEOUT_MS));
    if (data.KAFKA_SASL_MECHANISM !== undefined) expect(config.kafka.sasl?.mechanism).toBe(data.KAFKA_SASL_MECHANISM);
  });

  it('exposes HTTP_PORT as the named container port, Service, ServiceMonitor and NetworkPolicy port', () => {
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

  it('lets the scorer reach its brokers and registry through the NetworkPolicy', () => {
    const data = cm();
    const egress = new Set(get<NetworkPolicy>('NetworkPolicy').spec.egress.flatMap((r) => r.ports.map((p) => Number(p.port))));
    const url = new URL(data.SCHEMA_REGISTRY_URL ?? '');
    const wanted = [53, ...(data.KAFKA_BROKERS ?? '').split(',').map((b) => hostPort(b).port), Number(url.port || (url.protocol === 'https:' ? 443 : 80))];
    for (const p of wanted) expect(egress, `egress port ${p}`).toContain(p);
  });

  it('probes /healthz (startup, liveness) and /readyz (readiness) on the http port', async () => {
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

  it('gives the drain more time than SHUTDOWN_TIMEOUT_MS before SIGKILL', () => {
    const grace = deploy().spec.template.spec.terminationGracePeriodSeconds ?? 30;
    expect(grace * 1000).toBeGreaterThan(Number(cm().SHUTDOWN_TIMEOUT_MS) + 5000);
  });

  it('runs non-root (uid 10001, as the Dockerfile), read-only, no privileges, /tmp on an emptyDir', () => {
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

  it('autoscales with KEDA on the scorer group/topic lag, never past TOPIC_PARTITIONS replicas', () => {
    const data = cm();
    expect(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler'), 'KEDA and an HPA would fight').toHaveLength(0);
    expect(deploy().spec.replicas, 'the autoscaler owns replicas').toBeUndefined();
    const so = get<ScaledObject>('ScaledObject');
    expect(so.spec.scaleTargetRef.name).toBe(deploy().metadata.name);
    expect(so.spec.maxReplicaCount).toBeLessThanOrEqual(Number(data.TOPIC_PARTITIONS));
    expect(so.spec.minReplicaCount ?? 0).toBeGreaterThanOrEqual(1);
    const kafka = so.spec.triggers.filter((t) => t.type === 'kafka');
    expect(kafka).toHaveLength(1);
    const t = kafka[0] as ScaledObject['spec']['triggers'][number];
    expect(t.metadata).toMatchObject({ bootstrapServers: data.KAFKA_BROKERS, consumerGroup: data.GROUP_ID, topic: data.INPUT_TOPIC });
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

  it('limits voluntary disruptions to one pod', () => {
    const pdb = get<Pdb>('PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(matches(pdb.spec.selector.matchLabels, deploy().spec.template.metadata.labels)).toBe(true);
    expect(matches(deploy().spec.selector.matchLabels, deploy().spec.template.metadata.labels)).toBe(true);
  });
});

describe('k8s/base alternatives and overlay', () => {
  it('keeps the CPU HPA alternative consistent (target, max replicas <= partitions)', () => {
    const hpa = one<Hpa>(yamlDocs('k8s/base/hpa.yaml'), 'HorizontalPodAutoscaler');
    const base = renderKustomization(at('k8s/base'));
    const cm = one<ConfigMap>(base, 'ConfigMap').data ?? {};
    expect(hpa.spec.scaleTargetRef.name).toBe(one(base, 'Deployment').metadata.name);
    expect(hpa.spec.maxReplicas).toBeLessThanOrEqual(Number(cm.TOPIC_PARTITIONS));
    expect(text('k8s/base/kustomization.yaml')).toMatch(/^\s*#\s*- hpa\.yaml/m);
  });

  it('lists every manifest in k8s/base (hpa.yaml only as the commented alternative)', () => {
    const k = parse(text('k8s/base/kustomization.yaml')) as { resources: string[] };
    const files = readdirSync(at('k8s/base')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'hpa.yaml');
    expect([...k.resources].sort()).toEqual(files.sort());
  });

  it('renders the example overlay with a pinned image, in its namespace, with placeholder-only credentials', () => {
    const objs = renderKustomization(at('k8s/overlays/example'));
    const image = (one<Deployment>(objs, 'Deployment').spec.template.spec.containers[0] as Container).image;
    expect(image).toMatch(/^[\w.-]+\/[\w./-]+:[\w.-]+$/);
    const ns = one(objs, 'Namespace').metadata.name;
    for (const o of objs.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns);
    const s = one<Secret>(objs, 'Secret');
    expect(Object.keys(s.stringData ?? {}).length).toBeGreaterThan(0);
    for (const v of Object.values(s.stringData ?? {})) expect(v).toMatch(/^REPLACE_ME/);
  });
});
