/**
 * Model rollout, traffic splits (issue 8), on the real broker and registry: a key-sticky canary
 * (its share, the same keys after a restart, raising it moves no key back), the guard rolling a
 * failing canary back by itself, and a shadow whose events are exactly once in their own topic
 * without changing the main output. Version changes: rollout-swap.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DLQ_HEADERS } from '../../src/stages/deadletter.js';
import { type ReadMessage, createTopics, drainTopic, produce, randomName, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { tempRepository } from '../helpers/repository.js';
import { deploymentFile, expectReferenceScores, getModels, rolloutSetup, waitForModels } from '../helpers/rollout.js';
import { decodeScored } from '../helpers/scored.js';
import { startTestScorer } from '../helpers/scorer.js';
import { expectExactlyOnce, poisonCount, streamEvent } from '../helpers/stream.js';

/** key -> version that scored it, for the outputs whose entity is in `entities`. */
function versionsByKey(outputs: readonly ReadMessage[], entities: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of outputs) {
    const s = decodeScored(m.value);
    if (entities.has(s.entity_id)) out.set(m.key?.toString() as string, s.model.version);
  }
  return out;
}

const canaryKeys = (versions: Map<string, string>, canary: string): Set<string> => new Set([...versions].filter(([, v]) => v === canary).map(([k]) => k));

describe('model rollout: canary, guard, shadow', () => {
  it('sends 20% of 10,000 keys to the canary, the same keys after a restart, and raising it to 50% moves no key back', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await rolloutSetup('canary', { seed: 29 });
    const repo = tempRepository(['1.0.0', '1.1.0']);
    const file = deploymentFile({ stable: '1.0.0', canary: { version: '1.1.0', percent: 20 } });
    const rolloutEnv = { ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path };
    const KEYS = 10_000;
    let n = 0;
    /** One event for each of the same 10,000 keys; each event its own entity, so an output names its round. */
    const round = async (): Promise<Set<string>> => {
      const events = Array.from({ length: KEYS }, () => factory.event(n++));
      await produce(t.input, events.map((e, i) => ({ key: `customer-${i}`, value: factory.encode('reference', e) })));
      return new Set(events.map((e) => e.entity_id as string));
    };

    const first = await startTestScorer(rolloutEnv);
    const r1 = await round();
    await waitForCommittedToEnd(t.group, t.input, 60_000);
    await first.stop(20_000);

    // A new instance of the same group: the same keys must land on the same versions.
    const second = await startTestScorer(rolloutEnv);
    const r2 = await round();
    await waitForCommittedToEnd(t.group, t.input, 60_000);
    file.write({ stable: '1.0.0', canary: { version: '1.1.0', percent: 50 } });
    const raised = await waitForModels(second.httpPort, 'canary at 50%', (v) => v.effective.canary?.percent === 50);
    expect(raised.versions.find((v) => v.version === '1.1.0')).toMatchObject({ role: 'canary', traffic: 0.5 });
    expect(await scrape(second.httpPort, 'scorer_canary_traffic_ratio')).toBe(0.5);
    const r3 = await round();
    await waitForCommittedToEnd(t.group, t.input, 60_000);
    await second.stop(20_000);

    const outputs = await drainTopic(t.output);
    expect(await drainTopic(t.dlq)).toHaveLength(0);
    // Every event scored once (keys repeat across rounds: counted by entity).
    expect(new Set(outputs.map((m) => decodeScored(m.value).entity_id)).size).toBe(3 * KEYS);
    expect(outputs).toHaveLength(3 * KEYS);
    const canary = [r1, r2, r3].map((entities) => {
      const versions = versionsByKey(outputs, entities);
      expect(versions.size).toBe(KEYS);
      return canaryKeys(versions, '1.1.0');
    }) as [Set<string>, Set<string>, Set<string>];
    const [c1, c2, c3] = canary;
    const pct = (s: Set<string>) => (s.size / KEYS) * 100;
    console.log(`canary over ${KEYS} keys: at 20% ${pct(c1).toFixed(2)}% of keys (after a restart ${pct(c2).toFixed(2)}%), at 50% ${pct(c3).toFixed(2)}%`);
    expect(Math.abs(pct(c1) - 20)).toBeLessThanOrEqual(3);
    expect([...c2].filter((k) => !c1.has(k)).length + [...c1].filter((k) => !c2.has(k)).length).toBe(0); // the same keys after the restart
    expect(Math.abs(pct(c3) - 50)).toBeLessThanOrEqual(3);
    expect([...c1].filter((k) => !c3.has(k))).toEqual([]); // raising the percent moved no key back to stable
  });

  it('rolls a canary that fails rows back by itself, says why, and stable scores every record after; every input once, its failed rows dead letters', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await rolloutSetup('guard', { seed: 29 });
    const repo = tempRepository(['1.0.0', '1.2.0-flaky']);
    // 1.2.0-flaky gives NaN for rows with support_tickets_90d >= 5: about 8% of the events.
    const file = deploymentFile({ stable: '1.0.0', canary: { version: '1.2.0-flaky', percent: 50, guard: { minRows: 500, maxFailureRate: 0.02 } } });
    const rolloutEnv = { ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path };
    let n = 0;
    const events = (count: number) => Array.from({ length: count }, () => factory.good(n++));
    const before = events(4_000);
    await produce(t.input, before);
    const scorer = await startTestScorer(rolloutEnv);
    const port = scorer.httpPort;
    const view = await waitForModels(port, 'the canary rolled back', (v) => v.guard?.state === 'rolled_back', 60_000);
    expect(view.guard).toMatchObject({ canary: '1.2.0-flaky', percent: 0, lastDecision: { action: 'rollback', fromPercent: 50, toPercent: 0 } });
    expect(view.guard?.lastDecision?.reason).toMatch(/^failure rate \d+\.\d\d% \(\d+ of \d+ rows\) above maxFailureRate 2\.00%$/);
    expect(view.lastChange).toMatchObject({ source: 'guard', result: 'applied', reason: view.guard?.lastDecision?.reason });
    expect(view.effective).toEqual({ stable: '1.0.0' });
    expect(await scrape(port, 'scorer_canary_rollbacks_total', { version: '1.2.0-flaky' })).toBe(1);
    expect(await scrape(port, 'scorer_canary_guard_state', { state: 'rolled_back' })).toBe(1);
    expect(await scrape(port, 'scorer_canary_traffic_ratio')).toBe(0);
    await waitForCommittedToEnd(t.group, t.input, 60_000);

    // After the decision stable scores every record, on this instance and on a restarted one
    // (the decision is read back from the rollout topic: the canary does not come back).
    const after = events(1_000);
    await produce(t.input, after);
    await waitForCommittedToEnd(t.group, t.input, 60_000);
    await scorer.stop(20_000);
    const again = await startTestScorer(rolloutEnv);
    const resumed = await getModels(again.httpPort);
    expect({ state: resumed.guard?.state, effective: resumed.effective }).toEqual({ state: 'rolled_back', effective: { stable: '1.0.0' } });
    const afterRestart = events(1_000);
    await produce(t.input, afterRestart);
    await waitForCommittedToEnd(t.group, t.input, 60_000);
    await again.stop(20_000);

    const { outputs, dead } = await expectExactlyOnce([...before, ...after, ...afterRestart], t.output, t.dlq);
    // The canary's failed rows, and only those, are dead letters: INFERENCE_FAILED, naming it.
    expect(dead.length).toBeGreaterThan(0);
    const header = (m: ReadMessage, name: string) => m.headers?.[name]?.toString();
    expect(new Set(dead.map((d) => `${header(d, DLQ_HEADERS.errorCode)} ${header(d, DLQ_HEADERS.modelVersion)}`))).toEqual(new Set(['INFERENCE_FAILED 1.2.0-flaky']));
    const version = new Map(outputs.map((m) => [m.key?.toString() as string, decodeScored(m.value).model.version]));
    expect([...version.values()].filter((v) => v === '1.2.0-flaky').length).toBeGreaterThan(0);
    expect(new Set([...after, ...afterRestart].map((m) => version.get(m.key)))).toEqual(new Set(['1.0.0']));
  });

  it('writes one shadow event per scored event to the shadow topic, exactly once, and the main output is what it is without a shadow', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await rolloutSetup('shadow', { variants: true, seed: 29 });
    const shadowTopic = randomName('shadow-scores');
    const plain = { output: randomName('noshadow-out'), dlq: randomName('noshadow-dlq'), group: randomName('noshadow-group') };
    await createTopics([{ topic: shadowTopic, numPartitions: 6 }, { topic: plain.output, numPartitions: 6 }, { topic: plain.dlq, numPartitions: 2 }]);
    const repo = tempRepository(['1.0.0', '1.1.0']);
    const withShadow = deploymentFile({ stable: '1.0.0', shadow: { version: '1.1.0', topic: shadowTopic } });
    const withoutShadow = deploymentFile({ stable: '1.0.0' });
    const inputs = Array.from({ length: 3_000 }, (_, i) => streamEvent(factory, i));
    await produce(t.input, inputs);
    // The same input, two groups side by side: one with the shadow, one without.
    const [a, b] = await Promise.all([
      startTestScorer({ ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: withShadow.path }),
      startTestScorer({ ...env, OUTPUT_TOPIC: plain.output, DLQ_TOPIC: plain.dlq, GROUP_ID: plain.group, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: withoutShadow.path }),
    ]);
    expect((await getModels(a.httpPort)).versions.find((v) => v.version === '1.1.0')).toMatchObject({ role: 'shadow', traffic: 1 });
    await Promise.all([waitForCommittedToEnd(t.group, t.input, 60_000), waitForCommittedToEnd(plain.group, t.input, 60_000)]);
    const shadowMetric = await scrape(a.httpPort, 'scorer_version_records_scored_total', { version: '1.1.0', role: 'shadow' });
    await Promise.all([a.stop(20_000), b.stop(20_000)]);

    const { outputs, dead } = await expectExactlyOnce(inputs, t.output, t.dlq);
    expect(dead.length).toBe(poisonCount(inputs));
    const shadow = await drainTopic(shadowTopic); // read_committed
    const main = new Map(outputs.map((m) => [m.key?.toString() as string, decodeScored(m.value)]));
    const shadowed = new Map(shadow.map((m) => [m.key?.toString() as string, decodeScored(m.value)]));
    expect({ shadowEvents: shadow.length, distinctKeys: shadowed.size, metric: shadowMetric }).toEqual({ shadowEvents: outputs.length, distinctKeys: outputs.length, metric: outputs.length });
    const mismatched = [...shadowed].filter(([k, s]) => {
      const m = main.get(k);
      return m === undefined || s.model.version !== '1.1.0' || m.model.version !== '1.0.0' || s.entity_id !== m.entity_id || JSON.stringify(s.source) !== JSON.stringify(m.source);
    });
    expect(mismatched.slice(0, 3)).toEqual([]);
    // Main and shadow scores are onnxruntime's for 1.0.0 and 1.1.0.
    await expectReferenceScores(repo, [...outputs, ...shadow], inputs, factory);

    // Without the shadow: the same main output, key by key, and the same dead letters.
    const plainOutputs = await drainTopic(plain.output);
    const plainDead = await drainTopic(plain.dlq);
    const essentials = (s: ReturnType<typeof decodeScored>) => ({ source: s.source, model: s.model, score: s.score, label: s.label });
    const plainMain = new Map(plainOutputs.map((m) => [m.key?.toString() as string, essentials(decodeScored(m.value))]));
    expect(plainMain.size).toBe(main.size);
    expect([...main].filter(([k, s]) => JSON.stringify(essentials(s)) !== JSON.stringify(plainMain.get(k))).slice(0, 3)).toEqual([]);
    expect(plainDead.map((d) => d.key?.toString()).sort()).toEqual(dead.map((d) => d.key?.toString()).sort());
  });
});
