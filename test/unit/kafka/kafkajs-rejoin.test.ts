/**
 * src/kafka/kafkajs-rejoin.ts: kafkajs 2.2.4's own consumer runner (consumer/runner.js, as
 * consumer/index.js captured it) awaits the drain an eachBatch carries before every join of the
 * group, the group's own rejoins included; an eachBatch without one joins at once, as before.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { drainBeforeRejoin } from '../../../src/kafka/kafkajs-rejoin.js';
import { kafkajsModule } from '../../../src/kafka/kafkajs-patch.js';

const require = createRequire(import.meta.url);
const { createLogger, LEVELS } = require('kafkajs/src/loggers/index.js') as { createLogger(o: { level: number; logCreator: () => () => void }): unknown; LEVELS: Record<string, number> };

type Runner = new (options: Record<string, unknown>) => { consumerGroup: { joinAndSync(): Promise<void> } };
const Runner = kafkajsModule<Runner>('consumer/runner.js');

function runner(eachBatch: unknown) {
  const order: string[] = [];
  const consumerGroup = {
    async joinAndSync() {
      order.push('join');
    },
  };
  const r = new Runner({ logger: createLogger({ level: LEVELS.NOTHING as number, logCreator: () => () => undefined }), consumerGroup, instrumentationEmitter: { emit: () => undefined }, eachBatch, concurrency: 1, onCrash: () => undefined });
  return { r, order };
}

describe('kafkajs-rejoin: drain before the consumer (re)joins its group', () => {
  it('the runner kafkajs builds its consumers with is the patched one', () => {
    // consumer/index.js loads after the patch (replaceKafkajsModule throws otherwise) and captures this class.
    require('kafkajs/src/consumer/index.js');
    expect(Runner.name).toBe('RunnerDrainingBeforeRejoin');
  });

  it('every join waits until the drain resolves', async () => {
    let drained: () => void = () => undefined;
    const { r, order } = runner(
      drainBeforeRejoin(async () => undefined, () => {
        order.push('drain');
        return new Promise<void>((resolve) => (drained = resolve));
      }),
    );
    const joining = r.consumerGroup.joinAndSync();
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['drain']);
    drained();
    await joining;
    expect(order).toEqual(['drain', 'join']);
    drained = () => undefined;
    const again = r.consumerGroup.joinAndSync(); // a rejoin (rebalance) drains again
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['drain', 'join', 'drain']);
    drained();
    await again;
  });

  it('passes each batch on to the eachBatch it wraps', async () => {
    const seen: unknown[] = [];
    const eachBatch = drainBeforeRejoin(async (p) => void seen.push(p), async () => undefined);
    await eachBatch({ batch: 'b' } as never);
    expect(seen).toEqual([{ batch: 'b' }]);
  });

  it('an eachBatch without a drain joins at once', async () => {
    const { r, order } = runner(async () => undefined);
    await r.consumerGroup.joinAndSync();
    expect(order).toEqual(['join']);
  });
});
