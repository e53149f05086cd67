/**
 * Checks of the compose test that look at the containers and at Prometheus, the same in both
 * engines (`docker` and `podman` take the same inspect/exec/ls arguments for these).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CheckFailed, ROOT, run, waitFor } from './run.js';

export interface Cli {
  cmd: 'docker' | 'podman';
  env: NodeJS.ProcessEnv;
}

const cli = (c: Cli, args: string[], allowFail = false) => run(c.cmd, args, { env: c.env, echo: false, allowFail });
const inspect = async (c: Cli, what: string[], format: string): Promise<string> => (await cli(c, [...what, '--format', format])).stdout.trim();

export interface Hardening {
  uid: number;
  readOnlyRoot: boolean;
  /** What a write into /app answered (EROFS on a read-only root). */
  writeProbe: string;
  /** The container's health as the engine reports it (compose's check: /readyz). */
  health: string;
  /** Exit code of the image's own HEALTHCHECK command (/healthz), run in the container. */
  imageHealthcheckExit: number;
}

/** The scorer container runs as a non-root uid on a read-only root filesystem and passes its image's HEALTHCHECK. */
export async function checkHardening(c: Cli, container: string): Promise<Hardening> {
  const status = (await cli(c, ['exec', container, 'cat', '/proc/1/status'])).stdout;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  const readOnlyRoot = (await inspect(c, ['inspect', container], '{{.HostConfig.ReadonlyRootfs}}')) === 'true';
  const probe = "try { require('fs').writeFileSync('/app/.write-probe', 'x'); console.log('WRITABLE') } catch (e) { console.log(e.code) }";
  const writeProbe = (await cli(c, ['exec', container, 'node', '-e', probe])).stdout.trim();
  const health = await inspect(c, ['inspect', container], '{{.State.Health.Status}}');
  const image = await inspect(c, ['inspect', container], '{{.Image}}');
  const hc = JSON.parse(await inspect(c, ['image', 'inspect', image], '{{json .Config.Healthcheck}}')) as { Test?: string[] } | null;
  const test = hc?.Test ?? [];
  if (test[0] !== 'CMD' && test[0] !== 'CMD-SHELL') throw new CheckFailed(`the scorer image has no HEALTHCHECK (got ${JSON.stringify(hc)})`);
  const command = test[0] === 'CMD' ? test.slice(1) : ['/bin/sh', '-c', test[1] ?? 'false'];
  const imageHealthcheckExit = (await cli(c, ['exec', container, ...command], true)).code;
  const h: Hardening = { uid, readOnlyRoot, writeProbe, health, imageHealthcheckExit };
  if (!(uid > 0)) throw new CheckFailed(`the scorer runs as uid ${uid}, expected a non-root uid`);
  if (!readOnlyRoot || writeProbe !== 'EROFS') throw new CheckFailed(`the scorer's root filesystem is not read-only (ReadonlyRootfs ${readOnlyRoot}, a write into /app gave ${writeProbe})`);
  if (health !== 'healthy') throw new CheckFailed(`the scorer container is ${health || 'without health'}, expected healthy: ${await inspect(c, ['inspect', container], '{{json .State.Health}}')}`);
  if (imageHealthcheckExit !== 0) throw new CheckFailed(`the image's HEALTHCHECK exited with ${imageHealthcheckExit} in the running scorer`);
  return h;
}

/** `stop_grace_period` of a service in docker-compose.yml, in seconds (compose's `40s` / `1m30s` form). */
export function gracePeriodSeconds(service: string): number {
  const text = readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8');
  const block = text.split(/\n {2}(?=[\w-]+:\n)/).find((b) => b.startsWith(`${service}:`)) ?? '';
  const m = /stop_grace_period:\s*(?:(\d+)m)?(?:(\d+)s)?/.exec(block);
  return m ? Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) : 10;
}

/** The stopped container's exit code. */
export const exitCode = async (c: Cli, container: string): Promise<number> => Number(await inspect(c, ['inspect', container], '{{.State.ExitCode}}'));

/** What the project left behind: containers, networks and volumes carrying its compose label. */
export async function leftovers(c: Cli, project: string): Promise<{ containers: number; networks: number; volumes: number }> {
  const count = async (what: string[]): Promise<number> => (await cli(c, [...what, '--filter', `label=com.docker.compose.project=${project}`, '-q'])).stdout.trim().split('\n').filter(Boolean).length;
  return { containers: await count(['ps', '-a']), networks: await count(['network', 'ls']), volumes: await count(['volume', 'ls']) };
}

// ---- Prometheus -------------------------------------------------------------------------------

interface PromAnswer { status: string; error?: string; data?: { result?: { metric: Record<string, string>; value: [number, string] }[] } }
export async function promQuery(base: string, expr: string): Promise<PromAnswer> {
  return (await (await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as PromAnswer;
}
const scalar = async (base: string, expr: string): Promise<number | undefined> => {
  const v = (await promQuery(base, expr)).data?.result?.[0]?.value[1];
  return v === undefined ? undefined : Number(v);
};

/** Prometheus scrapes the scorer (target up, the scored count it sees) and sees the input lag reach 0. */
export async function checkPrometheus(base: string, o: { job: string; topic: string; scored: number; timeoutMs: number }): Promise<{ up: number; scored: number; maxLag: number }> {
  const up = await waitFor(`Prometheus to see up{job="${o.job}"} == 1`, o.timeoutMs, async () => ((await scalar(base, `up{job="${o.job}"}`)) === 1 ? 1 : undefined));
  const scored = await waitFor(`Prometheus to have scraped ${o.scored} scored records`, o.timeoutMs, async () => {
    const v = await scalar(base, `sum(scorer_records_scored_total{job="${o.job}"})`);
    return v !== undefined && v >= o.scored ? v : undefined;
  });
  const maxLag = await waitFor(`Prometheus to see kafka_consumergroup_lag{topic="${o.topic}"} at 0`, o.timeoutMs, async () => {
    const v = await scalar(base, `max(kafka_consumergroup_lag{job="${o.job}", topic="${o.topic}"})`);
    return v === 0 ? v : undefined;
  });
  return { up, scored, maxLag };
}

/**
 * Every query of the Grafana dashboard, with its variables filled in as Grafana would, runs on
 * this Prometheus: where Grafana cannot run, this is what is left to check of the dashboard.
 */
export async function checkDashboard(base: string, job: string): Promise<{ queries: number; withData: number }> {
  const dashboard = JSON.parse(readFileSync(resolve(ROOT, 'deploy/grafana/dashboards/scorer.json'), 'utf8')) as unknown;
  const exprs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'expr' && typeof x === 'string') exprs.push(x);
        else walk(x);
      }
    }
  };
  walk(dashboard);
  let withData = 0;
  const failures: string[] = [];
  for (const raw of exprs) {
    // $job is this scrape job, $instance "All" (the dashboard's allValue), rate windows 1m.
    const expr = raw.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$job\b/g, job).replace(/\$instance\b/g, '.+');
    const answer = await promQuery(base, expr);
    if (answer.status !== 'success') failures.push(`${raw}: ${answer.error ?? answer.status}`);
    else if ((answer.data?.result?.length ?? 0) > 0) withData += 1;
  }
  if (exprs.length === 0) throw new CheckFailed('the dashboard has no queries');
  if (failures.length > 0) throw new CheckFailed(`${failures.length} dashboard queries fail on Prometheus: ${failures.join('; ')}`);
  return { queries: exprs.length, withData };
}
