/**
 * Process entry: with no arguments the stream scorer (main.ts); `backfill` and `score-file` are
 * jobs that end by themselves (src/serve/); `models check <dir>` validates a model repository. Exits with the command's code (0 ok, 1 crash, 2 config).
 */
import { main } from './main.js';

const [command, ...args] = process.argv.slice(2);
const COMMANDS: Record<string, () => Promise<number>> = {
  backfill: async () => (await import('./serve/backfill-command.js')).backfillCommand(args),
  'score-file': async () => (await import('./serve/score-file-command.js')).scoreFileCommand(args),
  // `models check` (model/check.ts) is loaded only when asked for: the scorer's start-up pays nothing for it.
  models: async () => (await import('./model/check.js')).modelsCommand(args),
};

let code: number;
if (command === undefined) {
  code = await main();
} else if (COMMANDS[command] !== undefined) {
  code = await COMMANDS[command]();
} else {
  process.stderr.write(`kafka-onnx-scorer: unknown command '${command}'; expected none (the stream scorer), ${Object.keys(COMMANDS).join(' or ')}\n`);
  code = 2;
}
// kafkajs and onnxruntime keep timers and threads alive after a clean stop; exit explicitly.
process.exit(code);
