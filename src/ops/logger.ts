/**
 * Structured JSON logs (pino): one root logger per process, one child per stage carrying
 * {stage} plus topic/partition/batch bindings, secrets redacted by path before serialisation.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { PACKAGE_NAME as name, SCORER_VERSION as version } from '../version.js';

export type { Logger };

/**
 * Paths pino (fast-redact) censors. Wildcards match one level only, hence the explicit deep
 * paths for the config shapes that carry credentials. Record keys are data, not secrets: no `key`.
 */
export const REDACT_PATHS: readonly string[] = [
  'password',
  '*.password',
  '*.*.password',
  'sasl.password',
  'kafka.sasl.password',
  'config.kafka.sasl.password',
  'registry.auth.password',
  'config.registry.auth.password',
  'auth.password',
  'ssl.key',
  'kafka.ssl.key',
  'config.kafka.ssl.key',
  'authorization',
  'headers.authorization',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers["proxy-authorization"]',
];

export interface LoggerOptions {
  /** Where lines go; default stdout through an asynchronous SonicBoom (flush with flushLogger). */
  destination?: DestinationStream;
}

export function createLogger(level: LevelWithSilent, { destination }: LoggerOptions = {}): Logger {
  // sync:false keeps log writes off the hot path; the cost is that exit must flush (flushLogger).
  // minLength 1 still writes every line at once, but makes flush() wait for the write to drain
  // (with 0, sonic-boom calls the flush callback immediately, even with a write in flight).
  const dest = destination ?? pino.destination({ dest: 1, sync: false, minLength: 1 });
  return pino(
    {
      level,
      base: { service: name, version },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Labels rather than numbers: log queries read `level:"error"`, not `level:50`.
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    dest,
  );
}

/** A child logger for one pipeline stage, e.g. stageLogger(root, 'produce', { topic, partition }). */
export function stageLogger(root: Logger, stage: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ stage, ...bindings });
}

/** Resolves once buffered lines are written: call it last on shutdown, before process.exit. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    logger.flush((err) => {
      // After draining, sonic-boom fsyncs, which pipes and ttys (a container's stdout) refuse with
      // EINVAL: the lines were written all the same (https://github.com/pinojs/sonic-boom/issues/189).
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      if (err && code !== 'EINVAL' && code !== 'ENOTSUP') reject(err);
      else resolve();
    });
  });
}
