/**
 * The one retry helper: jittered exponential backoff (full jitter, as in kafkajs
 * src/retry/index.js), bounded by attempts and an overall deadline, with a way to bail out early.
 * Only errors `shouldRetry` accepts are retried; everything else is rethrown at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Attempts in all, including the first (>= 1). */
  attempts: number;
  /** First delay, ms. */
  initialDelayMs: number;
  /** Upper bound of one delay, ms. */
  maxDelayMs: number;
  /** Which errors are worth another attempt. */
  shouldRetry: (err: unknown) => boolean;
  /** Called before each wait, e.g. to log, heartbeat or count. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void | Promise<void>;
  /** Aborting stops waiting and rethrows the last error. */
  signal?: AbortSignal;
  /** Injectable for tests. */
  random?: () => number;
}

export function backoffDelay(attempt: number, { initialDelayMs, maxDelayMs, random = Math.random }: Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'random'>): number {
  const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
  // Full jitter keeps many partitions retrying against one broker from moving in lockstep.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= opts.attempts || !opts.shouldRetry(err) || opts.signal?.aborted === true) throw err;
      const delay = backoffDelay(attempt, opts);
      await opts.onRetry?.(err, attempt, delay);
      try {
        await sleep(delay, undefined, { signal: opts.signal });
      } catch {
        throw err; // aborted while waiting
      }
    }
  }
}
