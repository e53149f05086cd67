// The batcher's pure part on explicit clock values, and its one timer on vitest fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchScheduler, Batcher } from '../../../../src/stages/batch/batcher.js';
import type { Batch, BatchPolicy } from '../../../../src/stages/batch/batcher.js';

interface Seg {
  name: string;
  rows: number;
  features: Float32Array;
}
const seg = (name: string, rows: number): Seg => ({ name, rows, features: new Float32Array(rows) });
/** A batch as "name[from,to)" strings, to compare at a glance. */
const layout = (b: Batch<Seg>): string[] => b.parts.map((p) => `${p.segment.name}[${p.from},${p.to})`);

const policy = (over: Partial<BatchPolicy> = {}): BatchPolicy => ({ maxSize: 4, maxDelayMs: 10, idleDispatch: false, ...over });

describe('Batcher (pure)', () => {
  it('is never ready when empty, and never without a free slot', () => {
    const b = new Batcher<Seg>(policy({ idleDispatch: true }));
    expect(b.isReady(0, true)).toBe(false);
    expect(b.nextDeadline()).toBeUndefined();
    b.add(seg('a', 9), 0);
    expect(b.isReady(1_000, false)).toBe(false); // full and overdue, but nothing could run it
    expect(b.isReady(0, true)).toBe(true);
  });

  it('flushes on size', () => {
    const b = new Batcher<Seg>(policy());
    b.add(seg('a', 2), 0);
    expect(b.isReady(0, true)).toBe(false);
    b.add(seg('b', 2), 1);
    expect(b.isReady(1, true)).toBe(true);
    const batch = b.build();
    expect(layout(batch)).toEqual(['a[0,2)', 'b[0,2)']);
    expect(batch.rows).toBe(4);
    expect(b.queuedRows).toBe(0);
  });

  it('counts the delay from the first queued row, not the last', () => {
    const b = new Batcher<Seg>(policy());
    b.add(seg('a', 1), 100);
    b.add(seg('b', 1), 108);
    expect(b.nextDeadline()).toBe(110);
    expect(b.isReady(109.9, true)).toBe(false);
    expect(b.isReady(110, true)).toBe(true);
    const batch = b.build();
    expect(layout(batch)).toEqual(['a[0,1)', 'b[0,1)']);
    expect(batch.oldestAt).toBe(100);
    expect(b.nextDeadline()).toBeUndefined();
  });

  it('dispatches at once when idle dispatch is on and a slot is free', () => {
    const b = new Batcher<Seg>(policy({ idleDispatch: true }));
    b.add(seg('a', 1), 0);
    expect(b.isReady(0, true)).toBe(true);
    expect(b.isReady(0, false)).toBe(false);
  });

  it('drain forces a flush of whatever is queued', () => {
    const b = new Batcher<Seg>(policy());
    b.add(seg('a', 1), 0);
    expect(b.isReady(0, true)).toBe(false);
    b.drain();
    expect(b.isReady(0, true)).toBe(true);
    expect(layout(b.build())).toEqual(['a[0,1)']);
  });

  it('splits a segment larger than maxSize across batches; its rest keeps its age', () => {
    const b = new Batcher<Seg>(policy());
    b.add(seg('a', 10), 5);
    b.add(seg('b', 1), 7);
    const one = b.build();
    expect(layout(one)).toEqual(['a[0,4)']);
    expect(b.nextDeadline()).toBe(15); // a's remaining rows are still as old as a
    const two = b.build();
    expect(layout(two)).toEqual(['a[4,8)']);
    const three = b.build();
    expect(layout(three)).toEqual(['a[8,10)', 'b[0,1)']);
    expect(three.oldestAt).toBe(5);
    expect(new Set([one.id, two.id, three.id]).size).toBe(3);
    expect(b.queuedRows).toBe(0);
  });

  it('keeps FIFO order across segments and batches', () => {
    const b = new Batcher<Seg>(policy({ maxSize: 3 }));
    ['a', 'b', 'c', 'd', 'e'].forEach((n, i) => b.add(seg(n, 2), i));
    const all: string[] = [];
    while (b.queuedRows > 0) all.push(...layout(b.build()));
    expect(all).toEqual(['a[0,2)', 'b[0,1)', 'b[1,2)', 'c[0,2)', 'd[0,2)', 'e[0,1)', 'e[1,2)']);
  });

  it('build(maxRows) takes fewer rows when asked, never more than maxSize', () => {
    const b = new Batcher<Seg>(policy());
    b.add(seg('a', 6), 0);
    expect(b.build(2).rows).toBe(2);
    expect(b.build(100).rows).toBe(4);
  });

  it('removes the queued rows of rejected callers, even a partly taken segment', () => {
    const b = new Batcher<Seg>(policy());
    const a = seg('a', 6);
    b.add(a, 0);
    b.add(seg('b', 1), 1);
    b.build(); // a[0,4)
    expect(b.remove((s) => s === a)).toEqual([a]);
    expect(b.queuedRows).toBe(1);
    expect(layout(b.build())).toEqual(['b[0,1)']);
  });

  it('ignores empty segments and rejects a nonsensical policy', () => {
    const b = new Batcher<Seg>(policy());
    b.add(seg('a', 0), 0);
    expect(b.queuedRows).toBe(0);
    expect(() => new Batcher(policy({ maxSize: 0 }))).toThrow(RangeError);
  });
});

describe('BatchScheduler (the timer) on fake timers', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A scheduler over `slots` inference slots; dispatched batches stay running until finish(). */
  function setup(over: Partial<BatchPolicy> = {}, slots = 1) {
    const batcher = new Batcher<Seg>(policy(over));
    const running: Batch<Seg>[] = [];
    const dispatched: { at: number; layout: string[] }[] = [];
    const scheduler = new BatchScheduler<Seg>({
      batcher,
      now: () => Date.now(),
      slotFree: () => running.length < slots,
      dispatch: (batch) => {
        running.push(batch);
        dispatched.push({ at: Date.now(), layout: layout(batch) });
      },
    });
    const add = (name: string, rows: number): void => {
      batcher.add(seg(name, rows), Date.now());
      scheduler.poke();
    };
    const finish = (): void => {
      running.shift();
      scheduler.poke();
    };
    return { batcher, scheduler, dispatched, add, finish, t0: Date.now() };
  }

  it('size flush: dispatches as soon as maxSize rows are queued', () => {
    const { add, dispatched } = setup();
    add('a', 3);
    expect(dispatched).toHaveLength(0);
    add('b', 2);
    expect(dispatched.map((d) => d.layout)).toEqual([['a[0,3)', 'b[0,1)']]);
  });

  it('delay flush: fires maxDelayMs after the first row, however late the others came', () => {
    const { add, dispatched, t0 } = setup();
    add('a', 1);
    vi.advanceTimersByTime(6);
    add('b', 1);
    vi.advanceTimersByTime(3);
    expect(dispatched).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(dispatched).toEqual([{ at: t0 + 10, layout: ['a[0,1)', 'b[0,1)'] }]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('idle dispatch: light load gives small batches at once; load grows them while the slot is busy', () => {
    const { add, finish, dispatched, t0 } = setup({ idleDispatch: true, maxSize: 4 });
    add('a', 1);
    expect(dispatched).toEqual([{ at: t0, layout: ['a[0,1)'] }]);
    add('b', 1);
    add('c', 2);
    add('d', 3);
    expect(dispatched).toHaveLength(1); // the model is busy: no timer, the batch grows
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(50);
    expect(dispatched).toHaveLength(1);
    finish();
    expect(dispatched[1]?.layout).toEqual(['b[0,1)', 'c[0,2)', 'd[0,1)']); // bounded by maxSize
    finish();
    expect(dispatched[2]?.layout).toEqual(['d[1,3)']);
  });

  it('with idle dispatch off, a free slot still waits for size or delay', () => {
    const { add, dispatched } = setup({ idleDispatch: false }, 2);
    add('a', 1);
    expect(dispatched).toHaveLength(0);
    vi.advanceTimersByTime(10);
    expect(dispatched).toHaveLength(1);
  });

  it('an overdue batch waits for a slot instead of being sealed small', () => {
    const { add, finish, dispatched } = setup({ idleDispatch: false, maxSize: 4 });
    add('a', 4); // size flush takes the only slot
    add('b', 1);
    vi.advanceTimersByTime(30); // b is overdue, but the slot is busy
    add('c', 2);
    expect(dispatched).toHaveLength(1);
    finish();
    expect(dispatched[1]?.layout).toEqual(['b[0,1)', 'c[0,2)']);
  });

  it('drain flushes at once; many slots take several batches in one poke', () => {
    const { add, batcher, scheduler, dispatched } = setup({ maxSize: 2 }, 3);
    add('a', 1);
    add('b', 4); // a + b[0,1) go on size; b[1,3) too (still >= maxSize); b[3,4) waits
    expect(dispatched.map((d) => d.layout)).toEqual([['a[0,1)', 'b[0,1)'], ['b[1,3)']]);
    batcher.drain();
    scheduler.poke();
    expect(dispatched[2]?.layout).toEqual(['b[3,4)']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('wake() coalesces rows added in one tick into one batch', async () => {
    const { batcher, scheduler, dispatched } = setup({ idleDispatch: true });
    for (const n of ['a', 'b', 'c']) {
      batcher.add(seg(n, 1), Date.now());
      scheduler.wake();
    }
    expect(dispatched).toHaveLength(0);
    await Promise.resolve();
    expect(dispatched.map((d) => d.layout)).toEqual([['a[0,1)', 'b[0,1)', 'c[0,1)']]);
  });

  it('cancel() clears the timer', () => {
    const { add, scheduler, dispatched } = setup();
    add('a', 1);
    expect(vi.getTimerCount()).toBe(1);
    scheduler.cancel();
    vi.advanceTimersByTime(100);
    expect(dispatched).toHaveLength(0);
  });
});
