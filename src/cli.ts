/** Process entry: runs main() (or `models check`, model/check.ts) and exits with its code (see main.ts for the codes). */
import { main } from './main.js';

const args = process.argv.slice(2);
// `models check` is loaded only when asked for: the scorer's start-up pays nothing for it.
const code = args[0] === 'models' ? await (await import('./model/check.js')).modelsCommand(args.slice(1)) : await main();
// kafkajs and onnxruntime keep timers and threads alive after a clean stop; exit explicitly.
process.exit(code);
