// The alert rules (deploy/prometheus/rules) checked and unit-tested by promtool: `promtool check
// rules`/`check config`, and `promtool test rules` on test/prometheus/alerts.cases.yml (synthetic
// series -> expected alerts, and the cases that must not fire). promtool is Debian's, fetched by
// scripts/prometheus-tools.ts on first use: if it cannot be had, these tests fail, never skip.
// Plus what promtool does not check: every alert documented in the README's runbook, tested both
// firing and silent, and the Kubernetes PrometheusRule identical to the rules file.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/lib/feature-events.js';
import { type PrometheusTools, prometheusTools } from '../../scripts/prometheus-tools.js';
import { PROMETHEUS_CONFIG, RULES_FILE, alertRules, cases, ruleGroups, writePromtoolTests } from '../helpers/prometheus.js';

const exec = promisify(execFile);
// Fetched inside the tests, not in a beforeAll: a missing promtool must show as failed tests, not skipped ones.
let fetching: Promise<PrometheusTools> | undefined;
const tools = () => (fetching ??= prometheusTools((line) => console.log(`alert rules: ${line}`)));
const dir = mkdtempSync(join(tmpdir(), 'kos-rules-'));

/** Runs promtool; on failure the error carries promtool's own report. */
async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await exec((await tools()).promtool, args, { cwd: ROOT });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('alert rules under promtool', () => {
  it("promtool is there (Debian's prometheus package, fetched into ~/.cache on first use)", async () => {
    expect((await tools()).version).toMatch(/^promtool, version \d+\.\d+/);
  }, 180_000);

  it('promtool check rules and check config (the config loads the rule files) pass', async () => {
    expect(await promtool('check', 'rules', RULES_FILE)).toMatch(new RegExp(`SUCCESS: ${alertRules().length} rules found`));
    expect(await promtool('check', 'config', PROMETHEUS_CONFIG)).toContain('SUCCESS');
  }, 180_000);

  it('promtool test rules: every case gives exactly the expected alerts', async () => {
    const out = await promtool('test', 'rules', writePromtoolTests(dir));
    expect(out).toContain('SUCCESS');
  }, 180_000);
});

describe('alert rules, beyond promtool', () => {
  const rules = alertRules();

  it('every alert has a severity, a templated summary, a constant description and a runbook link', () => {
    for (const r of rules) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels.severity);
      expect(Object.keys(r.annotations).sort(), r.alert).toEqual(['description', 'runbook_url', 'summary']);
      // Constant text: the promtool harness fills it into every expected alert as it is.
      expect(r.annotations.description, r.alert).not.toContain('{{');
      expect(r.annotations.runbook_url, r.alert).toBe(`README.md#${r.alert.toLowerCase()}`);
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  it("every alert has a runbook entry in the README's \"Alerts and runbook\" section, and every entry an alert", () => {
    const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
    const section = readme.split(/^## /m).find((s) => s.startsWith('Alerts and runbook'));
    expect(section, 'README has an "## Alerts and runbook" section').toBeDefined();
    const entries = [...section!.matchAll(/^#### (.+)$/gm)].map((m) => m[1]!.trim());
    expect(entries.sort()).toEqual(rules.map((r) => r.alert).sort());
    for (const r of rules) expect(entries.map(anchor)).toContain(r.annotations.runbook_url!.split('#')[1]);
  });

  it('every alert is tested firing and tested silent (a case where it must not fire)', () => {
    const tests = cases().flatMap((c) => c.alert_rule_test);
    for (const r of rules) {
      const mine = tests.filter((t) => t.alertname === r.alert);
      expect(mine.some((t) => t.exp_alerts.length > 0), `${r.alert} fires in some case`).toBe(true);
      expect(mine.some((t) => t.exp_alerts.length === 0), `${r.alert} stays silent in some case`).toBe(true);
    }
    for (const t of tests) expect(rules.map((r) => r.alert), `case for unknown alert ${t.alertname}`).toContain(t.alertname);
  });

  it('k8s/base/prometheusrule.yaml carries exactly these groups (regenerate: npx tsx scripts/k8s-prometheusrule.ts)', () => {
    const k8s = parse(readFileSync(resolve(ROOT, 'k8s/base/prometheusrule.yaml'), 'utf8')) as { kind: string; spec: { groups: unknown } };
    expect(k8s.kind).toBe('PrometheusRule');
    expect(k8s.spec.groups).toEqual(ruleGroups());
  });
});
