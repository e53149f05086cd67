/**
 * CLI for the local stack: `tsx scripts/stack.ts up|down|status` (npm run stack:up / stack:down /
 * stack:status). `up --json` says what it does on stderr and prints the StackInfo as one JSON line
 * on stdout, for a program that drives the stack (test/integration/global-setup.ts).
 */
import { StackError, stackDown, stackStatus, stackUp } from './stack/stack.js';

const [command, flag] = process.argv.slice(2);
try {
  switch (command) {
    case 'up':
      if (flag === '--json') console.log(JSON.stringify(await stackUp((line) => console.error(line))));
      else await stackUp();
      break;
    case 'down':
      await stackDown();
      break;
    case 'status':
      process.exitCode = stackStatus() ? 0 : 1;
      break;
    default:
      console.error('usage: tsx scripts/stack.ts up [--json]|down|status');
      process.exitCode = 2;
  }
} catch (err) {
  if (err instanceof StackError) {
    console.error(`stack: ${err.message}`);
    process.exitCode = 1;
  } else {
    throw err;
  }
}
