/**
 * Topics are created explicitly when missing (partitions and replication from config); broker
 * auto-creation is never relied on. An existing topic is left as it is, but an input topic with
 * fewer partitions than instances is worth a warning, since extra instances would sit idle.
 */
import type { Admin } from 'kafkajs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ScorerError } from '../errors.js';

/** Creates `wanted` (by default the input, output and dead-letter topics) where missing. */
export async function ensureTopics(admin: Admin, config: Config, logger: Logger, wanted: readonly string[] = [config.topics.input, config.topics.output, config.topics.dlq]): Promise<void> {
  let existing: string[];
  try {
    existing = await admin.listTopics();
  } catch (err) {
    throw new ScorerError('KAFKA_UNAVAILABLE', `listing topics on ${config.kafka.brokers.join(',')} failed`, { cause: err });
  }
  const missing = wanted.filter((t) => !existing.includes(t));
  if (missing.length === 0) return;
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({ topic, numPartitions: config.topics.partitions, replicationFactor: config.topics.replicationFactor })),
    });
  } catch (err) {
    // Another instance may have created them at the same moment: that is fine.
    const now = await admin.listTopics().catch(() => [] as string[]);
    if (!missing.every((t) => now.includes(t))) {
      throw new ScorerError('KAFKA_UNAVAILABLE', `creating topics ${missing.join(', ')} failed`, { cause: err });
    }
  }
  logger.info({ topics: missing, partitions: config.topics.partitions, replicationFactor: config.topics.replicationFactor }, 'created missing topics');
}
