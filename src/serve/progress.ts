/**
 * Progress of a job that ends (a backfill, a file): on a terminal a one-line bar redrawn in
 * place (records done / total, rate, ETA, bad records so far); anywhere else (a Kubernetes Job's
 * log, CI) one JSON line every few seconds, which log pipelines parse. Both on stderr, so stdout
 * carries only the final summary.
 */
export interface ProgressState {
  /** Records handled (scored or reported bad). */
  done: number;
  /** Records in the job, when known up front. */
  total?: number;
  /** Share done, 0..1, when known better than done/total (bytes of a file). */
  fraction?: number;
  /** Records that could not be scored (dead letters, sidecar rows). */
  bad: number;
}

export interface ProgressOptions {
  job: string;
  /** Where it is drawn or written (process.stderr). */
  out: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean; columns?: number };
  /** JSON lines this often when not on a terminal (ms). */
  intervalMs?: number;
  now?: () => number;
}

const BAR_REDRAW_MS = 250;

const clock = (s: number): string => {
  if (!Number.isFinite(s)) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
};

export class Progress {
  readonly #opts: Required<Omit<ProgressOptions, 'out'>> & Pick<ProgressOptions, 'out'>;
  readonly #startedAt: number;
  #state: ProgressState = { done: 0, bad: 0 };
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: ProgressOptions) {
    this.#opts = { intervalMs: 5_000, now: Date.now, ...opts };
    this.#startedAt = this.#opts.now();
  }

  get tty(): boolean {
    return this.#opts.out.isTTY === true;
  }

  start(): void {
    this.#timer ??= setInterval(() => this.#emit(), this.tty ? BAR_REDRAW_MS : this.#opts.intervalMs);
    this.#timer.unref();
  }

  update(state: ProgressState): void {
    this.#state = state;
  }

  /** Last line (the bar at 100 %, or a final JSON line) and stop. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#emit();
    if (this.tty) this.#opts.out.write('\n');
  }

  /** What the line says, as numbers: also the JSON line's fields. */
  snapshot(): { job: string; done: number; total: number | null; percent: number | null; ratePerSecond: number; etaSeconds: number | null; bad: number; elapsedSeconds: number } {
    const { done, total, bad } = this.#state;
    const elapsed = Math.max((this.#opts.now() - this.#startedAt) / 1000, 1e-3);
    const fraction = this.#state.fraction ?? (total ? done / total : undefined);
    const rate = done / elapsed;
    const eta = fraction !== undefined && fraction > 0 ? (elapsed * (1 - fraction)) / fraction : undefined;
    return {
      job: this.#opts.job,
      done,
      total: total ?? null,
      percent: fraction === undefined ? null : Math.round(fraction * 1000) / 10,
      ratePerSecond: Math.round(rate),
      etaSeconds: eta === undefined ? null : Math.round(eta),
      bad,
      elapsedSeconds: Math.round(elapsed * 10) / 10,
    };
  }

  #emit(): void {
    const s = this.snapshot();
    if (!this.tty) {
      this.#opts.out.write(`${JSON.stringify({ progress: s.job, ...s, job: undefined })}\n`);
      return;
    }
    const n = (x: number) => x.toLocaleString('en-US');
    const tail = ` ${s.percent === null ? '' : `${s.percent.toFixed(1)}% `}${n(s.done)}${s.total === null ? '' : `/${n(s.total)}`} records · ${n(s.ratePerSecond)}/s · ETA ${clock(s.etaSeconds ?? Number.NaN)} · ${n(s.bad)} bad`;
    const width = Math.max(10, Math.min(40, (this.#opts.out.columns ?? 80) - tail.length - 3));
    const filled = s.percent === null ? 0 : Math.round((s.percent / 100) * width);
    this.#opts.out.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]${tail}\x1b[K`);
  }
}
