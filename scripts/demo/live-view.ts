/**
 * The demo's live progress display. On a TTY the progress is a small block redrawn in place with
 * ANSI cursor movement; elsewhere (a pipe, CI logs) it is one plain line per second, so a log file
 * reads top to bottom. Pure formatting plus one writer; no Kafka, no scorer.
 */
import { type Style, int, secs } from './format.js';

export type Phase = 'producing' | 'catching up' | 'caught up' | 'scoring' | 'stopping';

/** One moment of a run, as shown by the progress display. */
export interface Snapshot {
  phase: Phase;
  elapsedMs: number;
  produced: number;
  /** Events the demo set out to produce (the --count). */
  target: number;
  scored: number;
  deadLettered: number;
  /** Scored + dead-lettered per second over the last second or so. */
  rate: number;
  /** Consumer-group lag in messages; undefined until the first poll answered. */
  lag: number | undefined;
  batches: number;
  transactions: number;
}

function bar(done: number, total: number, width: number): string {
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0;
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

const lagText = (lag: number | undefined) => (lag === undefined ? '…' : int(lag));

export function progressBlock(s: Snapshot, st: Style): string[] {
  const label = (t: string) => st.dim(t.padEnd(14));
  const padded = s.phase.padEnd(12);
  const phase = s.phase === 'caught up' ? st.green(padded) : s.phase === 'stopping' ? st.yellow(padded) : st.cyan(padded);
  const produced = s.produced >= s.target ? int(s.produced) : `${int(s.produced)} / ${int(s.target)}`;
  return [
    `  ${phase} ${bar(Math.min(s.produced, s.target), s.target, 24)}  ${produced} produced   ${st.dim(secs(s.elapsedMs))}`,
    `  ${label('scored')}${int(s.scored).padEnd(12)}${label('dead-lettered')}${int(s.deadLettered).padEnd(10)}${st.bold(int(s.rate))} events/s`,
    `  ${label('consumer lag')}${lagText(s.lag).padEnd(12)}${label('batches')}${int(s.batches).padEnd(10)}${int(s.transactions)} transactions`,
  ];
}

export function progressLine(s: Snapshot): string {
  const produced = s.produced >= s.target ? int(s.produced) : `${int(s.produced)}/${int(s.target)}`;
  return (
    `[${secs(s.elapsedMs).padStart(7)}] ${s.phase.padEnd(11)} produced ${produced} · scored ${int(s.scored)} · dead-lettered ${int(s.deadLettered)}` +
    ` · ${int(s.rate)} events/s · lag ${lagText(s.lag)} · batches ${int(s.batches)}`
  );
}

/**
 * The live display. `update` redraws the block (TTY) or prints a line at most once per
 * `plainEveryMs` (otherwise); `note` prints a message above the block without losing it.
 */
export class LiveView {
  readonly #out: NodeJS.WritableStream;
  readonly #tty: boolean;
  readonly #style: Style;
  readonly #plainEveryMs: number;
  #drawn = 0;
  #last: Snapshot | undefined;
  #lastPlainAt = 0;
  /** The snapshot last printed as a plain line. */
  #printed: Snapshot | undefined;
  #closed = false;

  constructor(out: NodeJS.WritableStream, { tty, style, plainEveryMs = 1_000 }: { tty: boolean; style: Style; plainEveryMs?: number }) {
    this.#out = out;
    this.#tty = tty;
    this.#style = style;
    this.#plainEveryMs = plainEveryMs;
  }

  update(s: Snapshot, { force = false } = {}): void {
    if (this.#closed) return;
    this.#last = s;
    if (this.#tty) {
      this.#out.write(this.#erase() + this.#draw(s));
      return;
    }
    const now = Date.now();
    if (force || now - this.#lastPlainAt >= this.#plainEveryMs) {
      this.#lastPlainAt = now;
      this.#printed = s;
      this.#out.write(`${progressLine(s)}\n`);
    }
  }

  note(text: string): void {
    if (this.#tty && this.#drawn > 0 && !this.#closed) {
      this.#out.write(`${this.#erase()}${text}\n${this.#last ? this.#draw(this.#last) : ''}`);
    } else {
      this.#out.write(`${text}\n`);
    }
  }

  /** Draws the final state once more and leaves it on screen; later output goes below it. */
  close(s: Snapshot | undefined = this.#last): void {
    if (this.#closed) return;
    if (s !== undefined && (this.#tty || s !== this.#printed)) this.update(s, { force: true });
    this.#closed = true;
    this.#drawn = 0;
  }

  #draw(s: Snapshot): string {
    const lines = progressBlock(s, this.#style);
    this.#drawn = lines.length;
    return lines.map((l) => `\x1b[2K${l}\n`).join('');
  }

  /** Moves to the first line of the drawn block and clears to the end of the screen. */
  #erase(): string {
    return this.#drawn > 0 ? `\x1b[${this.#drawn}F\x1b[J` : '';
  }
}
