/** kafkajs-authz.ts: BrokerPool.withBroker rethrows an authorization refusal instead of kafkajs's silent null. */
import '../../../src/kafka/kafkajs-fix.js';
import { describe, expect, it } from 'vitest';
import { kafkajsModule } from '../../../src/kafka/kafkajs-patch.js';

type WithBroker = (this: unknown, cb: (a: { nodeId: string; broker: unknown }) => Promise<unknown>) => Promise<unknown>;
const { withBroker } = kafkajsModule<{ prototype: { withBroker: WithBroker } }>('cluster/brokerPool.js').prototype;

/** Just what withBroker reads of its pool: the broker ids and findBroker. */
const pool = { brokers: { 1: {}, 2: {} }, findBroker: async ({ nodeId }: { nodeId: string }) => ({ nodeId }) };
const failWith = (err: unknown) => async () => {
  throw err;
};

describe('BrokerPool.withBroker (kafkajs 2.2.4, patched)', () => {
  it('throws the refusal when every broker failed and one refused for authorization', async () => {
    const refusal = Object.assign(new Error('Transactional Id authorization failed'), { type: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', retriable: false });
    await expect(withBroker.call(pool, failWith(refusal))).rejects.toBe(refusal);
  });

  it('keeps kafkajs behaviour otherwise: the first answer, or null when every broker failed for another reason', async () => {
    expect(await withBroker.call(pool, async ({ nodeId }) => `answer from ${nodeId}`)).toMatch(/^answer from [12]$/);
    expect(await withBroker.call(pool, failWith(Object.assign(new Error('down'), { type: 'GROUP_COORDINATOR_NOT_AVAILABLE' })))).toBeNull();
  });
});
