// Summarises V8 CPU profiles (.cpuprofile, as `node --cpu-prof` writes them): self time by
// category and by function, and the scorer's own functions by inclusive time.
//
//   npx tsx bench/profile-summary.ts <file-or-directory>... [--top 25]
//
// `npm run bench -- --profile` writes one profile per scorer thread under bench/results/ and
// prints this summary itself; this script re-reads them (or any other profile).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatProfile, summarizeProfile } from './lib/cpuprofile.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '20' } } });
if (positionals.length === 0) {
  console.error('usage: npx tsx bench/profile-summary.ts <file.cpuprofile | directory>... [--top 20]');
  process.exit(2);
}
const files = positionals.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(p, f)) : [p]));
for (const f of files) console.log(`${formatProfile(summarizeProfile(f, Number(values.top)))}\n`);
