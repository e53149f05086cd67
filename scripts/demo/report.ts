/**
 * What the demo prints once the live display is done: the summary, the read-back with its samples,
 * the clean stop of the scorer and the closing footer.
 */
import type { DemoRun } from './context.js';
import { millis, secs } from './format.js';
import { LAG_POLL_MS, histogram, totalBy } from './monitor.js';
import { expectedCodes } from './production.js';
import { readBack } from './read-back.js';
import { deadLetterLines, scoredSampleLines, summaryLines, verificationLines } from './summary-view.js';

/**
 * Prints the summary. `caughtUpAt` is when everything produced was committed (undefined when the
 * run did not get there); `interrupted` after a Ctrl-C.
 */
export async function printSummary(run: DemoRun, interrupted: boolean, caughtUpAt: number | undefined): Promise<void> {
  const { monitor, production: prod, log, scorer, term } = run;
  const counts = monitor.counts;
  const r = scorer.running.metrics;
  const [batches, endToEnd, tx] = await Promise.all([histogram(r.batchSize), histogram(r.endToEndLatency), totalBy(r.transactions, 'result')]);
  const busyMs = caughtUpAt !== undefined && prod.firstAt !== undefined ? caughtUpAt - prod.firstAt : undefined;
  const lines = summaryLines(
    {
      topics: run.names,
      interrupted,
      produced: prod.sent,
      target: run.opts.count,
      poisonProduced: prod.summary?.poison,
      expectedByCode: prod.summary && !interrupted ? expectedCodes(prod.summary.poisonByKind) : undefined,
      scored: counts.scored,
      deadLetteredByCode: counts.byCode,
      busyMs,
      rate: busyMs !== undefined ? (monitor.done * 1000) / Math.max(1, busyMs) : 0,
      peakRate: monitor.peakRate,
      catchUpMs: caughtUpAt !== undefined && prod.endedAt !== undefined ? Math.max(0, caughtUpAt - prod.endedAt) : undefined,
      maxLag: monitor.maxLag,
      lagPollMs: LAG_POLL_MS,
      lag: monitor.lag?.lag,
      batches,
      batchMaxSize: scorer.config.batch.maxSize,
      endToEnd,
      transactions: { committed: tx.committed ?? 0, aborted: tx.aborted ?? 0 },
      warnings: log.warnings,
      deadLetterNotices: log.deadLetterNotices,
      logFile: term.rel(log.path),
    },
    term.st,
  );
  for (const line of lines) term.print(line);
}

/** Reads the output topics back, prints the exactly-once check and the sampled records. */
export async function printReadBack(run: DemoRun): Promise<void> {
  const { term, names, monitor } = run;
  const { st, print } = term;
  print(st.dim('reading the output topics back with a read_committed consumer…'));
  const ends = monitor.lag?.ends ?? new Map<number, number>();
  const back = await readBack(run.kafka, names, monitor.done, ends, run.interrupts.signal);
  if (back.verification !== undefined) for (const line of verificationLines(back.verification, st)) print(line);
  print();
  print(st.bold(`${back.scored.length === 3 ? 'Three' : back.scored.length} scored events`) + st.dim(` (${names.output}, Avro decoded with schemas/scored-event.avsc after the 5-byte header)`));
  for (const line of scoredSampleLines(back.scored, st)) print(line);
  print();
  print(st.bold(`${back.deadLetters.length === 2 ? 'Two' : back.deadLetters.length} dead letters`) + st.dim(` (${names.dlq}: original key and bytes, the reason in dlq.* headers)`));
  for (const line of deadLetterLines(back.deadLetters, st)) print(line);
  print();
}

/** Stops the scorer within SHUTDOWN_TIMEOUT_MS and says how it went; true when it drained. */
export async function stopScorer(run: DemoRun, why: string): Promise<boolean> {
  const { term, scorer, log } = run;
  const t = Date.now();
  term.print(term.st.dim(`${why}: stopping the scorer (the chunk in flight commits first)…`));
  const clean = await scorer.running.stop(scorer.config.shutdownTimeoutMs);
  term.print(clean ? `scorer stopped cleanly in ${millis(Date.now() - t)}.` : term.st.yellow(`the scorer did not drain within ${secs(scorer.config.shutdownTimeoutMs)}; see ${term.rel(log.path)}`));
  return clean;
}

/** The counts, the lag and its unscored rest after a stop, for a run cut short or kept running. */
export async function refreshAfterStop(run: DemoRun): Promise<void> {
  await run.monitor.refresh();
  await run.monitor.pollLag(0, true);
}

export function printFooter(run: DemoRun): void {
  const { term, stack, names } = run;
  term.print();
  term.print(`The local stack is still running (Kafka ${stack.kafkaBrokers}, schema registry ${stack.schemaRegistryUrl}); ${term.st.bold('npm run stack:down')} stops it.`);
  term.print(term.st.dim(`This run's topics stay until the next demo run, e.g. \`npm run produce -- --topic ${names.input}\` adds events to them.`));
}

