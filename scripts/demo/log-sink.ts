/**
 * One log file for a demo run (.stack/logs/demo-<run>.log): the scorer's pino lines, kafkajs's
 * and any stray console output, so nothing breaks the live display. Counts warnings on the way
 * for the summary.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { format } from 'node:util';
import { type logCreator, logLevel } from 'kafkajs';

export class LogSink {
  readonly path: string;
  /** Warnings and errors, apart from the scorer's expected notice for each chunk with dead letters. */
  warnings = 0;
  deadLetterNotices = 0;
  readonly #stream: WriteStream;

  constructor(path: string) {
    mkdirSync(resolve(path, '..'), { recursive: true });
    this.path = path;
    this.#stream = createWriteStream(path, { flags: 'a' });
  }

  /** pino's DestinationStream: one JSON line per call. */
  write(line: string): void {
    if (/^\{"level":"(warn|error|fatal)"/.test(line)) {
      if (line.includes('"msg":"records dead-lettered"')) this.deadLetterNotices += 1;
      else this.warnings += 1;
    }
    this.#stream.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  entry(level: 'info' | 'warn' | 'error', source: string, msg: string, extra: Record<string, unknown> = {}): void {
    this.write(JSON.stringify({ level, time: new Date().toISOString(), source, msg, ...extra }));
  }

  kafkaLogCreator(): logCreator {
    return () => ({ namespace, level, log }) => {
      const { message, ...extra } = log;
      this.entry(level === logLevel.ERROR ? 'error' : level === logLevel.WARN ? 'warn' : 'info', 'demo-kafkajs', message, { namespace, ...extra });
    };
  }

  /**
   * Library output that bypasses our loggers (the load generator's kafkajs client logs through
   * console) would tear the live display: send it to the file while the display runs.
   */
  captureConsole(): () => void {
    const c = console as unknown as Record<'log' | 'info' | 'warn' | 'error' | 'debug', (...args: unknown[]) => void>;
    const saved = { log: c.log, info: c.info, warn: c.warn, error: c.error, debug: c.debug };
    for (const name of Object.keys(saved) as (keyof typeof saved)[]) {
      c[name] = (...args: unknown[]) => this.entry(name === 'error' ? 'error' : name === 'warn' ? 'warn' : 'info', 'console', format(...args));
    }
    return () => Object.assign(c, saved);
  }

  close(): Promise<void> {
    return new Promise((r) => this.#stream.end(r));
  }
}
