/**
 * Model rollout, version changes (issue 8), on the real broker and registry: a hot swap and its
 * rollback under load, landing at transaction boundaries, each input scored once by one version
 * exactly as onnxruntime scores with that version; changes that must be refused, refused whole
 * with their reason while scoring goes on; and SIGKILL in the middle of a swap.
 * Traffic splits (canary, guard, shadow): rollout-traffic.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { OutMessage } from '../../scripts/lib/feature-events.js';
import { type ReadMessage, createTopics, drainTopic, produce, randomName, waitFor, waitForCommittedToEnd } from '../helpers/kafka.js';
import { scrape } from '../helpers/net.js';
import { tempRepository } from '../helpers/repository.js';
import { deploymentFile, expectReferenceScores, memoryLogger, rolloutSetup, versionRuns, waitForModels } from '../helpers/rollout.js';
import { decodeScored } from '../helpers/scored.js';
import { processedSoFar, spawnScorer, startTestScorer } from '../helpers/scorer.js';
import { expectExactlyOnce, poisonCount, startStream } from '../helpers/stream.js';

/** Events sent at once when a change is written: the scorer is busy, with chunks in flight, when the change lands. */
const BURST = 10_000;
/** Events/s of the stream around the changes. */
const RATE = 1_500;

describe('model rollout: version changes', () => {
  it('swaps stable 1.0.0 -> 1.1.0 under load and back, each change at a transaction boundary, every input scored once as onnxruntime does with its version', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await rolloutSetup('swap');
    const repo = tempRepository(['1.0.0', '1.1.0']);
    const file = deploymentFile({ stable: '1.0.0' });
    const scorer = await startTestScorer({ ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path });
    const port = scorer.httpPort;
    const scored = (version: string) => scrape(port, 'scorer_version_records_scored_total', { version, role: 'stable' });
    const stream = startStream(factory, t.input, { rate: RATE, poisonEvery: 0 });

    await waitFor('1.0.0 to score 2,000 records', async () => (await scored('1.0.0')) >= 2_000, 60_000, 50);
    // A backlog while the change loads, so chunks are in flight when it lands.
    stream.burst(BURST);
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
    stream.burst(BURST);
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
    console.log(`rollback 1.1.0 -> 1.0.0 at ${RATE} events/s and a ${BURST}-event burst: file written -> GET /models shows it applied: ${appliedMs} ms; -> first record scored by 1.0.0 again: ${firstOld - rollbackAt} ms (${stream.sent.length} events, 6 partitions)`);
  });

  it('refuses invalid JSON, an unknown version, a failing warm-up and a manifest that does not fit the schema, each with its reason, and goes on scoring', { timeout: 120_000 }, async () => {
    const { t, factory, env } = await rolloutSetup('refuse');
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
    const phases: { version: string; sent: OutMessage[] }[] = [];
    let n = 0;
    /** Records produced now must be scored by `version`. */
    const scoreSome = async (version: string) => {
      const sent = Array.from({ length: 300 }, () => factory.good(n++));
      await produce(t.input, sent);
      phases.push({ version, sent });
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

    const { outputs, dead } = await expectExactlyOnce(phases.flatMap((p) => p.sent), t.output, t.dlq);
    expect(dead).toHaveLength(0);
    const versionOf = new Map(outputs.map((m) => [m.key?.toString() as string, decodeScored(m.value).model.version]));
    for (const [i, phase] of phases.entries()) {
      const versions = [...new Set(phase.sent.map((m) => versionOf.get(m.key)))];
      expect({ phase: i, versions }).toEqual({ phase: i, versions: [phase.version] });
    }
  });

  it('stays exactly once, shadow included, when the scorer is SIGKILLed in the middle of a swap and restarted (the first with PIPELINE_THREADS=2: SIGHUP forwarded to each pipeline)', { timeout: 180_000 }, async () => {
    const { t, factory, env } = await rolloutSetup('swapkill', { variants: true });
    const shadowTopic = randomName('swapkill-shadow');
    await createTopics([{ topic: shadowTopic, numPartitions: 6 }]);
    const repo = tempRepository(['1.0.0', '1.1.0']);
    // The candidate shadows stable; the swap makes it stable and the old stable its shadow.
    const file = deploymentFile({ stable: '1.0.0', shadow: { version: '1.1.0', topic: shadowTopic } });
    const procEnv = { ...env, MODEL_REPOSITORY: repo, MODEL_DEPLOYMENT: file.path };
    const stream = startStream(factory, t.input, { rate: 1_000 });
    // Two pipelines: SIGHUP reaches the main thread only and must be forwarded to each (src/threads/supervisor.ts).
    const first = await spawnScorer('swapkill-0', { ...procEnv, PIPELINE_THREADS: '2' });
    await waitFor('the first instance to process 1,500 records', async () => (await processedSoFar(first)) >= 1_500, 90_000, 50);

    stream.burst(5_000); // chunks in flight when the kill lands
    file.write({ stable: '1.1.0', shadow: { version: '1.0.0', topic: shadowTopic } });
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
    // Per partition: 1.0.0 up to the swap, 1.1.0 after it, whatever the kill interrupted; the shadow
    // the other way round. (A partition whose first chunk was still in flight at the kill has 1.1.0 only.)
    const changes = (outputs: readonly ReadMessage[], from: string, to: string) => {
      const runs = [...versionRuns(outputs)].map(([partition, r]) => ({ partition, versions: r.map((x) => x.version).join(' -> ') }));
      expect(runs.filter((r) => r.versions !== `${from} -> ${to}` && r.versions !== to)).toEqual([]);
      expect(runs.filter((r) => r.versions === `${from} -> ${to}`).length).toBeGreaterThan(0); // the kill was mid-stream
    };
    changes(outputs, '1.0.0', '1.1.0');
    const shadow = await drainTopic(shadowTopic);
    changes(shadow, '1.1.0', '1.0.0');
    // One shadow event per scored event, exactly once: the shadow shares the main output's transactions.
    const keys = (ms: readonly ReadMessage[]) => ms.map((m) => m.key?.toString() as string).sort();
    expect(keys(shadow)).toEqual(keys(outputs));
  });
});
