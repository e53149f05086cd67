/**
 * Drain before rejoin: kafkajs 2.2.4 rejoins its group (a rebalance, or a restart after a crash)
 * as soon as its fetch loop stopped, which used to mean every eachBatch had returned, and with it
 * every transaction the batches started. The consume stage (src/stages/consume.ts) now hands a
 * chunk over and returns while the chunk is scored and committed, so that kafkajs can fetch
 * again; this patch keeps the old guarantee at the rejoin: the consumer's runner awaits the
 * drain its eachBatch carries (`drainBeforeRejoin`) before each join, so the chunks in flight
 * commit under the generation they were fetched in (KIP-447 refuses them once the group moved
 * on: they would be aborted and read again) and a revoked partition's last chunk is committed
 * before its next owner reads the offset. Pinned and tested like the other patches.
 */
import type { EachBatchHandler } from 'kafkajs';
import { kafkajsModule, replaceKafkajsModule } from './kafkajs-patch.js';

const DRAIN = Symbol('kafka-onnx-scorer.drainBeforeRejoin');

type Drained = EachBatchHandler & { [DRAIN]?: () => Promise<void> };

/** `eachBatch` carrying `drain`: the consumer's runner awaits it before every (re)join of the group. */
export function drainBeforeRejoin(eachBatch: EachBatchHandler, drain: () => Promise<void>): EachBatchHandler {
  return Object.assign((payload: Parameters<EachBatchHandler>[0]) => eachBatch(payload), { [DRAIN]: drain });
}

interface JoiningGroup {
  joinAndSync(): Promise<void>;
}
type RunnerClass = new (options: { consumerGroup: JoiningGroup; eachBatch?: Drained; [option: string]: unknown }) => { consumerGroup: JoiningGroup };

const Runner = kafkajsModule<RunnerClass>('consumer/runner.js');

class RunnerDrainingBeforeRejoin extends Runner {
  constructor(options: ConstructorParameters<RunnerClass>[0]) {
    super(options);
    const drain = options.eachBatch?.[DRAIN];
    if (drain === undefined) return;
    // An instance property: the group's own rejoins (this.joinAndSync() inside consumerGroup.js) go through it too.
    const group = this.consumerGroup;
    const joinAndSync = group.joinAndSync.bind(group);
    group.joinAndSync = async () => {
      await drain();
      return joinAndSync();
    };
  }
}
replaceKafkajsModule('consumer/runner.js', ['consumer/index.js'], RunnerDrainingBeforeRejoin);
