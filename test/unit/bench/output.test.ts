/** The benchmark's reader of scored events (bench/lib/output.ts): what it reads from the bytes is what avsc wrote. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { LatencyLog, ScoredDecoder } from '../../../bench/lib/output.js';
import { ROOT } from '../../../scripts/lib/feature-events.js';

const schema = JSON.parse(readFileSync(resolve(ROOT, 'schemas/scored-event.avsc'), 'utf8')) as avro.Schema;
const type = avro.Type.forSchema(schema);
const framed = (value: unknown): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 0, 42]), type.toBuffer(value)]);

describe('ScoredDecoder', () => {
  it('reads source partition and offset, event and scored time and the model version as avsc wrote them', () => {
    const decoder = new ScoredDecoder(ROOT);
    const cases = [
      { partition: 0, offset: 0, eventTime: 1_796_000_000_000, scoredTime: 1_796_000_000_012, version: '1.0.0', topic: 'in', ids: ['e', 'k'] },
      { partition: 5, offset: 2 ** 40 + 3, eventTime: 2 ** 41 - 1, scoredTime: 2 ** 41, version: 'v2-ünïcode', topic: 't'.repeat(300), ids: ['x'.repeat(200), ''] },
    ];
    for (const c of cases) {
      const value = framed({
        event_id: c.ids[0],
        entity_id: c.ids[1],
        source: { topic: c.topic, partition: c.partition, offset: c.offset },
        event_time: c.eventTime,
        scored_time: c.scoredTime,
        model: { name: 'churn', version: c.version },
        score: 0.25,
        scores: { yes: 0.25, no: 0.75 },
        label: 'no',
      });
      expect(decoder.decode(value)).toEqual({ partition: c.partition, offset: c.offset, eventTime: c.eventTime, scoredTime: c.scoredTime, version: c.version });
    }
  });

  it('refuses a schema whose leading fields are not the ones it reads', () => {
    const root = mkdtempSync(join(tmpdir(), 'scored-layout-'));
    try {
      mkdirSync(join(root, 'schemas'));
      const s = schema as { fields: { name: string }[] };
      // event_time and scored_time swapped: same types, another order.
      const fields = s.fields.map((f) => (f.name === 'event_time' ? s.fields.find((g) => g.name === 'scored_time') : f.name === 'scored_time' ? s.fields.find((g) => g.name === 'event_time') : f));
      writeFileSync(join(root, 'schemas/scored-event.avsc'), JSON.stringify({ ...s, fields }));
      expect(() => new ScoredDecoder(root)).toThrow(/starts with .*scored_time:long event_time:long.*, the decoder reads .*event_time:long scored_time:long/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('LatencyLog', () => {
  it('gives back every record pushed, in order, past its first growth', () => {
    const log = new LatencyLog();
    const pushed = Array.from({ length: 5000 }, (_, i) => ({
      partition: i % 6,
      offset: 2 ** 40 + i,
      version: ['1.0.0', '1.1.0', 'v2-ünïcode'][i % 3] as string,
      eventTime: 1_796_000_000_000 + i,
      scoredTime: 1_796_000_000_000 + i * 2,
      visibleAt: 1_796_000_000_000 + i * 3,
    }));
    for (const r of pushed) log.push(r);
    expect(log.length).toBe(5000);
    expect(log.records()).toEqual(pushed);
  });
});
