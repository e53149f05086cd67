/**
 * Routing one chunk across the versions of its model generation (src/model/generation.ts): which
 * records stable scores, which the canary (by key hash), and which the shadow scores as well.
 * With stable alone (no canary, no shadow: the common case) the chunk goes whole to stable and
 * nothing is allocated per record.
 */
import type { KafkaMessage } from 'kafkajs';
import type { ActiveModels, Served } from '../model/generation.js';

export type MainRole = 'stable' | 'canary';

export interface RouteGroup {
  served: Served;
  role: MainRole;
  /** The chunk's record indices this version scores, in order; undefined: all of them. */
  indices: number[] | undefined;
}

export interface ChunkRoute {
  /** One group per version that scores records of this chunk (stable first). */
  groups: RouteGroup[];
  /** Per record: its group and its position in that group's indices; undefined with one group of all records. */
  groupOf: Uint8Array | undefined;
  posOf: Int32Array | undefined;
  /** Record indices the shadow scores too; undefined without a shadow. */
  shadowed: number[] | undefined;
}

export function routeChunk(models: Pick<ActiveModels, 'stable' | 'canary' | 'shadow' | 'pick' | 'shadowed'>, messages: readonly KafkaMessage[], partition: number): ChunkRoute {
  const { stable, canary } = models;
  let shadowed: number[] | undefined;
  if (models.shadow !== undefined) {
    shadowed = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as KafkaMessage;
      if (models.shadowed(m.key, partition, m.offset)) shadowed.push(i);
    }
  }
  if (canary === undefined) return { groups: [{ served: stable, role: 'stable', indices: undefined }], groupOf: undefined, posOf: undefined, shadowed };

  const n = messages.length;
  const groupOf = new Uint8Array(n);
  const posOf = new Int32Array(n);
  const stableIdx: number[] = [];
  const canaryIdx: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = messages[i] as KafkaMessage;
    const toCanary = models.pick(m.key, partition, m.offset) !== stable;
    const into = toCanary ? canaryIdx : stableIdx;
    groupOf[i] = toCanary ? 1 : 0;
    posOf[i] = into.length;
    into.push(i);
  }
  const groups: RouteGroup[] = [
    { served: stable, role: 'stable', indices: stableIdx },
    { served: canary, role: 'canary', indices: canaryIdx },
  ];
  return { groups, groupOf, posOf, shadowed };
}
