/**
 * The scorer against a broker and registry that require security (the `integration-security`
 * line: STACK_SECURITY=sasl_ssl, scripts/stack/security.ts): SASL_SSL with SCRAM-SHA-512 and
 * ACLs, the registry over HTTPS with basic auth. The scorer runs as the `scorer` user with exactly
 * the minimal ACLs (scripts/lib/acls.ts); the tests' own clients are the stack's admin.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { EventFactory, ROOT } from '../../scripts/lib/feature-events.js';
import { type ScorerAcl, grantAcls, scorerAcls } from '../../scripts/lib/acls.js';
import { createTopics, drainTopic, produce, randomName, testKafka, testRegistry, waitForCommittedToEnd } from '../helpers/kafka.js';
import { decodeScored } from '../helpers/scored.js';
import { runScorerToExit, spawnScorer } from '../helpers/scorer.js';
import { tempDir } from '../helpers/fixtures.js';

const security = inject('stackSecurityEnv');
const SCORER = 'scorer';
const scorerPassword = security.STACK_SCORER_PASSWORD as string;
const adminPassword = security.KAFKA_SASL_PASSWORD as string;
const passwords = [scorerPassword, adminPassword];

/** The scorer's own credentials: Kafka and registry as `scorer`. */
const asScorer = { KAFKA_SASL_USERNAME: SCORER, KAFKA_SASL_PASSWORD: scorerPassword, SCHEMA_REGISTRY_USERNAME: SCORER, SCHEMA_REGISTRY_PASSWORD: scorerPassword };

interface Setup {
  input: string;
  output: string;
  dlq: string;
  group: string;
  prefix: string;
  acls: ScorerAcl[];
  env: Record<string, string>;
}

/** Topics (made by the admin), the scorer's minimal ACLs on them but `without`, and `good` events plus one poison record. */
async function setUp(name: string, { without = [] as ScorerAcl['name'][], good = 20 } = {}): Promise<Setup> {
  const s = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`), prefix: randomName(`${name}-tx`) };
  await createTopics([
    { topic: s.input, numPartitions: 3 },
    { topic: s.output, numPartitions: 3 },
    { topic: s.dlq, numPartitions: 1 },
  ]);
  const acls = scorerAcls({ input: s.input, output: s.output, dlq: s.dlq, groupId: s.group, transactionalIdPrefix: s.prefix }).filter((a) => !without.includes(a.name));
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  try {
    await grantAcls(admin, `User:${SCORER}`, acls);
  } finally {
    await admin.disconnect();
  }
  const factory = await EventFactory.create(testRegistry(), s.input, { seed: 17 });
  await produce(s.input, [...Array.from({ length: good }, (_, i) => factory.good(i)), factory.poison('bad-magic', good)]);
  const env = { ...asScorer, INPUT_TOPIC: s.input, OUTPUT_TOPIC: s.output, DLQ_TOPIC: s.dlq, GROUP_ID: s.group, TRANSACTIONAL_ID_PREFIX: s.prefix };
  return { ...s, acls, env };
}

/** A CA that signed nothing of the stack's (the scorer must refuse the broker's or registry's certificate with it). */
function makeOtherCa(): string {
  const dir = tempDir('other-ca-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-days', '2', '-subj', '/CN=not the stack CA'], { stdio: 'ignore' });
  return join(dir, 'ca.pem');
}

const expectNoPassword = (text: string) => {
  for (const p of passwords) expect(text).not.toContain(p);
};

describe('SASL_SSL, ACLs and registry auth', () => {
  it('scores end to end as the least-privileged user, exactly once on read-back; no password in its output or /metrics', async () => {
    const s = await setUp('e2e', { good: 300 });
    const name = randomName('secure-e2e');
    const scorer = await spawnScorer(name, s.env);
    await waitForCommittedToEnd(s.group, s.input, 90_000);
    const metrics = await fetch(`http://127.0.0.1:${scorer.port}/metrics`).then((r) => r.text());
    expect(metrics).toContain('scorer_records_scored_total');
    scorer.child.kill('SIGTERM');
    expect(await scorer.exited).toBe(0);
    const [outputs, dead] = await Promise.all([drainTopic(s.output), drainTopic(s.dlq)]);
    // Every input record in exactly one of the two topics, by its position.
    const seen = [...outputs.map((m) => decodeScored(m.value).source), ...dead.map((m) => ({ partition: Number(m.headers?.[DLQ_HEADERS.sourcePartition]?.toString()), offset: Number(m.headers?.[DLQ_HEADERS.sourceOffset]?.toString()) }))];
    expect(outputs).toHaveLength(300);
    expect(dead).toHaveLength(1);
    expect(new Set(seen.map((p) => `${p.partition}:${p.offset}`)).size).toBe(301);
    const log = readFileSync(join(ROOT, '.stack/logs', inject('lineName'), `test-${name}.log`), 'utf8');
    expect(log).toContain('consuming');
    expectNoPassword(log);
    expectNoPassword(metrics);
  });

  it('a wrong Kafka password stops the scorer at start with exit 1 naming KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD', async () => {
    const s = await setUp('badpw', { good: 1 });
    const wrong = `wrong-${randomName('pw')}`;
    const run = await runScorerToExit(randomName('secure-badpw'), { ...s.env, KAFKA_SASL_PASSWORD: wrong });
    expect(run.code).toBe(1);
    expect(run.log).toContain('KAFKA_AUTH_FAILED');
    expect(run.log).toContain('KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD');
    expect(run.log).not.toContain(wrong);
    expectNoPassword(run.log);
  });

  it('a broker certificate not signed by KAFKA_SSL_CA_FILE stops the scorer at start with exit 1 naming it', async () => {
    const otherCa = makeOtherCa();
    const s = await setUp('badca', { good: 1 });
    const run = await runScorerToExit(randomName('secure-badca'), { ...s.env, KAFKA_SSL_CA_FILE: otherCa });
    expect(run.code).toBe(1);
    expect(run.log).toContain('KAFKA_TLS_UNTRUSTED');
    expect(run.log).toContain(`KAFKA_SSL_CA_FILE (${otherCa})`);
    expectNoPassword(run.log);
  });

  it('the registry refusing the password, or a registry certificate not signed by SCHEMA_REGISTRY_CA_FILE, stops the scorer with exit 1 naming the setting', async () => {
    const otherCa = makeOtherCa();
    const s = await setUp('regauth', { good: 1 });
    const wrong = `wrong-${randomName('pw')}`;
    const badPassword = await runScorerToExit(randomName('secure-regpw'), { ...s.env, SCHEMA_REGISTRY_PASSWORD: wrong });
    expect(badPassword.code).toBe(1);
    expect(badPassword.log).toContain('refused the credentials (HTTP 401); check SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD');
    expect(badPassword.log).not.toContain(wrong);
    const badCa = await runScorerToExit(randomName('secure-regca'), { ...s.env, SCHEMA_REGISTRY_CA_FILE: otherCa });
    expect(badCa.code).toBe(1);
    expect(badCa.log).toContain('SCHEMA_REGISTRY_CA_FILE: the certificate of the schema registry');
    expectNoPassword(badPassword.log + badCa.log);
  });

  // One of the minimal ACLs missing: the scorer says which (principal, operation, resource) and exits 1, instead of stalling.
  it.each([
    { without: 'write-dlq' as const, says: (s: Setup) => [`'${s.dlq}'`, 'TOPIC_AUTHORIZATION_FAILED', 'Write on the output and dead-letter topics'] },
    { without: 'read-group' as const, says: (s: Setup) => [`Read on group '${s.group}'`, 'GROUP_AUTHORIZATION_FAILED'] },
    { without: 'write-transactional-id' as const, says: (s: Setup) => [`Write on transactional id '${s.prefix}-${s.group}-`, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'] },
  ])('without $without the scorer names the authorization that failed and exits 1', async ({ without, says }) => {
    const s = await setUp(without, { without: [without], good: 5 });
    const run = await runScorerToExit(randomName(`secure-${without}`), s.env);
    expect(run.code).toBe(1);
    expect(run.log).toContain('KAFKA_NOT_AUTHORIZED');
    expect(run.log).toContain(`User:${SCORER} needs`);
    for (const text of says(s)) expect(run.log).toContain(text);
    expectNoPassword(run.log);
  });
});
