/**
 * `npm run demo`: the product in one command. Starts (or reuses) the local stack, runs the scorer
 * in this process, produces reference feature events with a few bad records of every kind, shows
 * live progress, and once everything produced is committed prints a summary: counts, dead letters
 * by code, throughput, lag, batch sizes, a read-back proving every input offset landed exactly
 * once, three decoded scored events and two dead letters with their dlq.* headers.
 *
 *   npm run demo -- [--count 50000] [--rate 10000] [--poison 0.002] [--keep-running]
 *
 * Topics: every run gets its own `demo-<run>-features` (6 partitions), `demo-<run>-scores` and
 * `demo-<run>-dlq`, and its own consumer group `demo-<run>`. Fixed topics with a fresh group would
 * re-score every earlier run's events (a new group starts from the beginning), and the output
 * topic would mix runs, so the counts and the read-back could not be checked against what this
 * run produced. So that repeated runs do not pile up on the broker, a run deletes the topics,
 * groups and registry subjects of earlier demo runs that are finished (their group has no member
 * and they are more than two minutes old); the last run's topics stay until the next run, to be
 * looked at.
 *
 * The scorer's logs (LOG_LEVEL, default warn) go to .stack/logs/demo-<run>.log rather than the
 * terminal, so they never break the live display; the summary says how many warnings there were.
 * Tuning variables (BATCH_*, INFER_*, FETCH_*, ...) from the environment apply; connection and
 * topic settings are the demo's own.
 *
 * Ctrl-C: stops producing, stops the scorer cleanly (the chunk in flight commits), prints what was
 * done, exits 0; a second Ctrl-C exits at once with 130. Exit 1: the stack or the scorer failed.
 * (`npm run` itself reports 130 after a Ctrl-C whatever its script returns: npm/cli#1072.)
 *
 * The demo runs in a child of this process (`node --import tsx`, same file). tsx's CLI answers a
 * Ctrl-C by waiting 30 ms for its child to acknowledge the signal, then sends it again and, after
 * another 30 ms, SIGKILLs the child: a busy scorer (decoding a fetched chunk on the main thread)
 * can miss that window and would die without its clean stop. The launcher stays idle, so it always
 * acknowledges in time, and forwards the signal to the demo.
 *
 * The parts, in scripts/demo/: main.ts (the run, step by step), options.ts (the flags),
 * interrupts.ts (Ctrl-C), runs.ts (per-run names, topics, pruning), in-process-scorer.ts,
 * production.ts (the load), monitor.ts (metrics and lag while it runs), progress.ts and
 * live-view.ts (the live display), read-back.ts (the exactly-once check), report.ts and
 * summary-view.ts (the closing report), log-sink.ts (the run's log file), format.ts (styles).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Interrupts } from './demo/interrupts.js';

const CHILD_ENV = 'KAFKA_ONNX_SCORER_DEMO_CHILD';

/** Runs the demo in a child process and forwards signals to it (see the header comment for why). */
function launch(): Promise<number> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((done) => {
    child.on('error', (err) => {
      process.stderr.write(`demo: could not start: ${err.message}\n`);
      done(1);
    });
    child.on('exit', (code, signal) => done(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}

/**
 * The demo itself. The Ctrl-C handler comes first and the heavy modules (kafkajs, onnxruntime, the
 * registry client, ...) after it, loaded in the child only: the launcher stays light and starts at once.
 */
async function child(argv: string[]): Promise<number> {
  const interrupts = new Interrupts();
  const { runDemo } = await import('./demo/main.js');
  return runDemo(argv, interrupts);
}

const code =
  process.env[CHILD_ENV] === undefined
    ? await launch()
    : await child(process.argv.slice(2)).catch((err: unknown) => {
        process.stderr.write(`demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        return 1;
      });
// kafkajs and the inference worker are closed by now; exit explicitly so a stray timer cannot hold the process.
process.exit(code);
