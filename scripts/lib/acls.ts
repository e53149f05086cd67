/**
 * The scorer's minimal ACLs (README "Security"), as data, and granting or revoking them with a
 * super user's admin client: the secure integration tests grant exactly these to the `scorer`
 * user and take one away to see the failure named. IdempotentWrite on the cluster is not among
 * them: Kafka 3.0+ lets a principal with Write on a topic (or a transactional id) produce
 * idempotently (KIP-679); a broker before 3.0 needs it too (`kafka-acls --idempotent`).
 */
import '../../src/kafka/kafkajs-fix.js'; // before kafkajs: see the module
import kafkajs, { type Admin, type AclEntry } from 'kafkajs';

// CommonJS enums: not ESM named exports of the package (only its default export carries them).
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
type Operation = (typeof AclOperationTypes)[keyof typeof AclOperationTypes];

export interface ScorerResources {
  input: string;
  output: string;
  dlq: string;
  groupId: string;
  /** TRANSACTIONAL_ID_PREFIX: the scorer's ids are `<prefix>-<group>-<topic>-<partition>`. */
  transactionalIdPrefix: string;
}

/** One ACL, in kafka-acls terms, with a name tests can refer to. */
export interface ScorerAcl {
  name: 'read-input' | 'write-output' | 'write-dlq' | 'read-group' | 'write-transactional-id';
  entry: Omit<AclEntry, 'principal'>;
}

const allow = { host: '*', permissionType: AclPermissionTypes.ALLOW };

/** Read on the input topic and the group, Write on the output and dead-letter topics and on the transactional-id prefix. */
export function scorerAcls(r: ScorerResources): ScorerAcl[] {
  const topic = (resourceName: string, operation: Operation) => ({ ...allow, resourceType: AclResourceTypes.TOPIC, resourceName, resourcePatternType: ResourcePatternTypes.LITERAL, operation });
  return [
    { name: 'read-input', entry: topic(r.input, AclOperationTypes.READ) },
    { name: 'write-output', entry: topic(r.output, AclOperationTypes.WRITE) },
    { name: 'write-dlq', entry: topic(r.dlq, AclOperationTypes.WRITE) },
    { name: 'read-group', entry: { ...allow, resourceType: AclResourceTypes.GROUP, resourceName: r.groupId, resourcePatternType: ResourcePatternTypes.LITERAL, operation: AclOperationTypes.READ } },
    { name: 'write-transactional-id', entry: { ...allow, resourceType: AclResourceTypes.TRANSACTIONAL_ID, resourceName: `${r.transactionalIdPrefix}-`, resourcePatternType: ResourcePatternTypes.PREFIXED, operation: AclOperationTypes.WRITE } },
  ];
}

export async function grantAcls(admin: Admin, principal: string, acls: ScorerAcl[]): Promise<void> {
  await admin.createAcls({ acl: acls.map((a) => ({ ...a.entry, principal })) });
}
