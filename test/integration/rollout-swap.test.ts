/**
 * Model rollout, version changes (issue 8), on the real broker and registry: a hot swap and its
 * rollback under load, landing at transaction boundaries, each input scored once by one version
 * exactly as onnxruntime scores with that version; changes that must be refused, refused whole
 * with their reason while scoring goes on; and SIGKILL in the middle of a swap.
 * Traffic splits (canary, guard, shadow): rollout-traffic.test.ts.
 */
import { describe, expect, inject, it } from 'vitest';
import { EventFactory, type OutMessage } from '../../scripts/lib/feature-events.js';
import { RegistryRest } from '../../src/kafka/registry.js';
import { loadVersion } from '../../src/model/repository.js';
import { createTopics, produce, randomName, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { tempRepository } from '../helpers/repository.js';
import { deploymentFile, memoryLogger, versionRuns, waitForModels } from '../helpers/rollout.js';
import { decodeScored, referenceScores } from '../helpers/scored.js';
import { processedSoFar, spawnScorer, startTestScorer } from '../helpers/scorer.js';
import { expectExactlyOnce, poisonCount, startStream } from '../helpers/stream.js';
import type { ReadMessage } from '../helpers/kafka.js';

async function setup(name: string, { variants = false } = {}) {
  const t = { input: randomName(`${name}-in`), output: randomName(`${name}-out`), dlq: randomName(`${name}-dlq`), group: randomName(`${name}-group`) };
  await createTopics([
    { topic: t.input, numPartitions: 6 },
    { topic: t.output, numPartitions: 6 },
    { topic: t.dlq, numPartitions: 2 },
  ]);
  const factory = await EventFactory.create(new RegistryRest({ url: inject('schemaRegistryUrl') }), t.input, { seed: 23, variants });
  const env = { INPUT_TOPIC: t.input, OUTPUT_TOPIC: t.output, DLQ_TOPIC: t.dlq, GROUP_ID: t.group, BATCH_MAX_SIZE: '256' };
  return { t, factory, env };
}

/**
 * Asserts each output's score is onnxruntime's for the version the output names (read from
 * `repo`), and that the versions' scores differ, so an output labelled with the wrong one shows.
 */
async function expectReferenceScores(repo: string, outputs: readonly ReadMessage[], sent: readonly OutMessage[], factory: EventFactory): Promise<void> {
  const byKey = new Map(sent.map((m) => [m.key, m]));
  const byVersion = new Map<string, { key: string; score: number }[]>();
  for (const m of outputs) {
    const s = decodeScored(m.value);
    byVersion.set(s.model.version, [...(byVersion.get(s.model.version) ?? []), { key: m.key?.toString() as string, score: s.score }]);
  }
  const reference = (version: string, keys: string[]) => {
    const model = loadVersion(repo, version);
    return referenceScores(model, keys.map((k) => factory.featureRow((byKey.get(k) as OutMessage).value, model.manifest.features)));
  };
  for (const [version, scored] of byVersion) {
    const expected = await reference(version, scored.map((s) => s.key));
    const wrong = scored.map((s, i) => ({ key: s.key, got: s.score, expected: expected[i] as number })).filter((x) => !(Math.abs(x.got - x.expected) < 1e-5));
    expect({ version, wrong: wrong.slice(0, 3), wrongCount: wrong.length }).toEqual({ version, wrong: [], wrongCount: 0 });
  }
  const [one, other] = [...byVersion.keys()];
  if (one === undefined || other === undefined) return;
  const first = byVersion.get(one) as { key: string; score: number }[];
  const otherScores = await reference(other, first.map((s) => s.key));
  expect(first.reduce((sum, s, i) => sum + Math.abs(s.score - (otherScores[i] as number)), 0) / first.length).toBeGreaterThan(0.01);
}

describe('model rollout: version changes', () => {
  it('swaps stable 1.0.0 -> 1.1.0 under load and back, each change at a transaction boundary, every input scored once as onnxruntime does with its version', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await setup('swap');
    const repo = tempRepository(['1.0.0', '1.1.0']);
    const file = deploymentFile({ stable: '1.0.0' });
    const scorer = await startTestScorer({ ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path });
    const port = scorer.httpPort;
    const scored = (version: string) => scrape(port, 'scorer_version_records_scored_total', { version, role: 'stable' });
    const stream = startStream(factory, t.input, { rate: 1_500, poisonEvery: 0 });

    await waitFor('1.0.0 to score 2,000 records', async () => (await scored('1.0.0')) >= 2_000, 60_000, 50);
    file.write({ stable: '1.1.0' }); // an edit in place: the watcher picks it up
    const swapped = await waitForModels(port, 'stable 1.1.0 applied', (v) => v.effective.stable === '1.1.0');
    expect(swapped.lastChange).toMatchObject({ result: 'applied' });
    expect(['watch', 'poll']).toContain(swapped.lastChange?.source);
    // 1.0.0 is unloaded once the last chunk scoring with it committed.
    await waitForModels(port, '1.0.0 unloaded', (v) => v.versions.map((x) => x.version).join() === '1.1.0');
    expect(await scrape(port, 'scorer_model_versions_loaded')).toBe(1);
    await waitFor('1.1.0 to score 2,000 records', async () => (await scored('1.1.0')) >= 2_000, 60_000, 50);

    // Rollback: the file points back (1.0.0 was unloaded: it is loaded and warmed up again).
    const before = await scored('1.0.0');
    const rollbackAt = file.write({ stable: '1.0.0' });
    await waitForModels(port, 'stable 1.0.0 again', (v) => v.effective.stable === '1.0.0', 30_000, 5);
    const appliedMs = Date.now() - rollbackAt;
    await waitFor('1.0.0 to score 2,000 records again', async () => (await scored('1.0.0')) >= before + 2_000, 60_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input);
    expect(await scrape(port, 'scorer_deployment_changes_total', { result: 'applied' })).toBe(2);
    await scorer.stop(20_000);

    const { outputs, dead } = await expectExactlyOnce(stream.sent, t.output, t.dlq);
    expect(dead).toHaveLength(0);
    // Per partition, by source offset: 1.0.0, then 1.1.0, then 1.0.0 again, no chunk mixing two.
    const runs = versionRuns(outputs);
    expect([...runs.keys()]).toEqual([0, 1, 2, 3, 4, 5]);
    for (const [partition, r] of runs) expect({ partition, versions: r.map((x) => x.version) }).toEqual({ partition, versions: ['1.0.0', '1.1.0', '1.0.0'] });
    await expectReferenceScores(repo, outputs, stream.sent, factory);

    const firstOld = outputs.map((m) => decodeScored(m.value)).reduce((min, s) => (s.model.version === '1.0.0' && s.scored_time >= rollbackAt ? Math.min(min, s.scored_time) : min), Infinity);
    console.log(`rollback 1.1.0 -> 1.0.0 under ${1_500} events/s: file written -> GET /models shows it applied: ${appliedMs} ms; -> first record scored by 1.0.0 again: ${firstOld - rollbackAt} ms (${stream.sent.length} events, 6 partitions)`);
  });

  it('refuses invalid JSON, an unknown version, a failing warm-up and a manifest that does not fit the schema, each with its reason, and goes on scoring', { timeout: 120_000 }, async () => {
    const { t, factory, env } = await setup('refuse');
    const repo = tempRepository(['1.0.0', '1.1.0', '1.3.0-nowarmup', '1.4.0-misfit']);
    const file = deploymentFile({ stable: '1.0.0' });
    const log = memoryLogger();
    const scorer = await startTestScorer({ ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path }, { logger: log.logger });
    const port = scorer.httpPort;
    const { generation } = await waitForModels(port, 'serving', () => true);
    const refused = [
      { what: 'invalid JSON', deployment: '{ "stable": "1.1.0", ', reason: /JSON/ },
      { what: 'an unknown version', deployment: { stable: '9.9.9' }, reason: /stable.*9\.9\.9/ },
      { what: 'a model that fails warm-up', deployment: { stable: '1.0.0', canary: { version: '1.3.0-nowarmup', percent: 10 } }, reason: /version 1\.3\.0-nowarmup fails its warm-up inference/ },
      { what: 'a manifest that does not fit the schema', deployment: { stable: '1.4.0-misfit' }, reason: /version 1\.4\.0-misfit does not fit its reader schema.*loyalty_points/ },
    ];
    const phases: { version: string; keys: string[] }[] = [];
    let n = 0;
    /** Records produced now must be scored by `version`. */
    const scoreSome = async (version: string) => {
      const batch = Array.from({ length: 300 }, () => factory.good(n++));
      await produce(t.input, batch);
      phases.push({ version, keys: batch.map((m) => m.key) });
      await waitForCommittedToEnd(t.group, t.input, 60_000);
    };
    await scoreSome('1.0.0');

    for (const [i, change] of refused.entries()) {
      file.write(change.deployment);
      const view = await waitForModels(port, `${change.what} refused`, (v) => v.refusals.length === i + 1);
      expect(view.lastChange?.result, change.what).toBe('refused');
      expect(view.lastChange?.reason, change.what).toMatch(change.reason);
      expect(view.refusals[i]?.reason).toBe(view.lastChange?.reason);
      // Refused whole: the same generation serves, nothing loaded for the change stays loaded.
      expect({ generation: view.generation, effective: view.effective, loaded: view.versions.map((v) => v.version) }).toEqual({ generation, effective: { stable: '1.0.0' }, loaded: ['1.0.0'] });
      const line = log.lines().filter((l) => l.msg === 'deployment change refused; the current deployment keeps scoring')[i];
      expect(line?.level, change.what).toBe('warn');
      expect(String(line?.reason)).toMatch(change.reason);
      expect(await scrape(port, 'scorer_deployment_changes_total', { result: 'refused' })).toBe(i + 1);
      await scoreSome('1.0.0');
    }
    // Nothing was left half-applied: a valid change still applies.
    file.write({ stable: '1.1.0' });
    await waitForModels(port, 'stable 1.1.0 applied', (v) => v.effective.stable === '1.1.0' && v.lastChange?.result === 'applied');
    await scoreSome('1.1.0');
    expect(await scrape(port, 'scorer_deployment_changes_total', { result: 'applied' })).toBe(1);
    await scorer.stop(20_000);

    const sent = phases.flatMap((p) => p.keys.map((key) => ({ key, value: Buffer.alloc(0) })));
    const { outputs, dead } = await expectExactlyOnce(sent, t.output, t.dlq);
    expect(dead).toHaveLength(0);
    const versionOf = new Map(outputs.map((m) => [m.key?.toString() as string, decodeScored(m.value).model.version]));
    for (const [i, phase] of phases.entries()) {
      const versions = [...new Set(phase.keys.map((k) => versionOf.get(k)))];
      expect({ phase: i, versions }).toEqual({ phase: i, versions: [phase.version] });
    }
  });

  it('stays exactly once when the scorer is SIGKILLed in the middle of a swap and restarted', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await setup('swapkill', { variants: true });
    const repo = tempRepository(['1.0.0', '1.1.0']);
    const file = deploymentFile({ stable: '1.0.0' });
    const procEnv = { ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path };
    const stream = startStream(factory, t.input, { rate: 1_000 });
    const first = await spawnScorer('swapkill-0', procEnv);
    await waitFor('the first instance to process 1,500 records', async () => (await processedSoFar(first)) >= 1_500, 90_000, 50);

    file.write({ stable: '1.1.0' });
    first.child.kill('SIGHUP'); // re-read now, rather than after the watcher's debounce
    // Killed as soon as the new generation serves: chunks of both generations are in flight.
    await waitForModels(first.port, 'stable 1.1.0 applied', (v) => v.effective.stable === '1.1.0', 30_000, 5);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe(null);

    const second = await spawnScorer('swapkill-1', procEnv);
    await waitForModels(second.port, 'the restarted instance on 1.1.0', (v) => v.effective.stable === '1.1.0', 5_000);
    await waitFor('the restarted instance to process 1,000 records', async () => (await processedSoFar(second)) >= 1_000, 90_000, 50);
    await stream.stop();
    await waitForCommittedToEnd(t.group, t.input, 120_000);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);

    const { outputs, dead } = await expectExactlyOnce(stream.sent, t.output, t.dlq);
    expect(dead.length).toBe(poisonCount(stream.sent));
    // Per partition: 1.0.0 up to the swap, 1.1.0 after it, whatever the kill interrupted.
    for (const [partition, r] of versionRuns(outputs)) expect({ partition, versions: r.map((x) => x.version) }).toEqual({ partition, versions: ['1.0.0', '1.1.0'] });
  });
});
