/** What every step of a demo run after start-up works with, in one object. */
import type { Kafka } from 'kafkajs';
import type { StackInfo } from '../stack/stack.js';
import type { Terminal } from './format.js';
import type { DemoScorer } from './in-process-scorer.js';
import type { Interrupts } from './interrupts.js';
import type { LogSink } from './log-sink.js';
import type { Monitor } from './monitor.js';
import type { Options } from './options.js';
import type { Production } from './production.js';
import type { RunNames } from './runs.js';

export interface DemoRun {
  opts: Options;
  term: Terminal;
  interrupts: Interrupts;
  stack: StackInfo;
  names: RunNames;
  log: LogSink;
  kafka: Kafka;
  scorer: DemoScorer;
  monitor: Monitor;
  production: Production;
  /** When producing started (Date.now()): the live display's clock. */
  startedAt: number;
}
