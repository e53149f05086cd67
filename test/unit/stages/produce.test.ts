/** How a chunk's outputs are cut into sendBatch calls of one transaction (src/produce.ts sendSlices). */
import { describe, expect, it } from 'vitest';
import { sendSlices } from '../../../src/stages/produce.js';

const msg = (bytes: number, key = 'k') => ({ key, value: Buffer.alloc(bytes) });

describe('sendSlices', () => {
  it('keeps a small chunk in one slice, topics and order intact, empty topics dropped', () => {
    const outputs = [
      { topic: 'out', messages: [msg(10, 'a'), msg(10, 'b')] },
      { topic: 'dlq', messages: [] },
      { topic: 'dlq2', messages: [msg(10, 'c')] },
    ];
    expect(sendSlices(outputs)).toEqual([[{ topic: 'out', messages: outputs[0]?.messages }, { topic: 'dlq2', messages: outputs[2]?.messages }]]);
  });

  it('cuts by bytes so no slice nears the broker message limit, losing and reordering nothing', () => {
    const messages = Array.from({ length: 5_000 }, (_, i) => msg(300, `k${i}`));
    const slices = sendSlices([{ topic: 'out', messages }]);
    expect(slices.length).toBeGreaterThan(1);
    for (const slice of slices) {
      const bytes = slice.flatMap((t) => t.messages).reduce((n, m) => n + (m.value as Buffer).length + 64 + 4, 0);
      expect(bytes).toBeLessThanOrEqual(512 * 1024);
    }
    expect(slices.flatMap((s) => s.flatMap((t) => t.messages))).toEqual(messages);
  });

  it('cuts at 1,000 messages, and a slice may span topics', () => {
    const slices = sendSlices([
      { topic: 'out', messages: Array.from({ length: 1_500 }, () => msg(1)) },
      { topic: 'dlq', messages: Array.from({ length: 600 }, () => msg(1)) },
    ]);
    expect(slices.map((s) => s.map((t) => [t.topic, t.messages.length]))).toEqual([[['out', 1_000]], [['out', 500], ['dlq', 500]], [['dlq', 100]]]);
  });

  it('gives a single oversized message a slice of its own rather than dropping it', () => {
    const big = msg(2_000_000);
    expect(sendSlices([{ topic: 'out', messages: [msg(1), big, msg(1)] }]).map((s) => s[0]?.messages.length)).toEqual([1, 1, 1]);
  });
});
