/** Child-process helpers for the local stack: run a command to completion, start and stop a detached daemon by pid. */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export class StackError extends Error {
  override name = 'StackError';
}

interface RunOptions {
  cwd: string;
  /** What the command does, for the error message. */
  what: string;
  /** What the user should do when it fails. */
  hint: string;
}

/** Runs a command to completion; on failure throws a StackError with the tail of its output and a hint. */
export function run(cmd: string, args: string[], { cwd, what, hint }: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => {
      const missing = err.code === 'ENOENT' ? ` (\`${cmd}\` is not on PATH)` : '';
      reject(new StackError(`${what} failed: ${err.message}${missing}. ${hint}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new StackError(`${what} failed (exit ${code}):\n${out.trim().split('\n').slice(-15).join('\n')}\n${hint}`));
    });
  });
}

/** Starts `java args` detached from this process, output appended to logFile; returns its pid. */
export function startDaemon(args: string[], cwd: string, logFile: string): number {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn('java', args, { cwd, detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new StackError(`could not start java in ${cwd}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** True if pid is alive and its command line carries our marker (so a recycled pid is never ours). */
export function isOurs(pid: number, marker: string): boolean {
  const cmdline = `/proc/${pid}/cmdline`;
  if (!existsSync(cmdline)) return false;
  try {
    return readFileSync(cmdline, 'utf8').split('\0').includes(marker);
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to graceMs for exit, then SIGKILL (graceMs 0: SIGKILL at once). Resolves when the process is gone. */
export async function stopPid(pid: number, marker: string, graceMs = 20_000): Promise<'stopped' | 'killed' | 'gone'> {
  if (!isOurs(pid, marker)) return 'gone';
  if (graceMs > 0) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isOurs(pid, marker)) return 'stopped';
    await sleep(100);
  }
  process.kill(pid, 'SIGKILL');
  while (isOurs(pid, marker)) await sleep(50);
  return 'killed';
}

/** Resolves true if nothing listens on 127.0.0.1:port. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Polls check() until it returns true or the deadline passes; `alive` aborts early when the process died. */
export async function waitUntil(check: () => Promise<boolean>, alive: () => boolean, timeoutMs: number): Promise<'ready' | 'died' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) return 'died';
    if (await check().catch(() => false)) return 'ready';
    await sleep(250);
  }
  return 'timeout';
}
