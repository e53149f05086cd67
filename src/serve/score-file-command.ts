/** `kafka-onnx-scorer score-file <in> <out> [--errors <path>]` (serve/score-file.ts does the work). */
import { existsSync } from 'node:fs';
import { EXIT } from '../main.js';
import { chooseModel } from './model-choice.js';
import { createMetrics } from '../ops/metrics.js';
import { Registry } from 'prom-client';
import { UsageError, parse, printSummary, runJob } from './command.js';
import { readSchema, startEngine } from './engine.js';
import { Progress } from './progress.js';
import { formatOf, scoreFile } from './score-file.js';

export const SCORE_FILE_USAGE = `usage: kafka-onnx-scorer score-file <in> <out> [--errors <path>]

Scores a file of feature events with MODEL_PATH's model and writes the scored events in the same
format: Avro object container files (.avro) or Parquet (.parquet). Bad rows are not scored; each
is one JSON line (row, code, message) in the sidecar file, <out>.errors.jsonl unless --errors.
Needs MODEL_PATH (BATCH_*, INFER_*, LOG_LEVEL apply); no Kafka or registry variables.
Exit: 0 done (bad rows included), 1 failed, 2 bad arguments or configuration.
`;

/** Variables score-file does without: it reads files, not Kafka. */
const NOT_REQUIRED = ['KAFKA_BROKERS', 'INPUT_TOPIC', 'OUTPUT_TOPIC', 'DLQ_TOPIC', 'SCHEMA_REGISTRY_URL'];

export async function scoreFileCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let input = '';
  let output = '';
  let errors: string | undefined;
  let help = false;
  const prepare = () => {
    const { values, positionals } = parse(args, { errors: { type: 'string' } }, 2);
    help = values.help === true;
    if (help) return;
    [input, output] = positionals as [string, string];
    errors = values.errors as string | undefined;
    if (!existsSync(input)) throw new UsageError(`<in>: no such file: ${input}`);
    if (formatOf(input) === undefined) throw new UsageError(`<in>: expected a .avro or .parquet file, got ${input}`);
    if (formatOf(output) !== formatOf(input)) throw new UsageError(`<out>: expected a .${formatOf(input)} file (the input's format), got ${output}`);
  };
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SCORE_FILE_USAGE);
    return EXIT.ok;
  }
  return runJob('score-file', SCORE_FILE_USAGE, env, { notRequired: NOT_REQUIRED }, async ({ config, logger }) => {
    const model = chooseModel(config);
    const engine = await startEngine({ config, model, metrics: createMetrics(new Registry()), logger });
    const progress = new Progress({ job: 'score-file', out: process.stderr });
    progress.start();
    try {
      const summary = await scoreFile({ input, output, ...(errors !== undefined && { errors }), engine, outputSchema: readSchema('schemas/scored-event.avsc', 'output'), onProgress: (s) => progress.update(s) });
      progress.stop();
      printSummary({ ...summary, model: { name: model.manifest.name, version: model.manifest.version }, peakRssBytes: process.resourceUsage().maxRSS * 1024 });
      return EXIT.ok;
    } finally {
      await engine.scorer.close(config.infer.closeTimeoutMs);
    }
  }, prepare);
}
