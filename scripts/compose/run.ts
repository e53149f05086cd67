/** Child processes and polling for the compose scripts (compose-images, compose-e2e). */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A check of the end-to-end test or a build step failed: the message says which and why. */
export class CheckFailed extends Error {}

export interface RunOptions {
  /** Echo stdout and stderr (default); otherwise stderr is kept for the error message only. */
  echo?: boolean;
  /** Resolve with the exit code instead of rejecting on a non-zero exit. */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin, then closed. */
  input?: NodeJS.ReadableStream;
}

/** Runs a command; resolves its stdout (and the tail of its stderr), rejects (CheckFailed) on a non-zero exit unless `allowFail`. */
export function run(cmd: string, args: string[], o: RunOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const echo = o.echo ?? true;
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, stdio: [o.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (o.input && child.stdin) o.input.pipe(child.stdin);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (echo) process.stdout.write(b);
    });
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
      if (echo) process.stderr.write(b);
    });
    child.on('error', fail);
    child.on('close', (code) => {
      if (code === 0 || o.allowFail) done({ code: code ?? 1, stdout, stderr });
      else fail(new CheckFailed(`\`${cmd} ${args.join(' ')}\` exited with ${code}${echo ? '' : `: ${stderr.trim().split('\n').slice(-5).join(' / ')}`}`));
    });
  });
}

/** True when `cmd` can be started (it is on PATH). */
export async function available(cmd: string, args = ['--version']): Promise<boolean> {
  return run(cmd, args, { echo: false, allowFail: true }).then((r) => r.code === 0, () => false);
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 2_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new CheckFailed(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/** Seconds since `startedMs`, one decimal. */
export const secondsSince = (startedMs: number): number => Math.round((Date.now() - startedMs) / 100) / 10;
