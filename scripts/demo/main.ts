/**
 * The demo run itself, in the order the user sees it (scripts/demo.ts says what and why): the
 * stack, this run's topics, the scorer in this process, producing with live progress, then the
 * summary and read-back, or what was done when a Ctrl-C or a failure cut it short.
 * Loaded by scripts/demo.ts only after its Ctrl-C handler is in place.
 */
import '../../src/kafka/kafkajs-fix.js'; // before kafkajs (imported by the modules below): see the module
import { Kafka, logLevel } from 'kafkajs';
import { describeError } from '../../src/errors.js';
import { POISON_KINDS } from '../lib/feature-events.js';
import { kafkaSecurity } from '../lib/stack-env.js';
import { type StackInfo, StackError, stackUp } from '../stack/stack.js';
import type { DemoRun } from './context.js';
import { type Terminal, createTerminal, int } from './format.js';
import { type DemoScorer, startDemoScorer } from './in-process-scorer.js';
import type { Interrupts } from './interrupts.js';
import { LogSink } from './log-sink.js';
import { Monitor } from './monitor.js';
import { type Options, USAGE, parseOptions } from './options.js';
import { Production } from './production.js';
import { keepScoring, untilCaughtUp } from './progress.js';
import { printFooter, printReadBack, printSummary, refreshAfterStop, stopScorer } from './report.js';
import { PARTITIONS, createRunTopics, newRunNames, pruneEarlierRuns, runLogPath } from './runs.js';

/** Runs the demo; resolves to the process exit code (0 also after a Ctrl-C, 1 when something failed, 2 for bad flags). */
export async function runDemo(argv: string[], interrupts: Interrupts): Promise<number> {
  let opts: Options;
  try {
    const parsed = parseOptions(argv, POISON_KINDS.length);
    if (parsed === 'help') {
      console.log(USAGE);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const term = createTerminal();
  const { st, print } = term;
  if (interrupts.aborted) {
    print('interrupted before starting: nothing was done.');
    return 0;
  }
  print(st.bold('kafka-onnx-scorer demo') + st.dim(' — Avro feature events in, ONNX scores out, exactly once, bad records to a dead-letter topic'));
  print();
  const stack = await startStack(term, interrupts);
  if (typeof stack === 'number') return stack;
  return withRunTopics(opts, term, interrupts, stack);
}

/** 1. The local stack: started, or reused when it runs. Returns an exit code when it is not there. */
async function startStack(term: Terminal, interrupts: Interrupts): Promise<StackInfo | number> {
  try {
    const up = stackUp((line) => term.print(term.st.dim(line.replace(/^/gm, '  '))));
    up.catch(() => undefined); // observed below, or abandoned on Ctrl-C
    const stack = await Promise.race([up, interrupts.promise.then(() => undefined)]);
    if (stack !== undefined) return stack;
    term.print('\ninterrupted while starting the stack: nothing was produced or scored.');
    return 0;
  } catch (err) {
    if (!(err instanceof StackError)) throw err;
    process.stderr.write(`demo: the local stack could not start:\n${err.message}\n`);
    return 1;
  }
}

/** 2. This run's topics and log, and the admin client; everything after runs inside, and is closed after. */
async function withRunTopics(opts: Options, term: Terminal, interrupts: Interrupts, stack: StackInfo): Promise<number> {
  const { st, print } = term;
  const names = newRunNames();
  const log = new LogSink(runLogPath(names));
  // A STACK_SECURITY=sasl_ssl stack: the demo's own clients speak it as the stack's admin (securityEnv).
  const kafka = new Kafka({ clientId: 'kafka-onnx-scorer-demo', brokers: stack.kafkaBrokers.split(','), logLevel: logLevel.WARN, logCreator: log.kafkaLogCreator(), ...kafkaSecurity(stack.securityEnv) });
  const admin = kafka.admin();
  let scorer: DemoScorer | undefined;
  const restoreConsole = log.captureConsole();
  try {
    await admin.connect();
    const pruned = await pruneEarlierRuns(admin, stack.schemaRegistryUrl, log).catch((err: unknown) => {
      log.entry('warn', 'demo', `cleaning up earlier demo runs failed: ${describeError(err)}`);
      return 0;
    });
    await createRunTopics(admin, names);
    print();
    print(`${st.bold('topics')}    ${names.input} (${PARTITIONS} partitions) → ${names.output}, dead letters → ${names.dlq}`);
    if (pruned > 0) print(st.dim(`          (deleted the topics of ${pruned} earlier demo run${pruned === 1 ? '' : 's'})`));

    // 3. The scorer, in this process.
    const started = await startDemoScorer(stack, names, log, term, interrupts);
    if (typeof started === 'number') return started;
    scorer = started;

    // 4. Produce, concurrently with scoring.
    const poisonNote = opts.poison > 0 ? `, ${(opts.poison * 100).toFixed(2)}% bad records of ${POISON_KINDS.length} kinds${opts.poisonRaised ? ' (raised from 0.2% so every kind appears)' : ''}` : ', no bad records';
    print(`${st.bold('producing')} ${int(opts.count)} reference events at ${opts.rate > 0 ? `${int(opts.rate)}/s` : 'full speed'}${poisonNote}`);
    print();
    const run: DemoRun = {
      opts,
      term,
      interrupts,
      stack,
      names,
      log,
      kafka,
      scorer,
      monitor: new Monitor(scorer.running, admin, names),
      startedAt: Date.now(),
      production: new Production(stack, names, opts, interrupts),
    };
    return await scoreAndReport(run);
  } finally {
    if (scorer !== undefined) await scorer.running.stop(5_000).catch(() => false); // idempotent: a no-op after a clean stop
    await admin.disconnect().catch(() => undefined);
    restoreConsole();
    await log.close();
  }
}

/** 5. Live progress until caught up; then 6. the summary and read-back, or 7. what a Ctrl-C left. */
async function scoreAndReport(run: DemoRun): Promise<number> {
  const { term, interrupts, scorer, production, monitor, names, opts } = run;
  const { st, print } = term;
  const caughtUpAt = await untilCaughtUp(run);

  if (scorer.crash.happened || production.error !== undefined) return crashed(run, scorer.crash.happened ? `the scorer's consumer crashed: ${describeError(scorer.crash.error)}` : `producing failed: ${describeError(production.error)}`);

  if (interrupts.aborted) {
    // 7. Ctrl-C: the producer stops at its next batch; then the scorer drains and stops.
    print();
    await production.finished;
    await stopScorer(run, 'Ctrl-C');
    await refreshAfterStop(run);
    print();
    await printSummary(run, true, caughtUpAt);
    const left = monitor.lag?.lag ?? 0;
    if (left > 0) print(st.dim(`  ${int(left)} events are still unscored in ${names.input}: a scorer started with GROUP_ID=${names.group} would continue from exactly there.`));
    printFooter(run);
    return 0;
  }

  // 6. Summary, read-back, samples.
  print();
  await printSummary(run, false, caughtUpAt);
  print();
  await printReadBack(run);

  if (opts.keepRunning && !interrupts.aborted) {
    await keepScoring(run);
    if (scorer.crash.happened) return crashed(run, `the scorer's consumer crashed: ${describeError(scorer.crash.error)}`, false);
    await stopScorer(run, 'Ctrl-C');
    await refreshAfterStop(run);
    print(`in total: ${int(monitor.counts.scored)} scored, ${int(monitor.counts.deadLettered)} dead-lettered, lag ${int(monitor.lag?.lag ?? 0)}.`);
    printFooter(run);
    return 0;
  }
  await stopScorer(run, interrupts.aborted ? 'Ctrl-C' : 'done');
  printFooter(run);
  return 0;
}

/** A failure while running: says what (and where the log is), stops the scorer without waiting long, exit 1. */
async function crashed(run: DemoRun, what: string, withLog = true): Promise<number> {
  process.stderr.write(withLog ? `\ndemo: ${what}\n  (log: ${run.term.rel(run.log.path)})\n` : `demo: ${what}\n`);
  await run.scorer.running.stop(5_000).catch(() => false);
  return 1;
}
