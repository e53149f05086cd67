/**
 * Reads the per-project summary test/summary-reporter.ts wrote and fails the run unless every
 * broker line of the integration suite (test/integration/lines.ts) actually ran tests: a skipped,
 * todo or missing integration test is a failure, not a pass. Prints each project's counts and
 * time, and the plain closing line "N passed, N failed, N skipped".
 */
import { readFileSync } from 'node:fs';
import { BROKER_LINES } from '../test/integration/lines.js';
import { type ProjectSummary, TEST_SUMMARY_FILE } from '../test/summary-reporter.js';

const file = process.argv[2] ?? TEST_SUMMARY_FILE;
const projects = JSON.parse(readFileSync(file, 'utf8')) as ProjectSummary[];
const problems: string[] = [];
for (const { project } of BROKER_LINES) {
  const s = projects.find((p) => p.project === project);
  if (s === undefined || s.passed + s.failed === 0) problems.push(`no integration test ran on line ${project}`);
}
const sum = (k: 'passed' | 'failed' | 'skipped') => projects.reduce((n, p) => n + p[k], 0);
const [passed, failed, skipped] = [sum('passed'), sum('failed'), sum('skipped')];
if (skipped > 0) problems.push(`${skipped} test(s) skipped or todo`);
if (failed > 0) problems.push(`${failed} test(s) failed`);
for (const p of projects) {
  console.log(`${p.project}${p.brokerLine === undefined ? '' : ` against ${p.brokerLine}`}: ${p.passed} passed, ${p.failed} failed, ${p.skipped} skipped in ${p.seconds} s`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (problems.length > 0) {
  console.error(`test run rejected: ${problems.join('; ')}`);
  process.exit(1);
}
