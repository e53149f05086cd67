/**
 * The Kafka broker lines the integration suite runs against: one vitest project per line
 * (vitest.config.ts), the same test files, each line with its own broker and registry
 * (test/integration/global-setup.ts). scripts/check-tests.ts rejects a run in which any line
 * executed no test. The cluster line runs its own files (test/cluster/) on three nodes, the
 * security line its own (test/security/) against a SASL_SSL stack with ACLs and registry auth. Why two broker lines: users run both 3.9 and 4.x clusters, and Kafka 4.0 changed
 * what the broker accepts (KIP-896) and how it formats transactions and groups (KIP-890, KIP-848).
 */
import type { StackSecurity } from '../../scripts/stack/security.js';

export interface BrokerLine {
  /** The vitest project name. */
  project: string;
  /** Its Apache Kafka release; undefined: STACK_KAFKA_VERSION, else the stack's default (4.x). */
  kafkaVersion?: string;
  /**
   * Added to STACK_KAFKA_PORT / STACK_CONTROLLER_PORT / STACK_REGISTRY_PORT, so this line's stack
   * runs beside the default one; it lives in `<STACK_DIR>/<subdir>`.
   */
  moved?: { portOffset: number; subdir: string };
  /** Kafka nodes of this line's stack (default: STACK_BROKERS, else 1). */
  brokers?: number;
  /** STACK_SECURITY of this line's stack (default: none). */
  security?: StackSecurity;
  /** Scorer settings for every scorer this line's tests start (test/helpers/scorer.ts `scorerEnv`). */
  scorerEnv?: Record<string, string>;
  /** Test files of this line (default: the whole suite, test/integration/). */
  include?: string[];
}

/** Files of the three-node cluster line; the other lines run test/integration/ only. */
export const CLUSTER_TESTS = 'test/cluster/**/*.test.ts';
/** Files of the SASL_SSL line. */
export const SECURITY_TESTS = 'test/security/**/*.test.ts';

export const BROKER_LINES: readonly BrokerLine[] = [
  { project: 'integration' },
  { project: 'integration-kafka39', kafkaVersion: '3.9.2', moved: { portOffset: 100, subdir: 'kafka39' } },
  // The other exactly-once mode (EOS_MODE=v1: a transactional producer per input partition, fenced
  // by its id; the default is v2) through the whole suite, on its own broker of the default release (ports + 300).
  { project: 'integration-eos-v1', scorerEnv: { EOS_MODE: 'v1' }, moved: { portOffset: 300, subdir: 'eos-v1' } },
  // Failover needs a cluster: its own three nodes (ports + 1000, +100 per node), its own files
  // only, since every file there kills or restarts brokers and takes minutes.
  { project: 'integration-cluster', brokers: 3, include: [CLUSTER_TESTS], moved: { portOffset: 1000, subdir: 'cluster' } },
  // TLS, SCRAM, ACLs and registry auth (STACK_SECURITY=sasl_ssl): one broker of the default
  // release (4.4.0) on ports + 2000, its own files only (the others speak plaintext without auth).
  { project: 'integration-security', security: 'sasl_ssl', include: [SECURITY_TESTS], moved: { portOffset: 2000, subdir: 'sasl_ssl' } },
];
