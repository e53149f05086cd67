/**
 * kafkajs 2.2.4 finds a group's or a transactional id's coordinator (and fetches metadata) by
 * asking the brokers in turn (`BrokerPool.withBroker`) and swallows every broker's error: a
 * FindCoordinator refused for want of an ACL (GROUP_AUTHORIZATION_FAILED,
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED) ends as "Failed to find group coordinator"
 * (KafkaJSGroupCoordinatorNotFound), which names neither the refusal nor the resource, and the
 * scorer would take it for a broker that is briefly unavailable and retry forever. This keeps
 * kafkajs's walk over the brokers, but when none answered and one refused for authorization, it
 * throws that refusal (non-retriable, with its type), so src/kafka/access.ts can name the ACL.
 * Any other failure still ends as before (null: kafkajs's own "not found" errors).
 */
import { kafkajsModule } from './kafkajs-patch.js';

type Callback = (args: { nodeId: string; broker: unknown }) => Promise<unknown>;
interface BrokerPoolClass {
  prototype: { withBroker(this: unknown, callback: Callback): Promise<unknown> };
}

const AUTHORIZATION = /_AUTHORIZATION_FAILED$/;

const BrokerPool = kafkajsModule<BrokerPoolClass>('cluster/brokerPool.js');
const original = BrokerPool.prototype.withBroker;

BrokerPool.prototype.withBroker = async function withBroker(this: unknown, callback: Callback): Promise<unknown> {
  let refused: unknown;
  const result = await original.call(this, async (args) => {
    try {
      return await callback(args);
    } catch (err) {
      if (AUTHORIZATION.test(String((err as { type?: unknown }).type))) refused = err;
      throw err;
    }
  });
  if (result === null && refused !== undefined) throw refused;
  return result;
};
