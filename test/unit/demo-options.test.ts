/** `npm run demo`'s flags (scripts/demo/options.ts): defaults, the raised poison share on small runs, and the messages for bad values. */
import { describe, expect, it } from 'vitest';
import { POISON_KINDS } from '../../scripts/lib/feature-events.js';
import { parseOptions } from '../../scripts/demo/options.js';

const parse = (...argv: string[]) => parseOptions(argv, POISON_KINDS.length);

describe('demo options', () => {
  it('defaults to 50,000 events at 10,000/s with 0.2% bad records', () => {
    expect(parse()).toEqual({ count: 50_000, rate: 10_000, poison: 0.002, poisonRaised: false, keepRunning: false });
    expect(parse('--count', '1000', '--rate', '0', '--poison', '0', '--keep-running')).toEqual({ count: 1000, rate: 0, poison: 0, poisonRaised: false, keepRunning: true });
  });

  it('raises the default poison share on a small run so that every bad kind appears, never a given one', () => {
    const every = Math.floor(5000 / POISON_KINDS.length); // one bad record every 454 events: 11 in 5,000
    expect(parse('--count', '5000')).toEqual({ count: 5000, rate: 10_000, poison: 1 / every, poisonRaised: true, keepRunning: false });
    expect(Math.floor(5000 / every)).toBeGreaterThanOrEqual(POISON_KINDS.length);
    expect(parse('--count', '5000', '--poison', '0.002')).toMatchObject({ poison: 0.002, poisonRaised: false });
    // Too small to fit every kind 20 events apart: the default stays.
    expect(parse('--count', '100')).toMatchObject({ poison: 0.002, poisonRaised: false });
  });

  it('answers --help whatever else is given', () => {
    expect(parse('--help', '--count', 'x')).toBe('help');
    expect(parse('-h')).toBe('help');
  });

  it.each([
    [['--count', 'x'], "--count: expected an integer from 1 to 1000000000, got 'x'"],
    [['--count', '1.5'], "--count: expected an integer from 1 to 1000000000, got '1.5'"],
    [['--count', ''], "--count: expected an integer from 1 to 1000000000, got ''"],
    [['--rate=-1'], "--rate: expected a number from 0 to 10000000, got '-1'"],
    [['--poison', '2'], "--poison: expected a number from 0 to 1, got '2'"],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('rejects %j', (argv, message) => {
    expect(() => parse(...argv)).toThrow(message);
  });
});
