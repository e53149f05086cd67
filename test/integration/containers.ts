/**
 * The Docker path of the integration stack: Apache Kafka (KRaft) and Confluent Schema Registry
 * from their official images, via testcontainers. Throws when no container runtime answers.
 * Apache Kafka publishes an `apache/kafka:<release>` image for every release (KIP-975), so a
 * broker line's release picks its image; the environment variables below mean the same on 3.9 and 4.x.
 */
import { GenericContainer, Network, Wait, getContainerRuntimeClient } from 'testcontainers';
import { freePort } from '../helpers/net.js';

export const kafkaImage = (kafkaVersion: string) => `apache/kafka:${kafkaVersion}`;
export const REGISTRY_IMAGE = 'confluentinc/cp-schema-registry:7.7.1';

export interface Containers {
  kafkaBrokers: string;
  schemaRegistryUrl: string;
  kafkaImage: string;
  stop: () => Promise<void>;
}

export async function startContainers(kafkaVersion: string): Promise<Containers> {
  await getContainerRuntimeClient(); // throws "Could not find a working container runtime strategy" without Docker
  const network = await new Network().start();
  // The broker advertises the host port to us and an internal listener to the registry, so the
  // host port must be known before the container starts.
  const hostPort = await freePort();
  const kafka = await new GenericContainer(kafkaImage(kafkaVersion))
    .withNetwork(network)
    .withNetworkAliases('kafka')
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://0.0.0.0:9092,INTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093',
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${hostPort},INTERNAL://kafka:19092`,
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_INTER_BROKER_LISTENER_NAME: 'INTERNAL',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  const registry = await new GenericContainer(REGISTRY_IMAGE)
    .withNetwork(network)
    .withExposedPorts(8081)
    .withEnvironment({
      SCHEMA_REGISTRY_HOST_NAME: 'schema-registry',
      SCHEMA_REGISTRY_LISTENERS: 'http://0.0.0.0:8081',
      SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS: 'PLAINTEXT://kafka:19092',
    })
    .withWaitStrategy(Wait.forHttp('/subjects', 8081))
    .start();
  return {
    kafkaBrokers: `127.0.0.1:${hostPort}`,
    schemaRegistryUrl: `http://${registry.getHost()}:${registry.getMappedPort(8081)}`,
    kafkaImage: kafkaImage(kafkaVersion),
    stop: async () => {
      await registry.stop();
      await kafka.stop();
      await network.stop();
    },
  };
}
