/**
 * The canary guard: a pure state machine that judges the canary against stable from what the
 * scorers report, and decides — rollback (canary traffic to 0 at once) or the next promote step.
 * No timers, no I/O: the caller feeds it rows and batch durations, applies its decisions at the
 * next transaction boundary, and persists them (rollout-store.ts). Time comes from `now`, only to
 * stamp decisions.
 *
 * Per step (the starting percent, then each `promote` percent) it keeps a fresh window: canary
 * rows scored and failed (dead-lettered as INFERENCE_FAILED or non-finite), and batch inference
 * durations of canary and stable in log-spaced buckets. From `minRows` canary rows on, at every
 * report:
 *   - failure rate above maxFailureRate, or p99 ratio above maxP99Ratio -> rollback (terminal);
 *   - otherwise healthy; at promoteAfterRows (and latency judged) -> next step; 100 -> promoted.
 * A canary that cannot score at all (whole batches fail, its workers died) is rolled back at
 * once, guard or not: nothing would be learnt by waiting, and its rows would stall.
 *
 * Instances judge their own partitions' rows; the first to decide records it, and the others
 * adopt it (mergeRecords): rollback beats promotion, a later step beats an earlier one, so all
 * converge on the furthest decision whatever order they read them in.
 */
import type { CanarySpec, GuardPolicy } from './deployment.js';

export const GUARD_STATES = ['none', 'unguarded', 'observing', 'healthy', 'rolled_back', 'promoted'] as const;
/** none: no canary; unguarded: a canary without a guard; observing: fewer than minRows at this step. */
export type GuardState = (typeof GUARD_STATES)[number];

export interface GuardDecision {
  action: 'rollback' | 'promote';
  /** ms since epoch. */
  at: number;
  reason: string;
  fromPercent: number;
  toPercent: number;
}

/** A decision as persisted, keyed by canaryKey(deployment). */
export interface GuardRecord {
  key: string;
  stable: string;
  canary: string;
  state: 'promoting' | 'rolled_back' | 'promoted';
  /** 0 = the file's percent, i = promote[i - 1]. */
  step: number;
  percent: number;
  decision: GuardDecision;
  /** The instance that decided. */
  by: string;
}

export interface GuardStatus {
  state: GuardState;
  percent: number;
  step: number;
  /** ms since epoch when this step started (or the decision was adopted). */
  since: number;
  rows: number;
  failedRows: number;
  failureRate: number;
  canaryP99Ms: number | undefined;
  stableP99Ms: number | undefined;
  lastDecision: GuardDecision | undefined;
}

/** Log-spaced histogram of durations: bounded memory, p99 within one bucket (5 %). */
export class DurationHistogram {
  static readonly #MIN_MS = 0.001;
  static readonly #GROWTH = 1.05;
  static readonly #BUCKETS = 400; // 1 µs .. ~300 s
  readonly #counts = new Float64Array(DurationHistogram.#BUCKETS);
  count = 0;

  add(ms: number): void {
    const b = ms <= DurationHistogram.#MIN_MS ? 0 : Math.ceil(Math.log(ms / DurationHistogram.#MIN_MS) / Math.log(DurationHistogram.#GROWTH));
    this.#counts[Math.min(b, DurationHistogram.#BUCKETS - 1)]! += 1;
    this.count++;
  }

  /** Upper bound of the bucket holding quantile q; undefined when empty. */
  quantile(q: number): number | undefined {
    if (this.count === 0) return undefined;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let b = 0; b < DurationHistogram.#BUCKETS; b++) {
      seen += this.#counts[b] as number;
      if (seen >= rank) return DurationHistogram.#MIN_MS * DurationHistogram.#GROWTH ** b;
    }
    return undefined;
  }
}

export interface GuardOptions {
  key: string;
  stable: string;
  canary: CanarySpec;
  /** Who decides, written into records. */
  instance: string;
  now?: () => number;
  /** Batches each side needs before their p99s are compared (p99 of fewer is the maximum). */
  minLatencySamples?: number;
  /** p99s below this count as this: at microseconds the ratio is scheduling noise, not a regression. */
  latencyFloorMs?: number;
  /** A decision recorded earlier (this or another instance): resume from it. */
  record?: GuardRecord;
}

const RANK = { promoting: 0, promoted: 1, rolled_back: 2 } as const;

/** The further of two records of one key: rollback > promoted > the later step. */
export function mergeRecords(a: GuardRecord | undefined, b: GuardRecord | undefined): GuardRecord | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  const d = RANK[a.state] - RANK[b.state] || a.step - b.step || a.decision.at - b.decision.at;
  return d >= 0 ? a : b;
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const ms = (x: number): string => `${x < 1 ? x.toFixed(3) : x.toFixed(1)} ms`;

export class CanaryGuard {
  readonly #o: Required<Omit<GuardOptions, 'record'>>;
  readonly #policy: GuardPolicy | undefined;
  #state: GuardState;
  #step = 0;
  #percent: number;
  #since: number;
  #rows = 0;
  #failed = 0;
  #canaryMs = new DurationHistogram();
  #stableMs = new DurationHistogram();
  #record: GuardRecord | undefined;

  constructor(opts: GuardOptions) {
    const { now = Date.now, minLatencySamples = 100, latencyFloorMs = 1, record, ...rest } = opts;
    this.#o = { ...rest, now, minLatencySamples, latencyFloorMs };
    this.#policy = opts.canary.guard;
    this.#percent = opts.canary.percent;
    this.#state = this.#policy === undefined ? 'unguarded' : 'observing';
    this.#since = now();
    if (record !== undefined) this.adopt(record);
  }

  /** The canary's share of keys now (0 after a rollback, 100 once promoted). */
  get percent(): number {
    return this.#percent;
  }

  get state(): GuardState {
    return this.#state;
  }

  /** What to persist: the latest decision, or undefined while none was made. */
  get record(): GuardRecord | undefined {
    return this.#record;
  }

  get #done(): boolean {
    return this.#state === 'rolled_back' || this.#state === 'promoted';
  }

  /** The canary scored `rows` rows, `failed` of them failed. */
  observeRows(rows: number, failed: number): GuardDecision | undefined {
    if (this.#done) return undefined;
    this.#rows += rows;
    this.#failed += failed;
    return this.#judge();
  }

  /** One batch inference of `role`'s scorer took `durationMs`. Judged with the next observeRows. */
  observeBatch(role: 'stable' | 'canary', durationMs: number): void {
    if (this.#done) return;
    (role === 'canary' ? this.#canaryMs : this.#stableMs).add(durationMs);
  }

  /** The canary cannot score at all (whole batches fail, its workers died): rollback now. */
  canaryUnusable(why: string): GuardDecision | undefined {
    if (this.#done) return undefined;
    return this.#decide('rollback', 0, `the canary cannot score: ${why}`);
  }

  /**
   * A record read from the store (another instance's decision, or this one's before a restart).
   * Taken when it is further than what this guard knows; returns true if it changed the state.
   */
  adopt(record: GuardRecord): boolean {
    if (record.key !== this.#o.key || mergeRecords(this.#record, record) !== record) return false;
    const known = this.#record;
    if (known !== undefined && RANK[record.state] === RANK[known.state] && record.step === known.step) return false; // same progress
    this.#record = record;
    this.#enter(record.step, record.percent, record.state === 'promoting' ? undefined : record.state);
    return true;
  }

  status(): GuardStatus {
    const canaryP99Ms = this.#canaryMs.quantile(0.99);
    const stableP99Ms = this.#stableMs.quantile(0.99);
    return {
      state: this.#state,
      percent: this.#percent,
      step: this.#step,
      since: this.#since,
      rows: this.#rows,
      failedRows: this.#failed,
      failureRate: this.#rows === 0 ? 0 : this.#failed / this.#rows,
      canaryP99Ms,
      stableP99Ms,
      lastDecision: this.#record?.decision,
    };
  }

  #judge(): GuardDecision | undefined {
    const p = this.#policy;
    if (p === undefined || this.#rows < p.minRows) return undefined;
    const rate = this.#failed / this.#rows;
    if (rate > p.maxFailureRate) {
      return this.#decide('rollback', 0, `failure rate ${pct(rate)} (${this.#failed} of ${this.#rows} rows) above maxFailureRate ${pct(p.maxFailureRate)}`);
    }
    const latency = this.#latency(p);
    if (latency.breach !== undefined) return this.#decide('rollback', 0, latency.breach);
    this.#state = 'healthy';
    const next = p.promote[this.#step];
    if (next === undefined || this.#rows < p.promoteAfterRows || latency.verdict === undefined) return undefined;
    return this.#decide('promote', next, `healthy for ${this.#rows} rows (failure rate ${pct(rate)}, ${latency.verdict}): ${this.#percent}% -> ${next}%`);
  }

  /** The p99 comparison, once both sides have enough batches: a breach, a verdict, or neither yet. */
  #latency(p: GuardPolicy): { breach?: string; verdict?: string } {
    const { minLatencySamples, latencyFloorMs } = this.#o;
    if (this.#canaryMs.count < minLatencySamples || this.#stableMs.count < minLatencySamples) return {};
    const canary = this.#canaryMs.quantile(0.99) as number;
    const stable = this.#stableMs.quantile(0.99) as number;
    const ratio = Math.max(canary, latencyFloorMs) / Math.max(stable, latencyFloorMs);
    const text = `p99 inference ${ms(canary)} vs stable ${ms(stable)}, ratio ${ratio.toFixed(2)}`;
    return ratio > p.maxP99Ratio ? { breach: `${text} above maxP99Ratio ${p.maxP99Ratio}` } : { verdict: text };
  }

  #decide(action: GuardDecision['action'], toPercent: number, reason: string): GuardDecision {
    const decision: GuardDecision = { action, at: this.#o.now(), reason, fromPercent: this.#percent, toPercent };
    const state = action === 'rollback' ? 'rolled_back' : toPercent >= 100 ? 'promoted' : 'promoting';
    const step = action === 'rollback' ? this.#step : this.#step + 1;
    const { key, stable, canary, instance } = this.#o;
    this.#record = { key, stable, canary: canary.version, state, step, percent: toPercent, decision, by: instance };
    this.#enter(step, toPercent, state === 'promoting' ? undefined : state);
    return decision;
  }

  /** Starts the window of a step (or a terminal state). */
  #enter(step: number, percent: number, terminal: 'rolled_back' | 'promoted' | undefined): void {
    this.#step = step;
    this.#percent = percent;
    this.#state = terminal ?? (this.#policy === undefined ? 'unguarded' : 'observing');
    this.#since = this.#o.now();
    this.#rows = 0;
    this.#failed = 0;
    this.#canaryMs = new DurationHistogram();
    this.#stableMs = new DurationHistogram();
  }
}

/**
 * Where decisions outlive the process, shared by every instance of the consumer group
 * (src/kafka/rollout-store.ts keeps them in a compacted topic). `get` answers from what was read;
 * records of other instances arrive through `onRecord`.
 */
export interface RolloutStore {
  /** The furthest record known for a canary key (mergeRecords over everything read). */
  get(key: string): GuardRecord | undefined;
  /** Persists a decision; resolves once the broker has it. */
  write(record: GuardRecord): Promise<void>;
  /** Called for every record read after start, this instance's own included. */
  onRecord(listener: (record: GuardRecord) => void): void;
}
