/**
 * The demo's load: the load generator (scripts/produce.ts) writing reference churn events, with
 * the chosen share of bad records, to the run's input topic while the scorer consumes them.
 */
import { EXPECTED_CODE, type PoisonKind } from '../lib/feature-events.js';
import { type ProduceSummary, produceEvents } from '../produce.js';
import type { StackInfo } from '../stack/stack.js';
import type { Interrupts } from './interrupts.js';
import type { Options } from './options.js';
import { PARTITIONS, type RunNames } from './runs.js';

class ProduceAborted extends Error {}

/** Producing in the background; its fields say how far it got. */
export class Production {
  sent = 0;
  /** When the first event was sent, when producing ended (either way). */
  firstAt: number | undefined;
  endedAt: number | undefined;
  done = false;
  summary: ProduceSummary | undefined;
  /** Why producing failed (a Ctrl-C is not a failure). */
  error: unknown;
  /** Settles once producing has ended, never rejects. */
  readonly finished: Promise<void>;

  constructor(stack: StackInfo, names: RunNames, opts: Options, interrupts: Interrupts) {
    this.finished = produceEvents({
      brokers: stack.kafkaBrokers,
      registryUrl: stack.schemaRegistryUrl,
      security: stack.securityEnv,
      topic: names.input,
      count: opts.count,
      rate: opts.rate,
      poison: opts.poison,
      model: 'churn',
      partitions: PARTITIONS,
      onProgress: (sent) => {
        this.sent = sent;
        this.firstAt ??= Date.now();
        // produceEvents has no cancel: throwing from its progress callback ends it (it disconnects in finally).
        if (interrupts.aborted) throw new ProduceAborted();
      },
    })
      .then(
        (summary) => void (this.summary = summary),
        (err: unknown) => void (err instanceof ProduceAborted || (this.error = err)),
      )
      .finally(() => {
        this.done = true;
        this.endedAt = Date.now();
      });
  }
}

/** The dead letters each code should get, from what the load generator says it produced. */
export function expectedCodes(byKind: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(byKind)) {
    const code = EXPECTED_CODE[kind as PoisonKind] ?? kind;
    out[code] = (out[code] ?? 0) + n;
  }
  return out;
}
