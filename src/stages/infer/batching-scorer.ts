/**
 * BatchingRowScorer: callers' rows meet in micro-batches (batch/batcher.ts), each batch runs on a
 * free inference slot (one session, on a worker thread or the main thread: worker.ts), and each
 * caller gets its own rows' outcomes back in order (batch/merge.ts). The circuit breaker
 * (circuit.ts) judges whole-batch failures; a slot whose worker dies is restarted once.
 */
import { isolate, split, toOutcomes } from '../batch/merge.js';
import type { RowOutcome, RowSource, ScoreSpec } from '../batch/merge.js';
import { BatchScheduler, Batcher } from '../batch/batcher.js';
import type { Batch } from '../batch/batcher.js';
import { ScorerError } from '../../errors.js';
import type { CircuitBreaker } from './circuit.js';
import type { RowScorer, RowScorerOptions } from './infer.js';
import type { Runner } from './worker.js';

/** One caller's score() call: its rows travel through the batcher as one segment. */
interface Ticket extends RowSource {
  outcomes: RowOutcome[];
  pending: number;
  settled: boolean;
  resolve(outcomes: RowOutcome[]): void;
  reject(err: unknown): void;
}

/** One inference slot: at most one batch at a time. `starting` while its worker restarts. */
interface Slot {
  runner: Runner;
  state: 'idle' | 'busy' | 'starting' | 'dead';
  restarted: boolean;
}

export class BatchingRowScorer implements RowScorer {
  readonly #width: number;
  readonly #spec: ScoreSpec;
  readonly #circuit: CircuitBreaker;
  readonly #hooks: NonNullable<RowScorerOptions['hooks']>;
  readonly #now: () => number;
  readonly #restart: (onDeath: (err: ScorerError) => void) => Promise<Runner>;
  readonly #batcher: Batcher<Ticket>;
  readonly #scheduler: BatchScheduler<Ticket>;
  readonly #slots: Slot[] = [];
  readonly #tickets = new Set<Ticket>();
  #inFlightRows = 0;
  #running = 0;
  #unusable: ScorerError | undefined; // every slot is dead: nothing will ever be scored
  #closing: Promise<void> | undefined;
  #onIdle: (() => void) | undefined;

  constructor(opts: RowScorerOptions, spec: ScoreSpec, restart: (onDeath: (err: ScorerError) => void) => Promise<Runner>) {
    const { model, batch, circuit, hooks = {}, now = () => performance.now() } = opts;
    this.#width = model.manifest.input.width;
    this.#spec = spec;
    this.#circuit = circuit;
    this.#hooks = hooks;
    this.#now = now;
    this.#restart = restart;
    this.#batcher = new Batcher<Ticket>(batch);
    this.#scheduler = new BatchScheduler<Ticket>({
      batcher: this.#batcher,
      now,
      slotFree: () => this.#slots.some((s) => s.state === 'idle'),
      dispatch: (b) => this.#dispatch(b),
    });
  }

  addSlot(runner: Runner): void {
    this.#slots.push({ runner, state: 'idle', restarted: false });
  }

  /** The death callback a runner of slot `i` reports to. */
  deathHandler(i: number): (err: ScorerError) => void {
    return (err) => void this.#onDeath(i, err);
  }

  get inFlightRows(): number {
    return this.#inFlightRows;
  }

  score(features: Float32Array, rows: number): Promise<RowOutcome[]> {
    if (!Number.isInteger(rows) || rows < 0 || features.length !== rows * this.#width) {
      return Promise.reject(new RangeError(`score: ${features.length} features for ${rows} rows of width ${this.#width}`));
    }
    if (this.#closing !== undefined) return Promise.reject(new ScorerError('MODEL_UNAVAILABLE', 'the scorer is closing'));
    if (this.#unusable !== undefined) return Promise.reject(this.#unusable);
    if (rows === 0) return Promise.resolve([]);
    return new Promise<RowOutcome[]>((resolve, reject) => {
      const t: Ticket = { features, rows, outcomes: new Array<RowOutcome>(rows), pending: rows, settled: false, resolve, reject };
      this.#tickets.add(t);
      this.#inFlightRows += rows;
      this.#batcher.add(t, this.#now());
      this.#scheduler.wake();
    });
  }

  async warmUp(): Promise<void> {
    // Beside the batches, not through them: a worker answers messages in order, so this only
    // waits behind a running batch; and it must reach every session, not the first free one.
    const zero = (): Float32Array => new Float32Array(this.#width);
    await Promise.all(
      this.#slots.filter((s) => s.state !== 'dead').map(async (s) => {
        try {
          toOutcomes(await s.runner.run(zero(), 1), 1, this.#spec);
        } catch (err) {
          throw new ScorerError('MODEL_UNAVAILABLE', `warm-up inference failed: ${(err as Error).message}`, { cause: err });
        }
      }),
    );
  }

  close(deadlineMs: number): Promise<void> {
    this.#closing ??= this.#close(deadlineMs);
    return this.#closing;
  }

  async #close(deadlineMs: number): Promise<void> {
    this.#batcher.drain();
    this.#scheduler.poke();
    if (this.#tickets.size > 0 || this.#running > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.#onIdle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs))),
      ]);
      clearTimeout(timer);
    }
    const late = new ScorerError('MODEL_UNAVAILABLE', `the scorer closed before these rows were scored (deadline ${deadlineMs} ms)`);
    this.#batcher.remove(() => true);
    for (const t of this.#tickets) this.#settle(t, late);
    this.#scheduler.cancel();
    await Promise.allSettled(this.#slots.map((s) => s.runner.close()));
  }

  #dispatch(batch: Batch<Ticket>): void {
    const slot = this.#slots.find((s) => s.state === 'idle');
    if (slot === undefined) throw new Error('dispatch without a free slot'); // the scheduler checked
    slot.state = 'busy';
    this.#running++;
    void this.#run(slot, batch);
  }

  async #run(slot: Slot, batch: Batch<Ticket>): Promise<void> {
    const { runner } = slot;
    const started = this.#now();
    let outcomes: RowOutcome[] | undefined;
    let fatal: unknown;
    try {
      outcomes = await isolate(async (f, n) => toOutcomes(await runner.run(f, n), n, this.#spec), batch.parts, this.#width);
    } catch (err) {
      fatal = err;
    }
    if (slot.state === 'busy') slot.state = 'idle'; // not if its worker died meanwhile
    this.#running--;
    this.#hooks.onBatch?.({ rows: batch.rows, fillWaitMs: started - batch.oldestAt, inferMs: this.#now() - started });

    if (outcomes === undefined) {
      // A fatal ScorerError (worker lost, output of the wrong shape) or a bug: never a dead letter.
      const err = fatal instanceof Error ? fatal : new ScorerError('BATCH_INFERENCE_FAILED', String(fatal));
      for (const p of batch.parts) this.#settle(p.segment, err);
    } else if (outcomes.every((o) => !o.ok) && (batch.rows > 1 || this.#circuit.modelSuspect)) {
      // Every row failed on its own: the model, not a record, is suspect. These rows are not
      // dead-lettered; their callers get BATCH_INFERENCE_FAILED and read them again after a
      // pause. A lone failing row is a bad record only while the model is known good (the
      // previous batch succeeded).
      this.#failBatch(batch, outcomes, this.#circuit.recordFailure());
    } else if (outcomes.every((o) => !o.ok)) {
      this.#circuit.recordFailure();
      this.#deliver(batch, outcomes);
    } else {
      this.#circuit.recordSuccess();
      this.#deliver(batch, outcomes);
    }
    this.#scheduler.poke();
    this.#checkIdle();
  }

  /**
   * The model, not a record, is suspect: these rows must not be dead-lettered. Once the circuit
   * is open, everything queued is rejected too, until a later batch (a trial) succeeds.
   */
  #failBatch(batch: Batch<Ticket>, outcomes: RowOutcome[], circuitOpen: boolean): void {
    const first = outcomes[0];
    const err = new ScorerError('BATCH_INFERENCE_FAILED', `${this.#circuit.failedBatches} consecutive batches failed on every row`, {
      cause: first !== undefined && !first.ok ? first.error : undefined,
    });
    for (const p of batch.parts) this.#settle(p.segment, err);
    if (circuitOpen) for (const t of this.#batcher.remove(() => true)) this.#settle(t, err);
  }

  #deliver(batch: Batch<Ticket>, outcomes: RowOutcome[]): void {
    split(outcomes, batch.parts).forEach((rowsOut, i) => {
      const { segment: t, from } = batch.parts[i] as Batch<Ticket>['parts'][number];
      if (t.settled) return;
      for (let r = 0; r < rowsOut.length; r++) t.outcomes[from + r] = rowsOut[r] as RowOutcome;
      t.pending -= rowsOut.length;
      if (t.pending === 0) this.#settle(t);
    });
  }

  /** Resolves (no error) or rejects one caller, once; its queued rows leave the batcher. */
  #settle(t: Ticket, err?: unknown): void {
    if (t.settled) return;
    t.settled = true;
    this.#tickets.delete(t);
    this.#inFlightRows -= t.rows;
    if (err === undefined) {
      t.resolve(t.outcomes);
    } else {
      if (this.#batcher.queuedRows > 0) this.#batcher.remove((s) => s === t);
      t.reject(err);
    }
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#onIdle !== undefined && this.#tickets.size === 0 && this.#running === 0) this.#onIdle();
  }

  async #onDeath(i: number, err: ScorerError): Promise<void> {
    const slot = this.#slots[i];
    if (slot === undefined || this.#closing !== undefined) return;
    if (!slot.restarted) {
      slot.restarted = true;
      slot.state = 'starting';
      try {
        slot.runner = await this.#restart(this.deathHandler(i));
        slot.state = 'idle';
        this.#scheduler.poke();
        return;
      } catch {
        // fall through: the slot is lost
      }
    }
    slot.state = 'dead';
    if (this.#slots.every((s) => s.state === 'dead')) {
      this.#unusable = new ScorerError('MODEL_UNAVAILABLE', `every inference worker died: ${err.message}`, { cause: err });
      for (const t of this.#batcher.remove(() => true)) this.#settle(t, this.#unusable);
    }
  }
}

