/**
 * The demo's closing report as lines of text: the summary, the exactly-once verification and the
 * sampled scored events and dead letters. Pure formatting; no Kafka, no scorer.
 */
import type { ScoredEvent } from '../../src/stages/encode.js';
import { ErrorCodes, type ErrorCode } from '../../src/errors.js';
import { type Style, bound, int, millis, secs } from './format.js';

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
