/**
 * End-to-end check of the compose stack (docker-compose.yml), for machines with a Docker engine:
 *
 *   npm run test:compose -- [--count 20000] [--rate 5000] [--poison 0.01] [--timeout 300] [--keep]
 *
 *  1. `docker compose up -d --build` (Kafka, registry, topics, scorer, Prometheus, Grafana);
 *  2. waits for the scorer's /readyz on the host port;
 *  3. runs the load generator (compose service `loadgen`) for --count events, a --poison share bad;
 *  4. waits until scorer_records_scored_total + scorer_records_dead_lettered_total == count, and
 *     checks dead letters == the poison the generator sent (exactly once: no loss, no duplicate);
 *  5. waits until kafka_consumergroup_lag on the input topic is back to ~0 (<= 1 per partition);
 *  6. checks Prometheus scrapes the scorer and Grafana serves the provisioned dashboard;
 *  7. `docker compose down -v` (unless --keep), also after a failure.
 * Exit codes: 0 passed, 1 a check failed, 2 no Docker engine or bad arguments.
 * Not part of `npm test`: it needs Docker and pulls images.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCORER = process.env.SCORER_URL ?? 'http://127.0.0.1:8080';
const PROMETHEUS = process.env.PROMETHEUS_URL ?? 'http://127.0.0.1:9090';
const GRAFANA = process.env.GRAFANA_URL ?? 'http://127.0.0.1:3000';
const INPUT_TOPIC = 'features'; // docker-compose.yml: scorer INPUT_TOPIC
// Without the `load` profile, `up` leaves the load generator out; with it, `run`/`down` see it.
const COMPOSE = ['compose', '-f', resolve(ROOT, 'docker-compose.yml')];
const WITH_LOADGEN = [...COMPOSE, '--profile', 'load'];

class CheckFailed extends Error {}

/** Runs a command; resolves its stdout (also echoed when `echo`), rejects on a non-zero exit. */
function run(cmd: string, args: string[], { echo = true, allowFail = false } = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', echo ? 'inherit' : 'ignore'] });
    let stdout = '';
    child.stdout?.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (echo) process.stdout.write(b);
    });
    child.on('error', fail);
    child.on('close', (code) => {
      if (code === 0 || allowFail) done({ code: code ?? 1, stdout });
      else fail(new CheckFailed(`\`${cmd} ${args.join(' ')}\` exited with ${code}`));
    });
  });
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 2_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new CheckFailed(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

interface Sample { labels: Record<string, string>; value: number }
/** The samples of one metric in the Prometheus text format. */
function samples(body: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1] as string, l[2] as string]));
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}
const total = (body: string, name: string): number => samples(body, name).reduce((t, s) => t + s.value, 0);
const metrics = async (): Promise<string> => {
  const res = await fetch(`${SCORER}/metrics`);
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '20000' },
      rate: { type: 'string', default: '5000' },
      poison: { type: 'string', default: '0.01' },
      timeout: { type: 'string', default: '300' },
      keep: { type: 'boolean', default: false },
    },
  });
  const [count, rate, poison, timeoutS] = [values.count, values.rate, values.poison, values.timeout].map(Number) as [number, number, number, number];
  if (!(Number.isInteger(count) && count > 0 && rate >= 0 && poison >= 0 && poison <= 1 && timeoutS > 0)) {
    console.error('compose-e2e: expected --count > 0, --rate >= 0, --poison in 0..1, --timeout > 0 (seconds)');
    process.exit(2);
  }
  const timeoutMs = timeoutS * 1000;

  const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { echo: false, allowFail: true }).catch(() => ({ code: 127, stdout: '' }));
  if (info.code !== 0) {
    console.error('compose-e2e: no Docker engine answers (`docker info` failed). This test needs Docker with the compose plugin; see docs/operations-deploy.md.');
    process.exit(2);
  }
  console.log(`compose-e2e: Docker ${info.stdout.trim()}; ${count} events at ${rate || 'max'}/s, poison ${poison}`);

  let failed = false;
  try {
    await run('docker', [...COMPOSE, 'up', '-d', '--build']);
    await run('docker', [...WITH_LOADGEN, 'build', 'loadgen']);

    const startedMs = Date.now();
    await waitFor('the scorer to be ready (/readyz)', timeoutMs, async () => ((await fetch(`${SCORER}/readyz`)).ok ? true : undefined));
    console.log(`compose-e2e: scorer ready after ${Math.round((Date.now() - startedMs) / 1000)} s`);
    const before = await metrics();
    const base = total(before, 'scorer_records_scored_total') + total(before, 'scorer_records_dead_lettered_total');

    const gen = await run('docker', [...WITH_LOADGEN, 'run', '--rm', '--no-deps', '-T', 'loadgen', '--count', String(count), '--rate', String(rate), '--poison', String(poison)]);
    const summaryLine = gen.stdout.split(/[\r\n]/).reverse().find((l) => l.trim().startsWith('{'));
    if (summaryLine === undefined) throw new CheckFailed('the load generator printed no JSON summary');
    const summary = JSON.parse(summaryLine) as { sent: number; poison: number };
    if (summary.sent !== count) throw new CheckFailed(`the load generator sent ${summary.sent} events, expected ${count}`);

    // Every input offset ends up in exactly one of the two topics, committed once.
    await waitFor(`${count} records scored or dead-lettered`, timeoutMs, async () => {
      const body = await metrics();
      const n = total(body, 'scorer_records_scored_total') + total(body, 'scorer_records_dead_lettered_total') - base;
      return n >= count ? n : undefined;
    });
    await sleep(2_000); // anything past `count` would be a duplicate: give it a moment to show
    const after = await metrics();
    const scored = total(after, 'scorer_records_scored_total') - total(before, 'scorer_records_scored_total');
    const dead = total(after, 'scorer_records_dead_lettered_total') - total(before, 'scorer_records_dead_lettered_total');
    console.log(`compose-e2e: scored ${scored}, dead-lettered ${dead} (poison sent ${summary.poison})`);
    if (scored + dead !== count) throw new CheckFailed(`scored + dead-lettered = ${scored + dead}, expected exactly ${count}`);
    if (dead !== summary.poison) throw new CheckFailed(`dead-lettered ${dead}, expected the ${summary.poison} poison records sent`);

    // Lag back to ~0: an idle transactional partition may read 1 (control record, DESIGN.md).
    const lag = await waitFor('kafka_consumergroup_lag to return to ~0', timeoutMs, async () => {
      const series = samples(await metrics(), 'kafka_consumergroup_lag').filter((s) => s.labels.topic === INPUT_TOPIC);
      if (series.length === 0) throw new Error(`no kafka_consumergroup_lag{topic="${INPUT_TOPIC}"} series on /metrics`);
      return series.every((s) => s.value <= 1) ? series : undefined;
    });
    console.log(`compose-e2e: lag ${lag.map((s) => `${s.labels.partition}:${s.value}`).join(' ')}`);

    // Monitoring: Prometheus scrapes the scorer; Grafana has the dashboard (anonymous viewer).
    await waitFor('Prometheus to have scraped scorer_records_scored_total', 60_000, async () => {
      const res = await fetch(`${PROMETHEUS}/api/v1/query?query=${encodeURIComponent('sum(scorer_records_scored_total)')}`);
      const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
      const v = Number(body.data?.result?.[0]?.value[1] ?? NaN);
      return v >= scored ? v : undefined;
    });
    await waitFor('Grafana to serve the provisioned dashboard', 60_000, async () => ((await fetch(`${GRAFANA}/api/dashboards/uid/kafka-onnx-scorer`)).ok ? true : undefined));
    console.log('compose-e2e: PASSED');
  } catch (err) {
    failed = true;
    console.error(`compose-e2e: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    await run('docker', [...WITH_LOADGEN, 'ps', '-a'], { allowFail: true }).catch(() => undefined);
    await run('docker', [...COMPOSE, 'logs', '--no-color', '--tail', '80', 'scorer'], { allowFail: true }).catch(() => undefined);
  } finally {
    if (values.keep) console.log('compose-e2e: --keep: stack left running (`docker compose --profile load down -v` to remove it)');
    else await run('docker', [...WITH_LOADGEN, 'down', '-v', '--remove-orphans'], { allowFail: true }).catch(() => undefined);
  }
  process.exit(failed ? 1 : 0);
}

await main();
