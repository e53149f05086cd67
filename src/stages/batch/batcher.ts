/**
 * The batch stage: a pure object (`Batcher`: add / isReady / build / nextDeadline / drain) plus
 * one timer (`BatchScheduler`), after arroyo `strategies/batching.py` and MLServer
 * `batching/adaptive.py`. Rows from many callers (one per Kafka partition) share batches.
 *
 * Dispatch policy ("batch without tuning"): a batch is only built when an inference slot is
 * free, and then goes when
 *   - rows >= maxSize, or
 *   - the oldest queued row has waited maxDelayMs, or
 *   - idleDispatch is on (the model is idle, so waiting would only add latency), or
 *   - the batcher is draining.
 * While every slot is busy nothing is built: queued rows keep accumulating into the next batch.
 * Sealing a batch early and parking it behind a busy model (as a plain size/time batcher does)
 * would freeze it small exactly when the model is the bottleneck; waiting for a slot instead
 * lets batches grow only under load, bounded by maxSize (build takes at most that many rows,
 * the rest waits for the following batch). This is how Triton's dynamic batcher behaves.
 */
import type { BatchPart, RowSource } from './merge.js';

export interface BatchPolicy {
  /** Most rows in one batch (>= 1). Segments larger than this are split across batches. */
  maxSize: number;
  /** Most time, ms, the oldest row waits for company while a slot is free (idleDispatch off). */
  maxDelayMs: number;
  /** Dispatch at once when a slot is free instead of waiting for size or delay. */
  idleDispatch: boolean;
}

export interface Batch<S extends RowSource = RowSource> {
  readonly id: number;
  /** Which segments, and which row range of each, in batch-row order. */
  readonly parts: readonly BatchPart<S>[];
  readonly rows: number;
  /** When the batch's oldest row was queued (for fill-wait time). */
  readonly oldestAt: number;
}

interface Queued<S> {
  segment: S;
  /** Rows of the segment already placed in earlier batches. */
  taken: number;
  /** When the segment was added: its remaining rows are as old as that. */
  at: number;
}

export class Batcher<S extends RowSource = RowSource> {
  readonly #maxSize: number;
  readonly #maxDelayMs: number;
  readonly #idleDispatch: boolean;
  // FIFO of segments; only the head can be partly taken.
  #queue: Queued<S>[] = [];
  #rows = 0;
  #draining = false;
  #nextId = 1;

  constructor({ maxSize, maxDelayMs, idleDispatch }: BatchPolicy) {
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError(`maxSize must be an integer >= 1, got ${maxSize}`);
    if (!(maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${maxDelayMs}`);
    this.#maxSize = maxSize;
    this.#maxDelayMs = maxDelayMs;
    this.#idleDispatch = idleDispatch;
  }

  get maxSize(): number {
    return this.#maxSize;
  }

  /** Rows queued and not yet placed in a batch. */
  get queuedRows(): number {
    return this.#rows;
  }

  get draining(): boolean {
    return this.#draining;
  }

  add(segment: S, now: number): void {
    if (segment.rows <= 0) return;
    this.#queue.push({ segment, taken: 0, at: now });
    this.#rows += segment.rows;
  }

  /** When the oldest queued row reaches maxDelayMs; undefined when nothing is queued. */
  nextDeadline(): number | undefined {
    const head = this.#queue[0];
    return head === undefined ? undefined : head.at + this.#maxDelayMs;
  }

  isReady(now: number, slotFree: boolean): boolean {
    if (this.#rows === 0 || !slotFree) return false;
    return this.#draining || this.#idleDispatch || this.#rows >= this.#maxSize || now >= (this.nextDeadline() ?? Infinity);
  }

  /** Takes up to min(maxRows, maxSize) rows, oldest first, splitting the last segment if needed. */
  build(maxRows = this.#maxSize): Batch<S> {
    const limit = Math.min(maxRows, this.#maxSize);
    const parts: BatchPart<S>[] = [];
    const oldestAt = this.#queue[0]?.at ?? Number.NaN;
    let rows = 0;
    while (rows < limit) {
      const head = this.#queue[0];
      if (head === undefined) break;
      const n = Math.min(head.segment.rows - head.taken, limit - rows);
      parts.push({ segment: head.segment, from: head.taken, to: head.taken + n });
      head.taken += n;
      rows += n;
      if (head.taken === head.segment.rows) this.#queue.shift();
    }
    this.#rows -= rows;
    return { id: this.#nextId++, parts, rows, oldestAt };
  }

  /** From now on every queued row goes as soon as a slot is free (shutdown). */
  drain(): void {
    this.#draining = true;
  }

  /** Removes and returns the queued segments matching `pred` (e.g. callers already rejected). */
  remove(pred: (segment: S) => boolean): S[] {
    const removed: S[] = [];
    this.#queue = this.#queue.filter((q) => {
      if (!pred(q.segment)) return true;
      removed.push(q.segment);
      this.#rows -= q.segment.rows - q.taken;
      return false;
    });
    return removed;
  }
}

export interface SchedulerOptions<S extends RowSource> {
  batcher: Batcher<S>;
  /** Is an inference slot free right now? */
  slotFree: () => boolean;
  /** Takes a built batch; must occupy a slot synchronously (slotFree() reflects it at once). */
  dispatch: (batch: Batch<S>) => void;
  now: () => number;
}

/**
 * The one timer around a Batcher. Call poke() whenever something changed (rows added, a slot
 * freed, drain started): it dispatches every ready batch, then arms the timer for the oldest
 * row's deadline if rows wait while a slot is free. With no slot free there is no timer: the
 * slot's release pokes.
 */
export class BatchScheduler<S extends RowSource = RowSource> {
  readonly #batcher: Batcher<S>;
  readonly #slotFree: () => boolean;
  readonly #dispatch: (batch: Batch<S>) => void;
  readonly #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #wakeQueued = false;

  constructor({ batcher, slotFree, dispatch, now }: SchedulerOptions<S>) {
    this.#batcher = batcher;
    this.#slotFree = slotFree;
    this.#dispatch = dispatch;
    this.#now = now;
  }

  poke(): void {
    const b = this.#batcher;
    while (b.isReady(this.#now(), this.#slotFree())) this.#dispatch(b.build());
    const deadline = b.queuedRows > 0 && this.#slotFree() ? b.nextDeadline() : undefined;
    if (deadline === undefined) {
      this.cancel();
    } else if (deadline !== this.#timerAt) {
      this.cancel();
      this.#timerAt = deadline;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.poke();
      }, Math.max(0, Math.ceil(deadline - this.#now()))); // ceil: never wake before the deadline
    }
  }

  /**
   * poke() at the end of the current microtask queue: callers that add rows in the same tick
   * (partitions of one fetch) share the first batch instead of the first one going alone.
   */
  wake(): void {
    if (this.#wakeQueued) return;
    this.#wakeQueued = true;
    queueMicrotask(() => {
      this.#wakeQueued = false;
      this.poke();
    });
  }

  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}
