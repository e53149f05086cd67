/**
 * Rendering for `npm run demo` (scripts/demo.ts): the live progress display and the summary.
 * Pure formatting plus one writer; no Kafka, no scorer. On a TTY the progress is a small block
 * redrawn in place with ANSI cursor movement; elsewhere (a pipe, CI logs) it is one plain line
 * per second, so a log file reads top to bottom.
 */
import type { ScoredEvent } from '../../src/stages/encode.js';
import { ErrorCodes, type ErrorCode } from '../../src/errors.js';

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export function createStyle(color: boolean): Style {
  const wrap = (open: number, close: number) => (s: string) => (color ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { bold: wrap(1, 22), dim: wrap(2, 22), green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), cyan: wrap(36, 39) };
}

export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
export const millis = (ms: number): string => (ms < 1_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);
/** An upper bound read from a histogram bucket (seconds) as a readable duration. */
export const bound = (seconds: number | undefined): string => (seconds === undefined ? 'n/a' : seconds === Infinity ? 'over the largest bucket' : `≤ ${millis(seconds * 1000)}`);

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

// ---------------------------------------------------------------------------------------------
// Summary

export interface HistogramView {
  count: number;
  sum: number;
  /** Upper bounds (buckets), undefined when empty. */
  p50: number | undefined;
  p99: number | undefined;
  max: number | undefined;
}

export interface ScoredSample {
  key: string;
  partition: number;
  offset: string;
  event: ScoredEvent;
}

export interface DeadLetterSample {
  key: string;
  value: Buffer | null;
  headers: [string, string][];
}

export interface Verification {
  scoredRead: number;
  deadLettersRead: number;
  /** Input offsets with no output and no dead letter. */
  missing: number;
  /** Input offsets found more than once across both topics. */
  duplicates: number;
  keyMismatches: number;
  /** False when the read-back stopped before everything arrived (time limit or Ctrl-C). */
  complete: boolean;
  inputPartitions: number;
}

export interface SummaryData {
  topics: { input: string; output: string; dlq: string };
  interrupted: boolean;
  produced: number;
  target: number;
  poisonProduced: number | undefined;
  /** Dead letters each code should have got, from what was produced (undefined when unknown). */
  expectedByCode: Partial<Record<string, number>> | undefined;
  scored: number;
  deadLetteredByCode: Record<string, number>;
  /** First event produced to the commit of the last one. */
  busyMs: number | undefined;
  rate: number;
  peakRate: number;
  /** From the last event produced until the lag read 0. */
  catchUpMs: number | undefined;
  maxLag: number;
  /** How often the broker's lag was polled (ms). */
  lagPollMs: number;
  lag: number | undefined;
  batches: HistogramView;
  batchMaxSize: number;
  endToEnd: HistogramView;
  transactions: { committed: number; aborted: number };
  warnings: number;
  deadLetterNotices: number;
  logFile: string;
}

const codeDoc = (code: string): string => (code in ErrorCodes ? ErrorCodes[code as ErrorCode].doc : 'unknown code');

export function summaryLines(d: SummaryData, st: Style): string[] {
  const ok = (b: boolean) => (b ? st.green('✓') : st.red('✗'));
  const k = (t: string) => `  ${st.dim(t.padEnd(15))}`;
  const dead = Object.values(d.deadLetteredByCode).reduce((a, b) => a + b, 0);
  const out: string[] = [];
  out.push(st.bold(d.interrupted ? 'Interrupted: what was done so far' : 'Summary'));
  const poison = d.poisonProduced === undefined ? '' : ` (${int(d.poisonProduced)} of them bad on purpose, ${((d.poisonProduced / Math.max(1, d.produced)) * 100).toFixed(2)}%)`;
  out.push(`${k('produced')}${int(d.produced)}${d.produced < d.target ? ` of ${int(d.target)}` : ''} events${poison} → ${d.topics.input}`);
  out.push(`${k('scored')}${st.bold(int(d.scored))} → ${d.topics.output}`);
  out.push(`${k('dead-lettered')}${st.bold(int(dead))} → ${d.topics.dlq}`);
  const codes = Object.keys({ ...d.deadLetteredByCode, ...(d.expectedByCode ?? {}) }).sort();
  const width = Math.max(0, ...codes.map((c) => c.length));
  for (const code of codes) {
    const got = d.deadLetteredByCode[code] ?? 0;
    const want = d.expectedByCode?.[code];
    const check = want === undefined ? ' ' : got === want ? ok(true) : `${ok(false)} expected ${int(want)}`;
    out.push(`${' '.repeat(19)}${code.padEnd(width)} ${int(got).padStart(6)} ${check} ${st.dim(codeDoc(code))}`);
  }
  const accounted = d.scored + dead;
  if (!d.interrupted) {
    out.push(`${k('accounted for')}${int(d.scored)} + ${int(dead)} = ${int(accounted)} of ${int(d.produced)} produced ${ok(accounted === d.produced)}`);
  }
  if (d.busyMs !== undefined && d.busyMs > 0) {
    out.push(`${k('throughput')}${st.bold(int(d.rate))} events/s over ${secs(d.busyMs)} (first event produced → last one committed)${d.peakRate > 0 ? `, peak ${int(d.peakRate)}/s` : ''}`);
  }
  const lagNow = d.lag === undefined ? 'unknown' : d.lag === 0 ? st.green('0') : int(d.lag);
  const back = d.catchUpMs === undefined ? '' : `, back to 0 ${millis(d.catchUpMs)} after the last event was produced`;
  const during = d.maxLag === 0 ? `0 at every poll (every ${d.lagPollMs} ms): the scorer kept up with the producer` : `peak ${int(d.maxLag)} at the ${d.lagPollMs} ms polls${back}`;
  out.push(`${k('consumer lag')}${lagNow} now; ${during}`);
  const b = d.batches;
  if (b.count > 0) {
    const rows = (v: number | undefined) => (v === undefined ? 'n/a' : v === Infinity ? `> ${int(d.batchMaxSize)}` : `≤ ${int(v)}`);
    out.push(`${k('batches')}${int(b.count)} inference batches, ${(b.sum / b.count).toFixed(1)} rows on average, p50 ${rows(b.p50)}, max ${rows(b.max)} rows (BATCH_MAX_SIZE ${int(d.batchMaxSize)})`);
  }
  if (d.endToEnd.count > 0) out.push(`${k('end-to-end')}p50 ${bound(d.endToEnd.p50)}, p99 ${bound(d.endToEnd.p99)} from event time to committed score`);
  out.push(`${k('transactions')}${int(d.transactions.committed)} committed, ${int(d.transactions.aborted)} aborted`);
  const notices = `${int(d.deadLetterNotices)} dead-letter notice${d.deadLetterNotices === 1 ? '' : 's'}`;
  const warnings = d.warnings === 0 ? 'no other warnings' : st.yellow(`${int(d.warnings)} other warning${d.warnings === 1 ? '' : 's'}`);
  out.push(`${k('log')}${d.logFile} (${notices}, ${warnings})`);
  return out;
}

export function verificationLines(v: Verification, st: Style): string[] {
  const total = v.scoredRead + v.deadLettersRead;
  const head = `  ${st.dim('exactly once'.padEnd(15))}`;
  if (!v.complete && v.missing > 0 && v.duplicates === 0) {
    return [`${head}${st.yellow(`read back ${int(total)} records before stopping; ${int(v.missing)} input offsets not seen yet, none twice`)}`];
  }
  const good = v.missing === 0 && v.duplicates === 0 && v.keyMismatches === 0;
  const detail = good
    ? `every input offset of the ${v.inputPartitions} partitions appears exactly once across both topics, with its key ${st.green('✓')}`
    : st.red(`${int(v.missing)} input offsets missing, ${int(v.duplicates)} found twice, ${int(v.keyMismatches)} keys changed ✗`);
  return [`${head}read back ${int(v.scoredRead)} scored events + ${int(v.deadLettersRead)} dead letters (read_committed): ${detail}`];
}

export function scoredSampleLines(samples: ScoredSample[], st: Style): string[] {
  const out: string[] = [];
  samples.forEach((s, i) => {
    const e = s.event;
    const scores = Object.entries(e.scores)
      .map(([name, v]) => `${name} ${v.toFixed(3)}`)
      .join(', ');
    const label = e.label === null ? '' : ` → ${e.label === 'churn' ? st.yellow(e.label) : st.green(e.label)}`;
    out.push(`  ${st.dim(`#${i + 1}`)} key ${st.bold(s.key)}  from ${e.source.topic}[${e.source.partition}] offset ${e.source.offset}`);
    out.push(
      `     score ${st.bold(e.score.toFixed(4))}${label}  (${scores})  model ${e.model.name} ${e.model.version}  ` +
        st.dim(`scored ${millis(e.scored_time - e.event_time)} after its event time; output ${s.partition}@${s.offset}`),
    );
  });
  return out;
}

function preview(value: Buffer | null): string {
  if (value === null) return 'null';
  if (value.length === 0) return '0 bytes (empty)';
  const hex = [...value.subarray(0, 12)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${value.length} bytes, kept as produced: ${hex}${value.length > 12 ? ' …' : ''}`;
}

export function deadLetterLines(samples: DeadLetterSample[], st: Style): string[] {
  const out: string[] = [];
  samples.forEach((s, i) => {
    out.push(`  ${st.dim(`#${i + 1}`)} key ${st.bold(s.key)}  value ${preview(s.value)}`);
    const width = Math.max(...s.headers.map(([k]) => k.length));
    for (const [name, value] of s.headers) {
      const shown = name === 'dlq.error.code' ? st.yellow(value) : value;
      out.push(`     ${st.dim(name.padEnd(width))}  ${shown}`);
    }
  });
  return out;
}
