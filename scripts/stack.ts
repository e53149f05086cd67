/** CLI for the local stack: `tsx scripts/stack.ts up|down|status` (npm run stack:up / stack:down / stack:status). */
import { StackError, stackDown, stackStatus, stackUp } from './stack/stack.js';

const command = process.argv[2];
try {
  switch (command) {
    case 'up':
      await stackUp();
      break;
    case 'down':
      await stackDown();
      break;
    case 'status':
      process.exitCode = stackStatus() ? 0 : 1;
      break;
    default:
      console.error('usage: tsx scripts/stack.ts up|down|status');
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
