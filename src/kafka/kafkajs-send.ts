/**
 * kafkajs 2.2.4's producer/sendMessages.js, fixed: a retry never sends a partition's messages a
 * second time once they may have been written, and never skips one that was not.
 *
 * What kafkajs does: one send is one Produce request per partition leader, run in parallel
 * (Promise.all), retried whole by its retrier; `responsePerBroker` remembers, per Broker object,
 * whether that broker answered. Two bugs follow, both seen on the three-node cluster when a
 * broker was SIGKILLed under load (test/cluster/failover.test.ts):
 *  - Duplicates. The request to a dead broker fails at once and Promise.all rejects while the
 *    request to a live broker is still in flight (its entry still null). The retry (20 ms later
 *    in the scorer) creates a second request to that live broker; it waits for the broker lock,
 *    then takes the NEXT sequence numbers (the first request already advanced them) and writes
 *    the same records again: the broker cannot tell them from new ones. The log of one
 *    dead-letter partition showed the same 6 records 4 times in one committed transaction
 *    (producer 17007 epoch 0, sequences 8-13, 14-19, 20-25, 26-31). A Broker object replaced
 *    after a reconnection has no entry either, so its partitions were sent again even after an
 *    answer.
 *  - Loss. A partition whose leader moved, on retry, to a broker that had already answered is
 *    never sent (that broker has a response), and the send reports success.
 * It also explains kafkajs's OUT_OF_ORDER_SEQUENCE_NUMBER after a failover: overlapping
 * requests for one partition advance and roll back its sequence out of order.
 *
 * Here, progress is kept per topic-partition, not per broker: a partition is sent again only if
 * its previous request failed, to whichever broker leads it now, with the same sequence numbers
 * (so a broker that did write the batch recognises the retry as a duplicate: KIP-98). An attempt
 * waits for all of its requests to settle before it fails, so no request of a send is in flight
 * when the next attempt, or the caller's abort, starts. Everything else — metadata handling,
 * errors retried, broker locks, partitions added to the transaction — is kafkajs's code path.
 *
 * One addition: AddPartitionsToTxn refused with CONCURRENT_TRANSACTIONS is asked again within
 * milliseconds (`addPartitions` below), not after the producer's retry time.
 */
import { retry } from '../retry.js';
import { kafkaErrorType } from './access.js';
import { kafkajsModule, replaceKafkajsModule } from './kafkajs-patch.js';

/* The kafkajs internals this module calls, typed as far as it uses them. */
interface Broker {
  nodeId: number;
  produce(request: { transactionalId?: string; producerId: unknown; producerEpoch: number; acks: number; timeout: number; compression: unknown; topicData: TopicData[] }): Promise<unknown>;
}
interface PartitionData { partition: number; messages: unknown[]; firstSequence?: number }
interface TopicData { topic: string; partitions: PartitionData[] }
export interface PartitionResponse { topicName: string; partition: number; [field: string]: unknown }
export interface SendCluster {
  refreshMetadataIfNecessary(): Promise<void>;
  refreshMetadata(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  findTopicPartitionMetadata(topic: string): unknown[];
  findLeaderForPartitions(topic: string, partitions: (string | number)[]): Record<string, number[]>;
  findBroker(args: { nodeId: string | number }): Promise<Broker>;
  removeBroker(args: { host: string; port: number }): void;
  isConnected(): boolean;
  connect(): Promise<void>;
}
export interface SendEosManager {
  isTransactional(): boolean;
  getTransactionalId(): string;
  getProducerId(): unknown;
  getProducerEpoch(): number;
  getSequence(topic: string, partition: number): number;
  updateSequence(topic: string, partition: number, increment: number): void;
  addPartitionsToTransaction(topicData: TopicData[]): Promise<void>;
  acquireBrokerLock(broker: Broker): Promise<void>;
  releaseBrokerLock(broker: Broker): void;
}
type Retrier = <T>(fn: (bail: (err: Error) => void, retryCount: number, retryTime: number) => Promise<T>) => Promise<T>;
interface Logger {
  debug(message: string, extra?: object): void;
  error(message: string, extra?: object): void;
}
export interface SendMessagesOptions { logger: Logger; cluster: SendCluster; partitioner: unknown; eosManager: SendEosManager; retrier: Retrier }
export interface SendArgs { acks: number; timeout: number; compression: unknown; topicMessages: { topic: string; messages: unknown[] }[] }
type SendError = Error & { retriable?: boolean; type?: string; host?: string; port?: number };

const { KafkaJSMetadataNotLoaded } = kafkajsModule<{ KafkaJSMetadataNotLoaded: new (message: string) => Error }>('errors.js');
const { staleMetadata } = kafkajsModule<{ staleMetadata: (e: unknown) => boolean }>('protocol/error.js');
const responseSerializer = kafkajsModule<(response: unknown) => PartitionResponse[]>('producer/responseSerializer.js');
/** Looked up per send: src/kafka/kafkajs-fix.ts replaces kafkajs's grouping with an O(n) one. */
const groupMessagesPerPartition = () => kafkajsModule<(args: { topic: string; partitionMetadata: unknown[]; messages: unknown[]; partitioner: unknown }) => Record<string, unknown[]>>('producer/groupMessagesPerPartition.js');

const key = (topic: string, partition: number | string) => `${topic}|${partition}`;

/**
 * AddPartitionsToTxn, asked again soon while the broker answers CONCURRENT_TRANSACTIONS. That is
 * the first send of a transaction begun right after the previous one committed: EndTxn is answered
 * once the commit is logged, and the coordinator refuses changes until the markers are written
 * too, a few milliseconds on a healthy broker. kafkajs retried the whole send after the producer's
 * retry time (PRODUCER_RETRY, 20 ms and doubling) and a metadata refresh, so every back-to-back
 * transaction waited about 25 ms, more than the rest of it (one broker, `npm run
 * bench:transactions`: p50 28–32 ms back to back, 6.6 ms with 30 ms between transactions; now
 * 6–7 ms back to back). Asked again here after about 1, 2, 4, 8, then 16 ms (the one retry
 * helper's jittered backoff), for up to ~250 ms; after that the error goes to kafkajs's retry as
 * before.
 */
const addPartitions = (eosManager: SendEosManager, topicData: TopicData[]): Promise<void> =>
  retry(() => eosManager.addPartitionsToTransaction(topicData), {
    attempts: 20,
    initialDelayMs: 1,
    maxDelayMs: 16,
    shouldRetry: (err) => kafkaErrorType(err) === 'CONCURRENT_TRANSACTIONS',
  });

/** Same signature as kafkajs's module: `createSendMessages(options)(sendArgs)`. */
export function createSendMessages({ logger, cluster, partitioner, eosManager, retrier }: SendMessagesOptions) {
  return async ({ acks, timeout, compression, topicMessages }: SendArgs): Promise<PartitionResponse[]> => {
    /** Partitions of this send that a broker acknowledged (acks 0: that were sent), with the answer. */
    const done = new Map<string, PartitionResponse[]>();

    /** One request per current leader, for the partitions not done yet; resolves when all settled. */
    const attempt = async (): Promise<void> => {
      await cluster.refreshMetadataIfNecessary();
      const perLeader = new Map<string, TopicData[]>();
      for (const { topic, messages } of topicMessages) {
        const partitionMetadata = cluster.findTopicPartitionMetadata(topic);
        if (partitionMetadata.length === 0) {
          logger.debug('Producing to topic without metadata', { topic });
          throw new KafkaJSMetadataNotLoaded('Producing to topic without metadata');
        }
        const messagesPerPartition = groupMessagesPerPartition()({ topic, partitionMetadata, messages, partitioner });
        const pending = Object.keys(messagesPerPartition).filter((p) => !done.has(key(topic, p)));
        for (const [nodeId, partitions] of Object.entries(cluster.findLeaderForPartitions(topic, pending))) {
          const list = perLeader.get(nodeId) ?? [];
          list.push({ topic, partitions: partitions.map((partition) => ({ partition, messages: messagesPerPartition[partition] as unknown[] })) });
          perLeader.set(nodeId, list);
        }
      }
      const requests = [...perLeader].map(async ([nodeId, topicData]) => {
        const broker = await cluster.findBroker({ nodeId });
        await eosManager.acquireBrokerLock(broker);
        try {
          if (eosManager.isTransactional()) await addPartitions(eosManager, topicData);
          for (const { topic, partitions } of topicData) {
            for (const entry of partitions) {
              entry.firstSequence = eosManager.getSequence(topic, entry.partition);
              eosManager.updateSequence(topic, entry.partition, entry.messages.length);
            }
          }
          let response: unknown;
          try {
            response = await broker.produce({
              transactionalId: eosManager.isTransactional() ? eosManager.getTransactionalId() : undefined,
              producerId: eosManager.getProducerId(),
              producerEpoch: eosManager.getProducerEpoch(),
              acks,
              timeout,
              compression,
              topicData,
            });
          } catch (e) {
            // Not acknowledged: the retry sends these partitions with the same sequence numbers.
            for (const { topic, partitions } of topicData) for (const entry of partitions) eosManager.updateSequence(topic, entry.partition, -entry.messages.length);
            throw e;
          }
          const answers = acks !== 0 ? responseSerializer(response) : [];
          for (const { topic, partitions } of topicData) {
            for (const { partition } of partitions) done.set(key(topic, partition), answers.filter((a) => a.topicName === topic && a.partition === partition));
          }
        } finally {
          eosManager.releaseBrokerLock(broker);
        }
      });
      // allSettled, not all: a failed request must not start the retry while another is in flight.
      const failed = (await Promise.allSettled(requests)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    };

    return retrier(async (bail, retryCount, retryTime) => {
      await cluster.addMultipleTargetTopics(topicMessages.map(({ topic }) => topic));
      try {
        await attempt();
        return [...done.values()].flat();
      } catch (err) {
        // kafkajs's own handling of a failed attempt, unchanged.
        const e = err as SendError;
        if (e.name === 'KafkaJSConnectionClosedError') cluster.removeBroker({ host: e.host as string, port: e.port as number });
        if (!cluster.isConnected()) {
          logger.debug(`Cluster has disconnected, reconnecting: ${e.message}`, { retryCount, retryTime });
          await cluster.connect();
          await cluster.refreshMetadata();
          throw e;
        }
        if (staleMetadata(e) || e.name === 'KafkaJSMetadataNotLoaded' || e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSConnectionClosedError' || (e.name === 'KafkaJSProtocolError' && e.retriable === true)) {
          logger.error(`Failed to send messages: ${e.message}`, { retryCount, retryTime });
          await cluster.refreshMetadata();
          throw e;
        }
        logger.error(`${e.message}`, { retryCount, retryTime });
        if (e.retriable === true) throw e;
        bail(e);
        return [];
      }
    });
  };
}

replaceKafkajsModule('producer/sendMessages.js', ['producer/messageProducer.js'], createSendMessages);
