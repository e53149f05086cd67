/**
 * What the demo shows while it runs, read from the in-process scorer's metrics registry (counts,
 * batch sizes) and from the broker (the group's lag), with the rate and the peaks over time.
 */
import type { Admin } from 'kafkajs';
import type { RunningScorer } from '../../src/app.js';
import type { RunNames } from './runs.js';
import type { HistogramView } from './summary-view.js';

/** How often the demo asks the broker for the group's lag while it runs. */
export const LAG_POLL_MS = 500;

interface MetricLike {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>>; metricName?: string }[] }>;
}

export async function total(m: MetricLike): Promise<number> {
  return (await m.get()).values.reduce((a, v) => a + v.value, 0);
}

export async function totalBy(m: MetricLike, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await m.get()).values) {
    const key = String(v.labels[label] ?? '');
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

/** Count, sum and bucket upper bounds for p50/p99/max, summed over all label sets. */
export async function histogram(m: MetricLike): Promise<HistogramView> {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const v of (await m.get()).values) {
    if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    } else if (v.metricName?.endsWith('_count')) count += v.value;
    else if (v.metricName?.endsWith('_sum')) sum += v.value;
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const quantile = (q: number) => (count === 0 ? undefined : sorted.find(([, cumulative]) => cumulative >= q * count)?.[0]);
  return { count, sum, p50: quantile(0.5), p99: quantile(0.99), max: quantile(1) };
}

export interface Lag {
  lag: number;
  /** Records in the input topic (sum of end offsets; the demo's input topic is not transactional). */
  inTopic: number;
  ends: Map<number, number>;
}

/** End offsets of the input topic minus the group's committed offsets (the broker's view). */
async function consumerLag(admin: Admin, groupId: string, topic: string): Promise<Lag> {
  const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
  let lag = 0;
  let inTopic = 0;
  const endMap = new Map<number, number>();
  for (const e of ends) {
    const high = Number(e.high);
    const low = Number(e.low);
    endMap.set(e.partition, high);
    inTopic += high - low;
    const c = committed?.partitions.find((p) => p.partition === e.partition)?.offset;
    const from = c === undefined || Number(c) < 0 ? low : Number(c);
    lag += Math.max(0, high - from);
  }
  return { lag, inTopic, ends: endMap };
}

export interface Counts {
  scored: number;
  deadLettered: number;
  byCode: Record<string, number>;
  batches: number;
  transactions: number;
}

/** Samples the registry every tick and the broker's lag at most every `lagEveryMs`; keeps rates and peaks. */
export class Monitor {
  /** The counts at the last refresh (zeros before the first). */
  counts: Counts = { scored: 0, deadLettered: 0, byCode: {}, batches: 0, transactions: 0 };
  lag: Lag | undefined;
  maxLag = 0;
  peakRate = 0;
  rate = 0;
  readonly #scorer: RunningScorer;
  readonly #admin: Admin;
  readonly #names: RunNames;
  readonly #history: { t: number; done: number }[] = [];
  #lagAt = 0;

  constructor(scorer: RunningScorer, admin: Admin, names: RunNames) {
    this.#scorer = scorer;
    this.#admin = admin;
    this.#names = names;
  }

  /** Events finished so far: scored or dead-lettered. */
  get done(): number {
    return this.counts.scored + this.counts.deadLettered;
  }

  async refresh(): Promise<Counts> {
    const m = this.#scorer.metrics;
    const [scored, byCode, batches, transactions] = await Promise.all([total(m.recordsScored), totalBy(m.recordsDeadLettered, 'code'), histogram(m.batchSize), totalBy(m.transactions, 'result')]);
    const deadLettered = Object.values(byCode).reduce((a, b) => a + b, 0);
    this.counts = { scored, deadLettered, byCode, batches: batches.count, transactions: transactions.committed ?? 0 };
    return this.counts;
  }

  /** One tick of a live display: the counts, the rate, and the lag when it is due (or forced). */
  async sample(lagEveryMs = LAG_POLL_MS, forceLag = false): Promise<void> {
    await this.refresh();
    this.track();
    await this.pollLag(lagEveryMs, forceLag);
  }

  async pollLag(lagEveryMs = LAG_POLL_MS, force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lagAt < lagEveryMs) return;
    this.#lagAt = now;
    try {
      this.lag = await consumerLag(this.#admin, this.#names.group, this.#names.input);
      this.maxLag = Math.max(this.maxLag, this.lag.lag);
    } catch {
      // A slow or failed poll only leaves the last value on screen; the scorer reports real trouble.
    }
  }

  /** Events finished (scored + dead-lettered) per second over about the last second, as of the last refresh. */
  track(): void {
    const done = this.done;
    const now = Date.now();
    this.#history.push({ t: now, done });
    while (this.#history.length > 2 && now - (this.#history[1] as { t: number }).t >= 1_000) this.#history.shift();
    const first = this.#history[0] as { t: number; done: number };
    const dt = now - first.t;
    if (dt >= 200) this.rate = ((done - first.done) * 1000) / dt;
    if (dt >= 500) this.peakRate = Math.max(this.peakRate, this.rate);
  }
}
