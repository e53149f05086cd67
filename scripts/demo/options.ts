/** The demo's command line: `npm run demo -- [--count N] [--rate N] [--poison F] [--keep-running]`. */
import { parseArgs } from 'node:util';
import { numberOption } from '../lib/cli-args.js';

export const DEFAULT_POISON = 0.002;

export const USAGE = `usage: npm run demo -- [--count N] [--rate N] [--poison F] [--keep-running]
  --count N        events to produce (default 50000)
  --rate N         events per second, 0 = as fast as possible (default 10000)
  --poison F       share of bad records, 0..1 (default ${DEFAULT_POISON}, raised on small runs so every kind appears)
  --keep-running   keep scoring after the summary, until Ctrl-C`;

export interface Options {
  count: number;
  rate: number;
  poison: number;
  /** True when --poison was not given and the default was raised so every bad kind appears. */
  poisonRaised: boolean;
  keepRunning: boolean;
}

/**
 * Parses and checks the flags; throws (a UsageError, or parseArgs' own error for an unknown flag)
 * with a message to print above USAGE; 'help' for --help (whatever else is given). `poisonKinds` is
 * how many kinds of bad record there are.
 */
export function parseOptions(argv: string[], poisonKinds: number): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string', default: '50000' },
      rate: { type: 'string', default: '10000' },
      poison: { type: 'string' },
      'keep-running': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const count = numberOption('count', values.count, 1, 1e9, true);
  const rate = numberOption('rate', values.rate, 0, 1e7);
  let poison: number;
  let poisonRaised = false;
  if (values.poison !== undefined) {
    poison = numberOption('poison', values.poison, 0, 1);
  } else {
    // The load generator makes every (1/poison)-th record bad, cycling through the kinds: on a
    // small run 0.2% would leave some kinds out, so space them to fit every kind at least once.
    const every = Math.round(1 / DEFAULT_POISON);
    const fit = Math.floor(count / poisonKinds);
    poisonRaised = fit < every && fit >= 20;
    poison = poisonRaised ? 1 / fit : DEFAULT_POISON;
  }
  return { count, rate, poison, poisonRaised, keepRunning: values['keep-running'] };
}
