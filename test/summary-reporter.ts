/**
 * A vitest reporter that writes, per project, how many tests passed, failed or were skipped, how
 * long its files took, and which broker the project ran against (the `brokerLine` its global setup provided), to
 * TEST_SUMMARY_FILE; scripts/check-tests.ts reads it. vitest's own JSON report names files, not
 * projects, and every broker line runs the same files, so it cannot tell the lines apart.
 */
import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

export const TEST_SUMMARY_FILE = '.test-summary.json';

export interface ProjectSummary {
  project: string;
  /** Undefined for projects without a broker (unit). */
  brokerLine?: string;
  passed: number;
  failed: number;
  /** Skipped, todo, or never run. */
  skipped: number;
  /** Seconds spent in this project's files (tests and hooks), summed: what a line costs CI. */
  seconds: number;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const byProject = new Map<string, ProjectSummary>();
    for (const m of modules) {
      const project = m.project.name;
      let s = byProject.get(project);
      if (s === undefined) {
        s = { project, brokerLine: m.project.getProvidedContext().brokerLine, passed: 0, failed: 0, skipped: 0, seconds: 0 };
        byProject.set(project, s);
      }
      const d = m.diagnostic();
      s.seconds = Math.round((s.seconds + (d.collectDuration + d.setupDuration + d.duration) / 1000) * 10) / 10;
      for (const t of m.children.allTests()) {
        const { state } = t.result();
        if (state === 'passed') s.passed += 1;
        else if (state === 'failed') s.failed += 1;
        else s.skipped += 1;
      }
    }
    writeFileSync(TEST_SUMMARY_FILE, `${JSON.stringify([...byProject.values()], null, 2)}\n`);
  }
}
