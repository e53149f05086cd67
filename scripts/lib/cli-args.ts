/** Checking the scripts' numeric command-line options, with one message format for all of them. */

/** A command-line option was wrong: the script prints the message (and its usage) and exits 2. */
export class UsageError extends Error {}

/**
 * `raw` as a number in [min, max] (an integer when `integer`), else a UsageError naming the flag:
 * `--count: expected an integer from 1 to 1000000000, got 'x'`. A blank value is an error, not 0.
 */
export function numberOption(name: string, raw: string, min: number, max: number, integer = false): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${raw}'`);
  }
  return n;
}
