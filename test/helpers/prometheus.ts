/**
 * The monitoring files as data, for the rule tests and the real-Prometheus test: the alert rules
 * (deploy/prometheus/rules), the promtool cases (test/prometheus), the Grafana dashboard's queries,
 * and a Prometheus server started from deploy/prometheus/prometheus.yml.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { ROOT } from '../../scripts/lib/feature-events.js';
import { waitFor } from './kafka.js';
import { freePort } from './net.js';

export const RULES_DIR = resolve(ROOT, 'deploy/prometheus/rules');
export const RULES_FILE = join(RULES_DIR, 'scorer-alerts.yml');
export const PROMETHEUS_CONFIG = resolve(ROOT, 'deploy/prometheus/prometheus.yml');
export const CASES_FILE = resolve(ROOT, 'test/prometheus/alerts.cases.yml');
export const DASHBOARD = resolve(ROOT, 'deploy/grafana/dashboards/scorer.json');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export const ruleGroups = (): RuleGroup[] => (parse(readFileSync(RULES_FILE, 'utf8')) as { groups: RuleGroup[] }).groups;
export const alertRules = (): AlertRule[] => ruleGroups().flatMap((g) => g.rules);

interface ExpAlert {
  exp_labels: Record<string, string>;
  exp_annotations?: Record<string, string>;
}
interface Case {
  name: string;
  interval: string;
  input_series: { series: string; values: string }[];
  alert_rule_test: { eval_time: string; alertname: string; exp_alerts: ExpAlert[] }[];
}
export const cases = (): Case[] => (parse(readFileSync(CASES_FILE, 'utf8')) as { tests: Case[] }).tests;

/**
 * The promtool test file: the cases with rule_files set and, in every expected alert, the rule's
 * annotations other than `summary` (constant text, checked to hold no template) filled in.
 */
export function writePromtoolTests(dir: string): string {
  const byName = new Map(alertRules().map((r) => [r.alert, r]));
  const doc = parse(readFileSync(CASES_FILE, 'utf8')) as { tests: Case[] } & Record<string, unknown>;
  for (const c of doc.tests)
    for (const t of c.alert_rule_test)
      for (const a of t.exp_alerts) {
        const { summary: _, ...constant } = byName.get(t.alertname)?.annotations ?? {};
        a.exp_annotations = { ...constant, ...a.exp_annotations };
      }
  const file = join(dir, 'alerts.test.yml');
  writeFileSync(file, stringify({ rule_files: [RULES_FILE], ...doc }));
  return file;
}

/** `name{a="x",b="y"}` -> name and labels. */
export function parseSeries(series: string): { name: string; labels: Record<string, string> } {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/.exec(series.trim());
  if (m === null) throw new Error(`not a series: ${series}`);
  const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
  return { name: m[1]!, labels };
}

export interface PanelQuery {
  panel: string;
  type: string;
  expr: string;
  legendFormat: string;
}

/** Every target of every panel of the dashboard (rows included). */
export function dashboardQueries(): PanelQuery[] {
  interface Panel {
    title: string;
    type: string;
    targets?: { expr?: string; legendFormat?: string }[];
    panels?: Panel[];
  }
  const walk = (panels: Panel[]): PanelQuery[] =>
    panels.flatMap((p) => [
      ...(p.targets ?? []).filter((t) => t.expr !== undefined).map((t) => ({ panel: p.title, type: p.type, expr: t.expr!, legendFormat: t.legendFormat ?? '' })),
      ...walk(p.panels ?? []),
    ]);
  return walk((JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels);
}

export interface RunningPrometheus {
  url: string;
  child: ChildProcess;
  /** The config it runs: deploy/prometheus/prometheus.yml with the overrides applied. */
  config: Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * Starts `prometheus` on a free loopback port with deploy/prometheus/prometheus.yml, changing only
 * what cannot be the same here: the scorer job's target (the test's scorer), the rule files' path
 * (absolute), and the intervals (seconds instead of 5-15 s, so a short run has enough samples).
 */
export async function startPrometheus(binary: string, dir: string, scorerTarget: string, scrapeSeconds: number): Promise<RunningPrometheus> {
  interface ScrapeConfig {
    job_name: string;
    scrape_interval?: string;
    scrape_timeout?: string;
    static_configs: { targets: string[]; labels?: Record<string, string> }[];
  }
  const config = parse(readFileSync(PROMETHEUS_CONFIG, 'utf8')) as { global: Record<string, string>; rule_files: string[]; scrape_configs: ScrapeConfig[] };
  const port = await freePort();
  config.global = { ...config.global, scrape_interval: `${scrapeSeconds}s`, evaluation_interval: '1s' };
  config.rule_files = config.rule_files.map((f) => resolve(PROMETHEUS_CONFIG, '..', f));
  const scorerJob = config.scrape_configs.find((j) => j.job_name === 'kafka-onnx-scorer');
  if (scorerJob === undefined) throw new Error(`${PROMETHEUS_CONFIG} has no kafka-onnx-scorer job`);
  Object.assign(scorerJob, { scrape_interval: `${scrapeSeconds}s`, scrape_timeout: `${scrapeSeconds}s` });
  for (const sc of scorerJob.static_configs) sc.targets = [scorerTarget];
  for (const job of config.scrape_configs.filter((j) => j.job_name === 'prometheus')) job.static_configs = [{ targets: [`127.0.0.1:${port}`] }];
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const log = createWriteStream(join(dir, 'prometheus.log'));
  const child = spawn(binary, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `prometheus ready on :${port} (log: ${join(dir, 'prometheus.log')})`,
    async () => {
      if (gone) throw new Error(`prometheus exited during start-up: ${readFileSync(join(dir, 'prometheus.log'), 'utf8').slice(-2000)}`);
      return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true ? true : undefined;
    },
    60_000,
    200,
  );
  return {
    url,
    child,
    config,
    async stop() {
      if (!gone) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

/** GET /api/v1/query_range; throws with Prometheus' error for a bad query. */
export async function queryRange(url: string, expr: string, start: number, end: number, step = 1): Promise<Series[]> {
  const q = new URLSearchParams({ query: expr, start: String(start), end: String(end), step: String(step) });
  const body = (await (await fetch(`${url}/api/v1/query_range?${q}`)).json()) as { status: string; error?: string; data?: { resultType: string; result: Series[] } };
  if (body.status !== 'success' || body.data === undefined) throw new Error(`query failed: ${expr}: ${body.error ?? JSON.stringify(body)}`);
  if (body.data.resultType !== 'matrix') throw new Error(`expected a matrix for ${expr}, got ${body.data.resultType}`);
  return body.data.result;
}

/** GET a Prometheus API path returning `data`. */
export async function api<T>(url: string, path: string): Promise<T> {
  const body = (await (await fetch(`${url}${path}`)).json()) as { status: string; error?: string; data: T };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? JSON.stringify(body)}`);
  return body.data;
}
