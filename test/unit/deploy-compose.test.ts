/**
 * The Docker side agrees with the code: the Dockerfile (user, health check, port, entry point,
 * what it copies), docker-compose.yml (the scorer's environment against src/config.ts, listeners,
 * topics, ports, stop grace) and the Grafana dashboard it provisions (every charted series exists
 * in src/metrics.ts).
 */
import { existsSync, readdirSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_KEYS, DEFAULTS, loadConfig } from '../../src/config.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { DEFAULT_KAFKA_VERSION, parseKafkaVersion } from '../../scripts/stack/kafka.js';
import { type ComposeService, at, compose, dockerfile, dockerfileUid, finalStage, text } from '../helpers/deploy-files.js';

type Labels = Record<string, string>;

/** Every series name the scorer exports (histograms with their _bucket/_sum/_count). */
async function seriesNames(): Promise<Set<string>> {
  const metrics = await createMetrics(new Registry()).registry.getMetricsAsJSON();
  return new Set(metrics.flatMap((m) => (String(m.type) === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => m.name + s) : [m.name])));
}

// ---- Dockerfile ---------------------------------------------------------------------------------
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
