/**
 * kafkajs 2.2.4's transactional producer asks the cluster for its coordinator before every step
 * of every transaction: a FindCoordinator request before AddPartitionsToTxn, before
 * AddOffsetsToTxn, for the consumer group before TxnOffsetCommit, and before EndTxn
 * (producer/eosManager/index.js, `findTransactionCoordinator` and `cluster.findGroupCoordinator`,
 * neither cached). That is 4 of the 9 round trips of each of the scorer's transactions, and it is
 * paid once per partition per fetch: at 60,000 events/s, ~250 transactions and ~1,000
 * FindCoordinator requests a second on the broker.
 *
 * Here each producer's transaction manager remembers the coordinators it found, as the Java
 * producer does (TransactionManager keeps its transaction and group coordinator nodes), and looks
 * one up again when its connection is gone or any request to it failed (NOT_COORDINATOR,
 * COORDINATOR_NOT_AVAILABLE, a broker lost, anything else: a failure costs one lookup more, never
 * a stale coordinator). The one exception is CONCURRENT_TRANSACTIONS: only the right coordinator
 * says it (it is still writing the previous transaction's markers), and the send asks again
 * within milliseconds (kafkajs-send.ts), so a lookup there would add a round trip to every ask.
 * The cache lives in the transaction manager, so it goes away with its producer, which the scorer
 * drops after any failed transaction (src/stages/produce.ts). The consumer's coordinator handling
 * is kafkajs's own: only the producers' eosManager is wrapped.
 */
import { kafkaErrorType } from './access.js';
import { kafkajsModule, replaceKafkajsModule } from './kafkajs-patch.js';

/* The kafkajs internals this module touches, typed as far as it uses them. */
export interface CoordinatorBroker {
  isConnected(): boolean;
}
export interface CoordinatorLookup {
  groupId: string;
  coordinatorType?: number;
}
export interface CoordinatorCluster {
  findGroupCoordinator(lookup: CoordinatorLookup): Promise<CoordinatorBroker>;
}
type EosManagerFactory = (options: { cluster: CoordinatorCluster; [option: string]: unknown }) => unknown;

/**
 * A view of `cluster` whose findGroupCoordinator answers from a cache while the coordinator's
 * connection is up and no request through the returned broker has failed since.
 */
export function cachingCoordinators<C extends CoordinatorCluster>(cluster: C): C {
  const found = new Map<string, { broker: CoordinatorBroker; view: CoordinatorBroker }>();
  const findGroupCoordinator = async (lookup: CoordinatorLookup): Promise<CoordinatorBroker> => {
    const key = `${lookup.coordinatorType ?? 0}:${lookup.groupId}`;
    const hit = found.get(key);
    if (hit !== undefined && hit.broker.isConnected()) return hit.view;
    found.delete(key);
    const broker = await cluster.findGroupCoordinator(lookup);
    const view = forgetOnFailure(broker, () => {
      if (found.get(key)?.broker === broker) found.delete(key);
    });
    found.set(key, { broker, view });
    return view;
  };
  return new Proxy(cluster, {
    get(target, property) {
      if (property === 'findGroupCoordinator') return findGroupCoordinator;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Refusals that only the right coordinator gives: the cache keeps it. */
const COORDINATOR_ANSWERS = new Set(['CONCURRENT_TRANSACTIONS']);

/** The broker, with every method that returns a promise calling `forget` when that promise rejects (but for COORDINATOR_ANSWERS). */
function forgetOnFailure(broker: CoordinatorBroker, forget: () => void): CoordinatorBroker {
  return new Proxy(broker, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) {
          return result.catch((err: unknown) => {
            if (!COORDINATOR_ANSWERS.has(kafkaErrorType(err) ?? '')) forget();
            throw err;
          });
        }
        return result;
      };
    },
  });
}

const createEosManager = kafkajsModule<EosManagerFactory>('producer/eosManager/index.js');

/** kafkajs's eosManager over a caching view of its producer's cluster. */
export const createCachingEosManager: EosManagerFactory = (options) => createEosManager({ ...options, cluster: cachingCoordinators(options.cluster) });

replaceKafkajsModule('producer/eosManager/index.js', ['producer/index.js'], createCachingEosManager);
