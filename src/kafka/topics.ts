/**
 * Topics are created explicitly when missing (partitions and replication from config); broker
 * auto-creation is never relied on. An existing topic is left as it is, but an input topic with
 * fewer partitions than instances is worth a warning, since extra instances would sit idle.
 */
import type { Admin } from 'kafkajs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ScorerError } from '../errors.js';
import { authorizationFailure, notAuthorized } from './access.js';

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
      // A topic the principal may not even Describe looks missing: that, not its absence, is what to fix.
      if (authorizationFailure(err) !== undefined) {
        const names = missing.map((t) => `'${t}'`).join(', ');
        throw notAuthorized(config, err, { action: `topic(s) ${names} are not visible to the scorer and creating them was refused`, needs: `on ${names} what it does there (Read on the input topic, Write on the output and dead-letter topics, each implies Describe), or Create on them if the scorer should create them` });
      }
      throw new ScorerError('KAFKA_UNAVAILABLE', `creating topics ${missing.join(', ')} failed`, { cause: err });
    }
  }
  logger.info({ topics: missing, partitions: config.topics.partitions, replicationFactor: config.topics.replicationFactor }, 'created missing topics');
}
