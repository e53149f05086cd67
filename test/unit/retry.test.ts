// The retry helper: backoff bounds with an injected random, and the retry loop on vitest fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, retry } from '../../src/retry.js';
import type { RetryOptions } from '../../src/retry.js';

// src/retry.ts sleeps with `setTimeout` from node:timers/promises, which vitest 4.1's fake timers
// do not reach (https://github.com/vitest-dev/vitest/issues/10871). Same contract here, built on
// the global setTimeout that vi.useFakeTimers() does control.
vi.mock('node:timers/promises', async (importOriginal) => ({
  ...(await importOriginal<typeof import('node:timers/promises')>()),
  setTimeout: <T>(delay: number, value?: T, options: { signal?: AbortSignal } = {}): Promise<T | undefined> =>
    new Promise((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted === true) return reject(signal.reason as Error);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason as Error);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      }, delay);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
}));

describe('backoffDelay', () => {
  const base = { initialDelayMs: 100, maxDelayMs: 1_000 };

  it('is half the ceiling with random() = 0 and the whole ceiling as random() -> 1', () => {
    // ceiling = min(max, initial * 2^(attempt-1)): 100, 200, 400, 800, 1000 (capped)
    const ceilings = [100, 200, 400, 800, 1_000, 1_000];
    ceilings.forEach((ceiling, i) => {
      expect(backoffDelay(i + 1, { ...base, random: () => 0 })).toBe(ceiling / 2);
      expect(backoffDelay(i + 1, { ...base, random: () => 0.999999 })).toBe(ceiling);
      expect(backoffDelay(i + 1, { ...base, random: () => 0.5 })).toBe(Math.round(ceiling * 0.75));
    });
  });

  it('never exceeds maxDelayMs, however many attempts', () => {
    for (const attempt of [5, 10, 30, 64]) {
      const d = backoffDelay(attempt, { ...base, random: () => 0.999999 });
      expect(d).toBeLessThanOrEqual(1_000);
      expect(d).toBeGreaterThanOrEqual(500);
    }
  });

  it('stays within [ceiling/2, ceiling] for any random draw', () => {
    let x = 0.123;
    const random = () => (x = (x * 9301 + 0.49297) % 1);
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(1_000, 100 * 2 ** (attempt - 1));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, { ...base, random });
        expect(d).toBeGreaterThanOrEqual(ceiling / 2);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });
});

describe('retry', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const opts = (over: Partial<RetryOptions> = {}): RetryOptions => ({
    attempts: 4,
    initialDelayMs: 100,
    maxDelayMs: 1_000,
    shouldRetry: () => true,
    random: () => 0,
    ...over,
  });

  it('returns the first success without waiting', async () => {
    const fn = vi.fn(async (attempt: number) => `ok-${attempt}`);
    await expect(retry(fn, opts())).resolves.toBe('ok-1');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('retries after the backoff delay and returns the later success', async () => {
    const fn = vi.fn(async (attempt: number) => {
      if (attempt < 3) throw new Error(`fail ${attempt}`);
      return 'done';
    });
    const p = retry(fn, opts());
    await vi.advanceTimersByTimeAsync(0);
    expect(fn).toHaveBeenCalledTimes(1);
    // random() = 0: delays are 50 then 100 ms
    await vi.advanceTimersByTimeAsync(49);
    expect(fn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fn).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(99);
    expect(fn).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1);
    await expect(p).resolves.toBe('done');
    expect(fn.mock.calls.map((c) => c[0])).toEqual([1, 2, 3]);
  });

  it('rethrows at once, without retrying, what shouldRetry rejects', async () => {
    const bug = new TypeError('x is undefined');
    const fn = vi.fn(async () => {
      throw bug;
    });
    const shouldRetry = vi.fn((err: unknown) => !(err instanceof TypeError));
    const onRetry = vi.fn();
    await expect(retry(fn, opts({ shouldRetry, onRetry }))).rejects.toBe(bug);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(shouldRetry).toHaveBeenCalledWith(bug);
    expect(onRetry).not.toHaveBeenCalled();
  });

  it('retries only while shouldRetry accepts the error', async () => {
    const errors = [new Error('transient 1'), new Error('transient 2'), new Error('permanent')];
    const fn = vi.fn(async (attempt: number) => {
      throw errors[attempt - 1];
    });
    const p = retry(fn, opts({ attempts: 10, shouldRetry: (err) => (err as Error).message.startsWith('transient') }));
    const settled = expect(p).rejects.toBe(errors[2]);
    await vi.runAllTimersAsync();
    await settled;
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('stops after `attempts` and rethrows the last error', async () => {
    const fn = vi.fn(async (attempt: number) => {
      throw new Error(`fail ${attempt}`);
    });
    const onRetry = vi.fn();
    const p = retry(fn, opts({ attempts: 3, onRetry }));
    const settled = expect(p).rejects.toThrow('fail 3');
    await vi.runAllTimersAsync();
    await settled;
    expect(fn).toHaveBeenCalledTimes(3);
    expect(onRetry).toHaveBeenCalledTimes(2);
  });

  it('with attempts = 1 never retries', async () => {
    const fn = vi.fn(async () => {
      throw new Error('once');
    });
    await expect(retry(fn, opts({ attempts: 1 }))).rejects.toThrow('once');
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('calls onRetry before each wait with the error, the attempt number and the delay', async () => {
    const errs: Error[] = [];
    const fn = vi.fn(async (attempt: number) => {
      const e = new Error(`fail ${attempt}`);
      errs.push(e);
      throw e;
    });
    const onRetry = vi.fn();
    const p = retry(fn, opts({ attempts: 4, onRetry, random: () => 0.999999 }));
    const settled = expect(p).rejects.toThrow('fail 4');
    await vi.advanceTimersByTimeAsync(0);
    expect(onRetry).toHaveBeenCalledTimes(1); // before the first wait, not after it
    await vi.runAllTimersAsync();
    await settled;
    expect(onRetry.mock.calls).toEqual([
      [errs[0], 1, 100],
      [errs[1], 2, 200],
      [errs[2], 3, 400],
    ]);
  });

  it('awaits an async onRetry before waiting', async () => {
    const order: string[] = [];
    let calls = 0;
    const fn = async () => {
      order.push(`attempt ${++calls}`);
      if (calls === 1) throw new Error('first');
      return calls;
    };
    const onRetry = async () => {
      await new Promise((r) => setTimeout(r, 1_000));
      order.push('onRetry done');
    };
    const p = retry(fn, opts({ onRetry }));
    await vi.advanceTimersByTimeAsync(999);
    expect(order).toEqual(['attempt 1']);
    await vi.advanceTimersByTimeAsync(1);
    expect(order).toEqual(['attempt 1', 'onRetry done']);
    await vi.advanceTimersByTimeAsync(50);
    await expect(p).resolves.toBe(2);
    expect(order).toEqual(['attempt 1', 'onRetry done', 'attempt 2']);
  });

  it('aborting while waiting rethrows the last error at once', async () => {
    const ac = new AbortController();
    const last = new Error('broker down');
    const fn = vi.fn(async () => {
      throw last;
    });
    const p = retry(fn, opts({ attempts: 10, initialDelayMs: 10_000, maxDelayMs: 60_000, signal: ac.signal }));
    const settled = expect(p).rejects.toBe(last);
    await vi.advanceTimersByTimeAsync(1_000); // inside the first 5 s wait
    expect(fn).toHaveBeenCalledTimes(1);
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    await settled;
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not retry when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    const fn = vi.fn(async () => {
      throw new Error('nope');
    });
    await expect(retry(fn, opts({ signal: ac.signal }))).rejects.toThrow('nope');
    expect(fn).toHaveBeenCalledTimes(1);
  });
});
