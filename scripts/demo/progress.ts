/**
 * The demo's live progress loops: until everything produced is committed, and then, with
 * --keep-running, until Ctrl-C.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DemoRun } from './context.js';
import { int } from './format.js';
import { LiveView, type Phase, type Snapshot } from './live-view.js';
import { LAG_POLL_MS } from './monitor.js';

/** After this long without progress while there is lag, the display points at the log. */
const STALL_NOTE_MS = 30_000;

function snapshot(run: DemoRun, phase: Phase): Snapshot {
  const { monitor, production, opts } = run;
  const counts = monitor.counts;
  return {
    phase,
    elapsedMs: Date.now() - run.startedAt,
    produced: Math.max(production.sent, monitor.lag?.inTopic ?? 0),
    target: opts.count,
    scored: counts.scored,
    deadLettered: counts.deadLettered,
    rate: monitor.rate,
    lag: monitor.lag?.lag,
    batches: counts.batches,
    transactions: counts.transactions,
  };
}

/**
 * Shows progress until everything produced is committed (returns that moment), or until a
 * Ctrl-C, a crash of the scorer or a failure of the producer (returns undefined).
 */
export async function untilCaughtUp(run: DemoRun): Promise<number | undefined> {
  const { term, monitor, production, interrupts, scorer, log } = run;
  const view = new LiveView(term.out, { tty: term.tty, style: term.st });
  const tickMs = term.tty ? 200 : 250;
  let caughtUpAt: number | undefined;
  let lastDone = -1;
  let lastMoveAt = Date.now();
  let stallNoted = false;
  for (;;) {
    const phase: Phase = production.done ? 'catching up' : 'producing';
    await monitor.sample(LAG_POLL_MS, production.done);
    view.update(snapshot(run, phase));
    const done = monitor.done;
    if (done !== lastDone) {
      lastDone = done;
      lastMoveAt = Date.now();
    } else if (!stallNoted && Date.now() - lastMoveAt > STALL_NOTE_MS && (monitor.lag?.lag ?? 0) > 0) {
      stallNoted = true;
      view.note(term.st.yellow(`  no progress for 30 s with lag ${int(monitor.lag?.lag ?? 0)}: see ${term.rel(log.path)} (${log.warnings} warnings so far)`));
    }
    if (interrupts.aborted || scorer.crash.happened || production.error !== undefined) break;
    if (production.done && monitor.lag?.lag === 0 && done >= production.sent) {
      caughtUpAt = Date.now();
      view.update(snapshot(run, 'caught up'), { force: true });
      break;
    }
    await Promise.race([sleep(tickMs), interrupts.promise]);
  }
  view.close();
  return caughtUpAt;
}

/** --keep-running: keeps showing progress (a plain line every 5 s off a TTY) until Ctrl-C or a crash. */
export async function keepScoring(run: DemoRun): Promise<void> {
  const { term, monitor, interrupts, scorer, names } = run;
  const { st, print } = term;
  print(`${st.bold('still scoring')} (--keep-running). Add events with ${st.cyan(`npm run produce -- --topic ${names.input} --count 10000 --poison 0.01`)}; Ctrl-C stops.`);
  print(`metrics at ${st.cyan(`${scorer.baseUrl}/metrics`)}`);
  print();
  const live = new LiveView(term.out, { tty: term.tty, style: st, plainEveryMs: 5_000 });
  while (!interrupts.aborted && !scorer.crash.happened) {
    await monitor.sample(1_000);
    live.update(snapshot(run, 'scoring'));
    await Promise.race([sleep(500), interrupts.promise]);
  }
  live.close();
  print();
}
