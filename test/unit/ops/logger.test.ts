import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type DestinationStream } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, flushLogger, stageLogger } from '../../../src/ops/logger.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
const SECRET = 'Tr0ub4dor-and-3-zebras';

/** A destination that keeps each line, parsed. */
function capture(): { dest: DestinationStream; lines: Record<string, unknown>[]; raw: string[] } {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  return { raw, lines, dest: { write: (s: string) => { raw.push(s); lines.push(JSON.parse(s) as Record<string, unknown>); } } };
}

const dir = mkdtempSync(join(tmpdir(), 'scorer-logger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('createLogger', () => {
  it('writes JSON lines with service, version, an ISO time and a level label', () => {
    const { dest, lines } = capture();
    createLogger('info', { destination: dest }).info({ topic: 't' }, 'hello');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({ service: 'kafka-onnx-scorer', version: pkg.version, level: 'info', topic: 't', msg: 'hello' });
    expect(new Date(String(line?.time)).toISOString()).toBe(line?.time);
  });

  it('honours the level', () => {
    const { dest, lines } = capture();
    const log = createLogger('warn', { destination: dest });
    log.info('dropped');
    log.warn('kept');
    expect(lines.map((l) => l.msg)).toEqual(['kept']);
    const silent = capture();
    createLogger('silent', { destination: silent.dest }).fatal('nothing');
    expect(silent.lines).toHaveLength(0);
  });

  it('redacts secrets wherever configs, clients and requests carry them', () => {
    const { dest, raw, lines } = capture();
    const log = createLogger('info', { destination: dest });
    log.info({ password: SECRET }, 'top level');
    log.info({ sasl: { mechanism: 'plain', username: 'u', password: SECRET } }, 'sasl');
    log.info({ config: { kafka: { sasl: { password: SECRET }, ssl: { key: SECRET } }, registry: { auth: { username: 'r', password: SECRET } } } }, 'config');
    log.info({ registry: { auth: { password: SECRET } } }, 'registry');
    log.info({ req: { headers: { authorization: `Basic ${SECRET}`, 'proxy-authorization': SECRET } } }, 'request');
    log.info({ headers: { authorization: `Bearer ${SECRET}` } }, 'headers');
    expect(raw).toHaveLength(6);
    for (const line of raw) expect(line).not.toContain(SECRET);
    expect(lines[1]).toMatchObject({ sasl: { mechanism: 'plain', username: 'u', password: '[redacted]' } });
    expect(lines[4]).toMatchObject({ req: { headers: { authorization: '[redacted]' } } });
  });

  it('leaves record keys alone: they are data, not secrets', () => {
    const { dest, lines } = capture();
    createLogger('info', { destination: dest }).info({ key: 'customer-42' }, 'record');
    expect(lines[0]?.key).toBe('customer-42');
  });
});

describe('stageLogger', () => {
  it('binds the stage and extra fields on every line', () => {
    const { dest, lines } = capture();
    const log = stageLogger(createLogger('debug', { destination: dest }), 'produce', { topic: 'scores', partition: 3 });
    log.debug({ offset: '17' }, 'committed');
    expect(lines[0]).toMatchObject({ stage: 'produce', topic: 'scores', partition: 3, offset: '17', service: 'kafka-onnx-scorer' });
  });
});

describe('flushLogger', () => {
  it('resolves once an asynchronous destination has written everything', async () => {
    const file = join(dir, 'async.log');
    const dest = pino.destination({ dest: file, sync: false, minLength: 1 });
    await new Promise((resolve) => dest.once('ready', resolve));
    const log = createLogger('info', { destination: dest });
    for (let i = 0; i < 2_000; i++) log.info({ i }, 'x'.repeat(200));
    await flushLogger(log);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2_000);
    dest.end();
  });

  it('resolves on a destination without flush', async () => {
    await expect(flushLogger(createLogger('info', { destination: capture().dest }))).resolves.toBeUndefined();
  });

  it('treats fsync EINVAL (stdout is a pipe) as flushed, and rejects other errors', async () => {
    const failing = (code: string): DestinationStream & { flush(cb: (err?: Error) => void): void } => ({
      write: () => undefined,
      flush: (cb) => cb(Object.assign(new Error(code), { code })),
    });
    await expect(flushLogger(createLogger('info', { destination: failing('EINVAL') }))).resolves.toBeUndefined();
    await expect(flushLogger(createLogger('info', { destination: failing('EIO') }))).rejects.toThrow('EIO');
  });
});
