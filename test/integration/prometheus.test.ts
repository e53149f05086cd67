/**
 * A real Prometheus (Debian's, scripts/prometheus-tools.ts) scrapes a real scorer process with the
 * project's own config and rules (deploy/prometheus), through a run with four phases: poison mixed
 * into the stream, a pause (nothing produced) during which a deployment change is refused, a
 * registry outage during which records with a new writer schema wait (partitions stall, lag
 * grows), and the recovery. The scorer serves a model repository: stable 1.0.0, a 30 % canary
 * 1.1.0 and a shadow 1.2.0-flaky (which fails ~8 % of rows), so the rollout row has data too.
 * Then, through the HTTP API:
 *  - every rule loaded and evaluates without error;
 *  - every Grafana panel query returns data (a panel without data fails), in the shape its legend
 *    needs: the labels it names, one series when it names none;
 *  - every alert expression either returns data at some point of the run (the alerts this scenario
 *    provokes) or none at all (listed below with the reason), or uses metrics this scorer does not
 *    export yet (listed: they must be absent, so the test fails once they exist and need a case);
 *  - every series the promtool cases (test/prometheus/alerts.cases.yml) are built from exists in
 *    the real scrape with the same label names and values, so the rule tests test real shapes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { EventFactory, POISON_KINDS } from '../../scripts/lib/feature-events.js';
import { prometheusTools } from '../../scripts/prometheus-tools.js';
import { RegistryRest } from '../../src/kafka/registry.js';
import { createTopics, produce, randomName, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { type Series, alertRules, api, cases, dashboardQueries, parseSeries, queryRange, startPrometheus } from '../helpers/prometheus.js';
import { tempRepository } from '../helpers/repository.js';
import { spawnScorer } from '../helpers/scorer.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

/** Alerts whose expression must return data at some point of this run. */
const FIRES = new Set(['ScorerConsumerLagGrowing', 'ScorerPartitionStalled', 'ScorerDeadLetterRateHigh', 'ScorerProducerBugDeadLetters', 'ScorerDeploymentRefused',
  // Its expression holds while the canary serves 30 % (the alert itself waits 24 h: `for`).
  'ScorerCanaryStuck']);
/** Alerts whose expression must return nothing in this run, and why. */
const SILENT: Record<string, string> = {
  ScorerConsumerLagSecondsHigh: 'the outage lasts seconds, the threshold is 120 s',
  ScorerPartitionStopped: 'the scorer holds every partition throughout',
  ScorerLagStatusError: 'offsets are never reset and nothing is deleted by retention',
  ScorerCircuitOpen: 'the model is healthy',
  ScorerNotReady: 'Prometheus starts after /readyz answers 200 and the run ends before SIGTERM',
  ScorerTransactionsAborting: 'a registry outage fails chunks before their transaction begins',
  ScorerRestarting: 'one scorer process for the whole run',
  ScorerDown: 'the scorer answers every scrape',
  ScorerAbsent: 'the scorer is up for the whole run',
};
/**
 * Rollout metrics this run cannot produce (the canary is healthy: no rollback; labelled series
 * appear on first use); their alerts are checked by promtool only.
 */
const NOT_EXPORTED_YET = ['scorer_canary_rollbacks_total'];
/** Labels the scrape config adds to every scorer series (static target labels), not the scorer. */
const TARGET_LABELS = ['service'];
/** Labels whose values the promtool cases must take from the real ones (not placeholders such as instance). */
const ENUM_LABELS = ['status', 'code', 'result', 'stage'];
const SCRAPE_SECONDS = 2;

const say = (line: string) => console.log(`prometheus test: ${line}`);


/** Grafana's variables as a dashboard showing "All" with this test's scrape interval would expand them. */
const grafanaExpand = (expr: string) =>
  expr
    .replaceAll('$job', '.+')
    .replaceAll('$instance', '.+')
    .replaceAll('$__rate_interval', `${4 * SCRAPE_SECONDS}s`); // max(4 x scrape interval, step + scrape interval)

const legendLabels = (legend: string) => [...legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
const hasValue = (s: Series) => s.values.some(([, v]) => !Number.isNaN(Number(v)));

describe('a real Prometheus scraping a real scorer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kos-prometheus-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers every dashboard query and alert expression with data of the expected shape', async () => {
    const tools = await prometheusTools(say);
    const input = randomName('prom-in');
    const output = randomName('prom-out');
    const dlq = randomName('prom-dlq');
    const group = randomName('prom-group');
    await createTopics([
      { topic: input, numPartitions: 3 },
      { topic: output, numPartitions: 3 },
      { topic: dlq, numPartitions: 1 },
    ]);
    // The scorer reaches the registry through a proxy the test can cut; the registry itself stays up.
    const registryUrl = new URL(inject('schemaRegistryUrl'));
    const proxy = new TcpProxy({ host: registryUrl.hostname, port: Number(registryUrl.port || 80) });
    await proxy.up();
    onTestFinished(() => proxy.down());
    const factory = await EventFactory.create(new RegistryRest({ url: registryUrl.href }), input, { seed: 12 });
    const deployment = join(dir, 'deployment.json');
    writeFileSync(deployment, JSON.stringify({ stable: '1.0.0', canary: { version: '1.1.0', percent: 30 }, shadow: { version: '1.2.0-flaky', topic: randomName('prom-shadow') } }));

    const scorer = await spawnScorer('prometheus', {
      INPUT_TOPIC: input,
      OUTPUT_TOPIC: output,
      DLQ_TOPIC: dlq,
      GROUP_ID: group,
      MODEL_REPOSITORY: tempRepository(['1.0.0', '1.1.0', '1.2.0-flaky']),
      MODEL_DEPLOYMENT: deployment,
      SCHEMA_REGISTRY_URL: `${registryUrl.protocol}//127.0.0.1:${proxy.port}${registryUrl.pathname}`,
      // A lag status window of 10 polls is 2.5 s: the outage below stalls the partitions visibly.
      LAG_POLL_INTERVAL_MS: '250',
      // The default, not the tests' 6 s: on a loaded machine a missed heartbeat must not expel the
      // member (nobody would hold the partitions then, a STOP this scenario does not mean to make).
      KAFKA_SESSION_TIMEOUT_MS: '30000',
    });
    const prom = await startPrometheus(tools.prometheus, join(dir, 'prometheus'), `127.0.0.1:${scorer.port}`, SCRAPE_SECONDS);
    onTestFinished(() => prom.stop());
    const instant = async (expr: string) => (await queryRange(prom.url, expr, Date.now() / 1000, Date.now() / 1000)).length > 0;
    /** Resolves once Prometheus holds a scrape of the scorer taken after this call. */
    const nextScrape = async () => {
      const now = Date.now() / 1000;
      await waitFor('a scrape after now', () => instant(`timestamp(scorer_ready{job="kafka-onnx-scorer"}) > ${now}`), 30_000, 250);
    };
    await waitFor('the first successful scrape of the scorer', () => instant('up{job="kafka-onnx-scorer"} == 1'), 30_000, 250);
    const start = Math.ceil(Date.now() / 1000);

    // 1. A stream with poison: four chunks, each scored between two scrapes, one record in ten bad,
    //    cycling through every kind (every dead-letter code).
    for (let chunk = 0; chunk < 4; chunk++) {
      const from = chunk * 110;
      await produce(
        input,
        Array.from({ length: 110 }, (_, j) => from + j).map((i) => (i % 10 === 9 ? factory.poison(POISON_KINDS[((i - 9) / 10) % POISON_KINDS.length]!, i) : factory.good(i))),
      );
      await waitForCommittedToEnd(group, input);
      await nextScrape();
    }
    // 2. A pause: nothing produced for three scrapes (rates fall to 0, lag stays 0, status OK),
    //    and a deployment change the scorer refuses (it names a version the repository lacks).
    writeFileSync(deployment, JSON.stringify({ stable: '9.9.9' }));
    await waitFor('the deployment change refused', async () => {
      const models = (await (await fetch(`http://127.0.0.1:${scorer.port}/models`)).json()) as { lastChange?: { result: string } };
      return models.lastChange?.result === 'refused';
    });
    for (let i = 0; i < 3; i++) await nextScrape();
    // 3. Registry outage: records with a writer schema id the scorer has not fetched yet must wait.
    await proxy.down();
    await produce(input, Array.from({ length: 1_500 }, (_, i) => factory.evolved(10_000 + i)));
    await waitFor(
      'Prometheus to see the backlog and the stalled partitions',
      async () => (await instant('kafka_consumergroup_lag_sum > 1000')) && (await instant('max(kafka_consumergroup_lag_status{status="STALL"}) == 1')),
      60_000,
      250,
    );
    // 4. Recovery.
    await proxy.up();
    await waitForCommittedToEnd(group, input);
    await waitFor('Prometheus to see the lag back at 0', () => instant('kafka_consumergroup_lag_sum == 0'), 30_000, 250);
    await nextScrape();
    const end = Math.ceil(Date.now() / 1000);
    say(`scraped ${end - start} s of the run`);

    // Every rule loaded from deploy/prometheus/rules and evaluated without error.
    const { groups } = await api<{ groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] }>(prom.url, '/api/v1/rules');
    expect(groups.flatMap((g) => g.rules).map((r) => r.name).sort()).toEqual(alertRules().map((r) => r.alert).sort());
    await waitFor('every rule evaluated once', async () => {
      const { groups: now } = await api<{ groups: { rules: { health: string }[] }[] }>(prom.url, '/api/v1/rules');
      return now.flatMap((g) => g.rules).every((r) => r.health !== 'unknown');
    });
    for (const r of (await api<{ groups: { rules: { name: string; health: string; lastError?: string }[] }[] }>(prom.url, '/api/v1/rules')).groups.flatMap((g) => g.rules))
      expect({ rule: r.name, health: r.health, error: r.lastError ?? '' }).toEqual({ rule: r.name, health: 'ok', error: '' });

    // The dashboard's variables find the scorer.
    expect(await api<string[]>(prom.url, `/api/v1/label/job/values?match[]=scorer_ready`)).toContain('kafka-onnx-scorer');

    // Every panel query: data, with the labels its legend shows.
    const panels = dashboardQueries();
    expect(panels.length).toBeGreaterThan(30);
    for (const q of panels) {
      const result = await queryRange(prom.url, grafanaExpand(q.expr), start, end);
      const what = `panel "${q.panel}": ${q.expr}`;
      expect(result.filter(hasValue).length, `${what} has data`).toBeGreaterThan(0);
      const labels = legendLabels(q.legendFormat);
      if (labels.length === 0) expect(result.length, `${what}: one series for the legend "${q.legendFormat}"`).toBe(1);
      for (const s of result) for (const l of labels) expect(s.metric, `${what}: legend label ${l}`).toHaveProperty(l);
    }

    // Every alert expression: data for the alerts this run provokes, none for the others.
    const names = await api<string[]>(prom.url, '/api/v1/label/__name__/values');
    for (const m of NOT_EXPORTED_YET) expect(names, `${m} is exported now: give its alerts a case in FIRES or SILENT`).not.toContain(m);
    for (const rule of alertRules()) {
      const result = await queryRange(prom.url, rule.expr, start, end);
      const what = `alert ${rule.alert}: ${rule.expr}`;
      if (FIRES.has(rule.alert)) {
        expect(result.length, `${what} returns data`).toBeGreaterThan(0);
        for (const s of result) for (const l of [...rule.annotations.summary!.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!)) expect(s.metric, `${what}: label ${l} of its summary`).toHaveProperty(l);
      } else if (rule.alert in SILENT) {
        expect(result, `${what} is silent here: ${SILENT[rule.alert]}`).toEqual([]);
      } else {
        const uses = NOT_EXPORTED_YET.filter((m) => rule.expr.includes(m));
        expect(uses.length, `${rule.alert} needs an expectation: FIRES, SILENT or built on NOT_EXPORTED_YET metrics`).toBeGreaterThan(0);
        expect(result, `${what} uses metrics not exported yet`).toEqual([]);
      }
    }

    // The promtool cases' series have the real names, label names and enumerated label values.
    const synthetic = cases().flatMap((c) => c.input_series.map((s) => parseSeries(s.series)));
    for (const { name, labels } of synthetic) {
      if (NOT_EXPORTED_YET.includes(name)) continue;
      const real = (await api<Record<string, string>[]>(prom.url, `/api/v1/series?match[]=${encodeURIComponent(name)}&start=${start}&end=${end}`)).map((s) =>
        Object.fromEntries(Object.entries(s).filter(([k]) => k !== '__name__' && !TARGET_LABELS.includes(k))),
      );
      const want = Object.keys(labels).sort().join(',');
      expect(real.map((s) => Object.keys(s).sort().join(',')), `${name}: label names of the promtool cases`).toContain(want);
      for (const l of ENUM_LABELS.filter((k) => k in labels)) expect(real.map((s) => s[l]), `${name}{${l}="${labels[l]}"} in the promtool cases is a real value`).toContain(labels[l]);
    }

    say(
      `checked ${panels.length} panel queries, ${alertRules().length} alert expressions (${FIRES.size} with data, ${Object.keys(SILENT).length} silent, ` +
        `${alertRules().length - FIRES.size - Object.keys(SILENT).length} on metrics not exported yet), ${synthetic.length} promtool case series`,
    );
    scorer.child.kill('SIGTERM');
    expect(await scorer.exited).toBe(0);
  }, 300_000);
});
