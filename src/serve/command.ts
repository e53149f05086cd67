/**
 * What the job subcommands (`backfill`, `score-file`) share: argument parsing with node:util,
 * configuration from the same environment as the stream, logs to stderr (stdout carries only the
 * final JSON summary), progress, and the process's exit codes (main.ts): 0 done, 1 failed,
 * 2 bad arguments or configuration, before anything is read or connected.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pino, { type Logger } from 'pino';
import { type Config, type LoadConfigOptions, loadConfig } from '../config.js';
import { ScorerError } from '../errors.js';
import { EXIT } from '../main.js';
import { createLogger, flushLogger } from '../ops/logger.js';

/** Bad usage: the message goes to stderr with the usage text, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(args: string[], options: Options, positionals: number): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (parsed.values.help !== true && parsed.positionals.length !== positionals) {
    throw new UsageError(`expected ${positionals} argument${positionals === 1 ? '' : 's'}, got ${parsed.positionals.length}${parsed.positionals.length ? ` (${parsed.positionals.join(' ')})` : ''}`);
  }
  return parsed as { values: Record<string, string | boolean | undefined>; positionals: string[] };
}

export interface JobContext {
  config: Config;
  logger: Logger;
}

/**
 * Runs a job subcommand with the exit-code contract: UsageError and CONFIG_INVALID -> 2 (with the
 * usage text or the variable named), any other failure -> 1, logged; otherwise the job's own code.
 */
export async function runJob(
  name: string,
  usage: string,
  env: NodeJS.ProcessEnv,
  configOptions: LoadConfigOptions,
  job: (ctx: JobContext) => Promise<number>,
  /** Parses the arguments (throwing UsageError); may return variables the flags set (OUTPUT_TOPIC from --output-topic). */
  prepare?: () => Record<string, string> | void,
): Promise<number> {
  let config: Config;
  try {
    const fromFlags = prepare?.() ?? {};
    config = loadConfig({ ...env, ...fromFlags }, configOptions);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kafka-onnx-scorer ${name}: ${err.message}\n\n${usage}`);
      return EXIT.config;
    }
    if (err instanceof ScorerError && err.code === 'CONFIG_INVALID') {
      process.stderr.write(`kafka-onnx-scorer ${name}: invalid configuration\n${err.message}\n`);
      return EXIT.config;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, { destination: pino.destination({ dest: 2, sync: false, minLength: 1 }) });
  try {
    return await job({ config, logger });
  } catch (err) {
    if (err instanceof UsageError || (err instanceof ScorerError && err.code === 'CONFIG_INVALID')) {
      logger.fatal({ code: 'CONFIG_INVALID' }, err.message);
      process.stderr.write(`kafka-onnx-scorer ${name}: ${err.message}\n`);
      return EXIT.config;
    }
    logger.fatal({ err }, `${name} failed`);
    return EXIT.crash;
  } finally {
    await flushLogger(logger).catch(() => undefined);
  }
}

/** The one line a job prints on stdout when it ends. */
export function printSummary(summary: object): void {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
