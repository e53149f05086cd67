/**
 * The circuit breaker, whole: its state, its cool-down and what readiness reads of it.
 *
 * A batch in which every row fails means the model, not a record, is broken: nothing of it is
 * dead-lettered. After `failureThreshold` such batches in a row the circuit opens (readiness
 * false, queued work refused); the consume stage pauses the partitions for `cooldownMs` and then
 * reads their chunks again, the trial that closes the circuit once a batch succeeds.
 */
export interface CircuitOptions {
  /** Whole-batch failures in a row before the circuit opens. */
  failureThreshold: number;
  /** How long a partition waits after a whole-batch failure before reading its chunk again, ms. */
  cooldownMs: number;
  /** Called on every change of `open` (logs, the scorer_circuit_open gauge). */
  onChange?(open: boolean): void;
}

export class CircuitBreaker {
  readonly #opts: CircuitOptions;
  #failedBatches = 0;
  #open = false;

  constructor(opts: CircuitOptions) {
    this.#opts = opts;
  }

  /** Open: the model keeps failing whole batches; readiness is false. */
  get open(): boolean {
    return this.#open;
  }

  /** A lone failing row is a bad record only while the model is known good (the last batch succeeded). */
  get modelSuspect(): boolean {
    return this.#failedBatches > 0;
  }

  get failedBatches(): number {
    return this.#failedBatches;
  }

  get cooldownMs(): number {
    return this.#opts.cooldownMs;
  }

  /** A batch in which every row failed. Returns true when the circuit is open after it. */
  recordFailure(): boolean {
    this.#failedBatches++;
    if (this.#failedBatches >= this.#opts.failureThreshold && !this.#open) this.#set(true);
    return this.#open;
  }

  /** A batch with at least one scored row: the model works. */
  recordSuccess(): void {
    this.#failedBatches = 0;
    if (this.#open) this.#set(false);
  }

  #set(open: boolean): void {
    this.#open = open;
    this.#opts.onChange?.(open);
  }
}
