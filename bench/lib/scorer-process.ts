/**
 * The scorer under test as a child process (`node dist/cli.js`), so its RSS and CPU are its own:
 * start it with an environment, wait for /readyz, scrape /metrics, sample its memory every
 * 250 ms, and stop it with SIGTERM, checking the exit code.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Scrape, parseProm } from './prom.js';
import { memoryOf } from './system.js';

import { freePort } from '../../test/helpers/net.js';

export { freePort };

export interface RssSample {
  at: number;
  rss: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ScorerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly pid: number;
  readonly logFile: string;
  readonly rss: RssSample[] = [];
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  #sampler: NodeJS.Timeout;

  private constructor(child: ChildProcess, port: number, logFile: string) {
    this.child = child;
    this.port = port;
    this.pid = child.pid as number;
    this.logFile = logFile;
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r((this.#exit = { code, signal }))));
    this.#sampler = setInterval(() => {
      const m = memoryOf(this.pid);
      if (m !== undefined) this.rss.push({ at: performance.now(), rss: m.rss });
    }, 250);
    this.#sampler.unref();
  }

  /** Spawns `node [nodeArgs] dist/cli.js` in `root` with `env` (on top of PATH/HOME), stdout+stderr to `logFile`. */
  static async start(root: string, env: Record<string, string>, logFile: string, nodeArgs: string[] = []): Promise<ScorerProcess> {
    const port = await freePort();
    const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: process.env.LANG };
    const fd = openSync(logFile, 'a');
    try {
      const child = spawn(process.execPath, [...nodeArgs, resolve(root, 'dist/cli.js')], {
        cwd: root,
        env: { ...base, ...env, HTTP_PORT: String(port), HTTP_HOST: '127.0.0.1' },
        stdio: ['ignore', fd, fd],
      });
      if (child.pid === undefined) throw new Error('the scorer did not start (no pid)');
      return new ScorerProcess(child, port, logFile);
    } finally {
      closeSync(fd); // the child has its own copy
    }
  }

  get exitStatus(): Exit | undefined {
    return this.#exit;
  }

  async #get(path: string, timeoutMs = 2_000): Promise<{ status: number; text: string }> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text() };
  }

  /** Resolves once /readyz answers 200; rejects if the process exits or `timeoutMs` passes. */
  async waitReady(timeoutMs = 60_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (this.#exit !== undefined) throw new Error(`the scorer exited before it was ready (code ${this.#exit.code}, signal ${this.#exit.signal}); see ${this.logFile}`);
      try {
        if ((await this.#get('/readyz', 500)).status === 200) return performance.now();
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`the scorer was not ready within ${timeoutMs} ms; see ${this.logFile}`);
  }

  async metrics(): Promise<Scrape> {
    const { status, text } = await this.#get('/metrics', 5_000);
    if (status !== 200) throw new Error(`/metrics answered ${status}`);
    return parseProm(text);
  }

  /** Peak RSS so far (VmHWM), while the process lives. */
  peakRss(): number | undefined {
    return memoryOf(this.pid)?.hwm;
  }

  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 30_000): Promise<Exit & { ms: number; killed: boolean }> {
    const started = performance.now();
    clearInterval(this.#sampler);
    if (this.#exit === undefined) this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const exit = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (exit !== undefined) return { ...exit, ms: Math.round(performance.now() - started), killed: false };
    this.child.kill('SIGKILL');
    return { ...(await this.exited), ms: Math.round(performance.now() - started), killed: true };
  }
}
