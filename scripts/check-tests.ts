/**
 * Reads vitest's JSON report and fails the run unless integration tests actually ran: a skipped,
 * todo or missing integration test is a failure, not a pass. Prints the plain closing line
 * "N passed, N failed, N skipped".
 */
import { readFileSync } from 'node:fs';

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { name: string; assertionResults: { status: string }[] }[];
}

const file = process.argv[2] ?? '.test-results.json';
const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
const integration = report.testResults.filter((f) => f.name.includes('/test/integration/')).flatMap((f) => f.assertionResults);
const ran = integration.filter((a) => a.status === 'passed' || a.status === 'failed').length;
const skipped = report.numPendingTests + report.numTodoTests;
const problems: string[] = [];
if (ran === 0) problems.push('no integration test ran');
if (skipped > 0) problems.push(`${skipped} test(s) skipped or todo`);
if (report.numFailedTests > 0) problems.push(`${report.numFailedTests} test(s) failed`);
console.log(`integration tests executed: ${ran}`);
console.log(`${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
if (problems.length > 0) {
  console.error(`test run rejected: ${problems.join('; ')}`);
  process.exit(1);
}
