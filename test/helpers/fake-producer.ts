/** A fake kafkajs transactional producer for unit tests of the produce stages: every call recorded, failures and holds injected. */

export interface FakeTx {
  calls: string[];
  sendBatch(args: { topicMessages: { topic: string; messages: unknown[] }[] }): Promise<void>;
  sendOffsets(args: { consumerGroupId: string; topics: { topic: string; partitions: { partition: number; offset: string }[] }[] }): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** A producer whose transactions record every call; `fail` makes one step throw. */
export class FakeProducer {
  readonly transactionalId: string;
  readonly txs: FakeTx[] = [];
  connected = false;
  disconnects = 0;
  fail: { step: 'sendBatch' | 'sendOffsets' | 'commit' | 'abort' | 'begin'; error: unknown }[] = [];
  /** When set, every commit waits for it (a transaction held open). */
  hold: Promise<void> | undefined;
  /** The `topics` argument of every sendOffsets, as passed (the same array objects). */
  readonly offsetTopics: unknown[] = [];
  constructor(transactionalId: string) {
    this.transactionalId = transactionalId;
  }
  async connect(): Promise<void> {
    this.connected = true;
  }
  async disconnect(): Promise<void> {
    this.disconnects++;
  }
  #maybeFail(step: FakeProducer['fail'][number]['step']): void {
    const i = this.fail.findIndex((f) => f.step === step);
    if (i >= 0) throw (this.fail.splice(i, 1)[0] as { error: unknown }).error;
  }
  async transaction(): Promise<FakeTx> {
    this.#maybeFail('begin');
    const calls: string[] = [];
    const tx: FakeTx = {
      calls,
      sendBatch: async ({ topicMessages }) => {
        calls.push(`sendBatch ${topicMessages.map((t) => `${t.topic}:${t.messages.length}`).join(',')}`);
        this.#maybeFail('sendBatch');
      },
      sendOffsets: async ({ consumerGroupId, topics }) => {
        this.offsetTopics.push(topics);
        calls.push(`sendOffsets ${consumerGroupId} ${topics.map((t) => t.partitions.map((p) => `${t.topic}/${p.partition}@${p.offset}`).join(',')).join(',')}`);
        this.#maybeFail('sendOffsets');
      },
      commit: async () => {
        calls.push('commit');
        await this.hold;
        this.#maybeFail('commit');
      },
      abort: async () => {
        calls.push('abort');
        this.#maybeFail('abort');
      },
    };
    this.txs.push(tx);
    return tx;
  }
}

export const kafkaError = (type: string): Error => Object.assign(new Error(type), { type });

