/** Process entry: runs main() and exits with its code (see main.ts for the codes). */
import { main } from './main.js';

const code = await main();
// kafkajs and onnxruntime keep timers and threads alive after a clean stop; exit explicitly.
process.exit(code);
