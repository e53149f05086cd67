/**
 * A backfill's plan: per input partition, the offset range [from, to) to re-score. Resolved once,
 * at the first run, from `--from` / `--to` (ISO times looked up with ListOffsets by timestamp,
 * `now` = the last stable offset, or explicit partition:offset lists), and then kept in Kafka
 * itself: every transaction of the backfill commits its input offset with the partition's range
 * as the offset's metadata. A re-run (after SIGKILL, or of a finished backfill) reads the plan
 * back from its group instead of resolving `now` again, so it resumes the same range and never
 * scores a record twice.
 */
import { createHash } from 'node:crypto';
import type { Admin } from 'kafkajs';
import { ScorerError } from '../../errors.js';
import { UsageError } from '../command.js';

export type Bound = { kind: 'time'; ms: number } | { kind: 'now' } | { kind: 'earliest' } | { kind: 'offsets'; offsets: Map<number, bigint> };

export interface PartitionRange {
  partition: number;
  from: bigint;
  /** Exclusive. */
  to: bigint;
}

const METADATA_VERSION = 1;

/** `--from` / `--to`: an ISO time, `now` (to only), `earliest` (from only), or `partition:offset,…`. */
export function parseBound(text: string, flag: '--from' | '--to'): Bound {
  if (flag === '--to' && text === 'now') return { kind: 'now' };
  if (flag === '--from' && text === 'earliest') return { kind: 'earliest' };
  if (/^\d+:\d+(,\d+:\d+)*$/.test(text)) {
    const offsets = new Map<number, bigint>();
    for (const pair of text.split(',')) {
      const [p, o] = pair.split(':') as [string, string];
      if (offsets.has(Number(p))) throw new UsageError(`${flag}: partition ${p} given twice in ${text}`);
      offsets.set(Number(p), BigInt(o));
    }
    return { kind: 'offsets', offsets };
  }
  // An ISO 8601 date-time with a zone, e.g. 2026-12-01T00:00:00Z: never a local time, which would differ between machines.
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) {
    const also = flag === '--to' ? ', now' : ', earliest';
    throw new UsageError(`${flag}: expected an ISO time with a zone (2026-12-01T00:00:00Z)${also} or partition:offset,… got '${text}'`);
  }
  return { kind: 'time', ms };
}

/**
 * A range that is empty by construction is a mistake, not a backfill of nothing: --to before
 * --from (both times, or both offsets of the same partition) is refused before connecting.
 */
export function checkRange(from: Bound, to: Bound): void {
  if (from.kind === 'time' && to.kind === 'time' && to.ms <= from.ms) {
    throw new UsageError(`--to: expected a time after --from (${new Date(from.ms).toISOString()}), got ${new Date(to.ms).toISOString()}`);
  }
  if (from.kind === 'offsets' && to.kind === 'offsets') {
    for (const [p, f] of from.offsets) {
      const t = to.offsets.get(p);
      if (t !== undefined && t <= f) throw new UsageError(`--to: partition ${p}: expected an offset after --from's ${f}, got ${t}`);
    }
  }
}

/** The default group of a backfill: derived from what it does, so the same command resumes itself. */
export function defaultGroupId(base: string, parts: { input: string; output: string; from: string; to: string; model: string }): string {
  const hash = createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 12);
  return `${base}-backfill-${hash}`;
}

export function encodePlan(r: PartitionRange): string {
  return JSON.stringify({ backfill: METADATA_VERSION, from: r.from.toString(), to: r.to.toString() });
}

function decodePlan(partition: number, metadata: string | null | undefined): PartitionRange | undefined {
  if (metadata === null || metadata === undefined || metadata === '') return undefined;
  try {
    const m = JSON.parse(metadata) as { backfill?: unknown; from?: unknown; to?: unknown };
    if (m.backfill !== METADATA_VERSION || typeof m.from !== 'string' || typeof m.to !== 'string') return undefined;
    return { partition, from: BigInt(m.from), to: BigInt(m.to) };
  } catch {
    return undefined;
  }
}

async function resolveBound(admin: Pick<Admin, 'fetchTopicOffsets' | 'fetchTopicOffsetsByTimestamp'>, topic: string, bound: Bound, partitions: number[], flag: '--from' | '--to'): Promise<Map<number, bigint | undefined>> {
  const out = new Map<number, bigint | undefined>();
  if (bound.kind === 'offsets') {
    for (const p of bound.offsets.keys()) if (!partitions.includes(p)) throw new UsageError(`${flag}: partition ${p}: expected a partition of ${topic} (${partitions.join(', ')}), got ${p}`);
    for (const p of partitions) out.set(p, bound.offsets.get(p));
    return out;
  }
  if (bound.kind === 'time') {
    for (const { partition, offset } of await admin.fetchTopicOffsetsByTimestamp(topic, bound.ms)) out.set(partition, BigInt(offset));
    return out;
  }
  // fetchTopicOffsets reads with read_committed isolation: `high` is the last stable offset.
  for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) out.set(partition, BigInt(bound.kind === 'now' ? high : low));
  return out;
}

/** Resolves the bounds to one range per partition; a partition an offset list leaves out gets an empty range. */
export async function resolvePlan(admin: Pick<Admin, 'fetchTopicOffsets' | 'fetchTopicOffsetsByTimestamp'>, topic: string, from: Bound, to: Bound): Promise<PartitionRange[]> {
  const partitions = (await admin.fetchTopicOffsets(topic)).map((p) => p.partition).sort((a, b) => a - b);
  const [starts, ends] = await Promise.all([resolveBound(admin, topic, from, partitions, '--from'), resolveBound(admin, topic, to, partitions, '--to')]);
  return partitions.map((partition) => {
    const f = starts.get(partition);
    const t = ends.get(partition);
    if (f === undefined || t === undefined) return { partition, from: f ?? t ?? 0n, to: f ?? t ?? 0n };
    return { partition, from: f, to: t < f ? f : t };
  });
}

/**
 * The plan a group already holds, per partition (undefined where it holds none). A committed
 * offset without our metadata means the group is not a backfill's: refused rather than reused.
 */
export async function storedPlan(admin: Pick<Admin, 'fetchOffsets'>, groupId: string, topic: string): Promise<Map<number, PartitionRange & { next: bigint }>> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const plan = new Map<number, PartitionRange & { next: bigint }>();
  for (const { partition, offset, metadata } of offsets?.partitions ?? []) {
    if (offset === '-1') continue;
    const range = decodePlan(partition, metadata);
    if (range === undefined) throw new ScorerError('CONFIG_INVALID', `--group ${groupId}: it has committed offsets on ${topic} that no backfill wrote (partition ${partition}); choose another --group`);
    plan.set(partition, { ...range, next: BigInt(offset) });
  }
  return plan;
}
