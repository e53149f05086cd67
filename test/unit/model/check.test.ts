// `kafka-onnx-scorer models check`: passes models/churn, names each failing version with its
// reason and exits 1, checks a deployment file against the repository, exits 2 on bad usage.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { type CheckReport, modelsCommand } from '../../../src/model/check.js';
import { repoPath, tempDir } from '../../helpers/fixtures.js';
import { tempRepository } from '../../helpers/repository.js';

// Genuinely slow, not racy: each check opens and warms up every version's session; one test runs
// the CLI as a child process. 30 s for this file only (that one 60 s).
vi.setConfig({ testTimeout: 30_000 });

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const sink = (write: (s: string) => void) => new Writable({ write: (chunk: Buffer, _enc, done) => (write(chunk.toString()), done()) });
  const code = await modelsCommand(argv, sink((s) => (out += s)), sink((s) => (err += s)));
  return { code, out, err };
}

describe('models check', () => {
  it('passes the churn repository: each version loads, fits its schema and warms up', async () => {
    const { code, out } = await run('check', repoPath('models/churn'));
    expect(code).toBe(0);
    expect(out).toMatch(/^ok {4}1\.0\.0 {2}churn {2}sha256 e052769f8f3f {2}14 features {2}default reader schema {2}loaded and warmed up in \d+ ms$/m);
    expect(out).toMatch(/^ok {4}1\.1\.0 {2}churn {2}sha256 [0-9a-f]{12} /m);
    expect(out).toContain('2 of 2 versions ok; without MODEL_DEPLOYMENT 1.1.0 serves\n');
  });

  it('names every failing version with its reason and exits 1', async () => {
    const dir = tempRepository(['1.0.0', '1.3.0-nowarmup', '1.4.0-misfit']);
    writeFileSync(join(dir, 'NOTES.txt'), '');
    const { code, out } = await run('check', dir);
    expect(code).toBe(1);
    expect(out).toMatch(/^FAIL {2}1\.3\.0-nowarmup {2}version 1\.3\.0-nowarmup fails its warm-up inference: warm-up inference failed: .*Gather/m);
    expect(out).toContain('FAIL  1.4.0-misfit  version 1.4.0-misfit does not fit its reader schema: MODEL_REPOSITORY: model churn reads features.loyalty_points, which the reader schema does not have\n');
    expect(out).toContain('note  NOTES.txt: not a directory, not a version\n');
    expect(out).toContain('1 of 3 versions ok; without MODEL_DEPLOYMENT 1.0.0 serves\n');
  });

  it('checks a deployment file against the repository, and answers JSON', async () => {
    const dir = tempRepository();
    const file = join(tempDir('scorer-check-'), 'deployment.json');
    writeFileSync(file, JSON.stringify({ stable: '1.0.0', canary: { version: '1.2.0', percent: 10 } }));
    const { code, out } = await run('check', dir, '--deployment', file, '--json');
    expect(code).toBe(1);
    const report = JSON.parse(out) as CheckReport;
    expect(report.versions.map((v) => [v.version, v.ok])).toEqual([['1.0.0', true], ['1.1.0', true]]);
    expect(report.deployment).toEqual({ file, ok: false, reason: `MODEL_DEPLOYMENT: ${file}: canary.version: no version "1.2.0" in the repository (it has 1.0.0, 1.1.0)` });
    writeFileSync(file, JSON.stringify({ stable: '1.0.0', canary: { version: '1.1.0', percent: 10 } }));
    expect((await run('check', dir, '--deployment', file)).code).toBe(0);
  });

  it('exits 1 for a directory that is no repository, 2 for bad usage', async () => {
    const missing = await run('check', '/nonexistent/repo');
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/^FAIL {2}MODEL_REPOSITORY: expected a directory of version folders, got \/nonexistent\/repo/);
    for (const argv of [[], ['check'], ['chek', 'models/churn'], ['check', 'a', 'b'], ['check', 'a', '--deployment'], ['check', 'a', '--yes']]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toBe('usage: kafka-onnx-scorer models check <repository-dir> [--deployment <file>] [--json]\n');
    }
  });

  it('is the `models check` of the kafka-onnx-scorer command', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', repoPath('src/cli.ts'), 'models', 'check', repoPath('test/fixtures/rollout')], {
      cwd: repoPath(''), env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8', timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('ok    1.2.0-flaky');
    expect(r.stdout).toContain('FAIL  1.3.0-nowarmup');
  }, 60_000); // a child process that loads onnxruntime: slow on a busy machine
});
