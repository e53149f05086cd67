/**
 * Which container engine runs the compose stack, and how to drive it.
 *
 * - `docker`: a Docker engine answers `docker info`: the official images, `docker compose` (v2).
 * - `podman`: no Docker engine (these machines): podman 4.3 from Debian, the images that
 *   `npm run compose:images` builds, docker-compose 1.29 talking to `podman system service`
 *   on a socket of our own (compose 1.29 is what Debian 12 packages; it drives any engine that
 *   speaks the Docker API).
 * COMPOSE_ENGINE=docker|podman forces one.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckFailed, ROOT, available, run, waitFor } from './run.js';

export type EngineKind = 'docker' | 'podman';

/** What the podman mode needs, as Debian packages (the commands they bring are checked first). */
const PODMAN_PACKAGES: Record<string, string> = { podman: 'podman', 'docker-compose': 'docker-compose', debootstrap: 'debootstrap', runc: 'runc' };

/** podman's settings for this project: runc, and ulimits the VM can grant (see the file). */
export const podmanEnv = (): NodeJS.ProcessEnv => ({ ...process.env, CONTAINERS_CONF: resolve(ROOT, 'deploy/compose-local/containers.conf') });

export async function detectEngine(): Promise<EngineKind> {
  const forced = process.env.COMPOSE_ENGINE;
  if (forced !== undefined && forced !== 'docker' && forced !== 'podman') {
    throw new UsageError(`COMPOSE_ENGINE: expected docker or podman, got '${forced}'`);
  }
  if (forced) return forced;
  return (await available('docker', ['info', '--format', '{{.ServerVersion}}'])) ? 'docker' : 'podman';
}

/** Bad arguments or an unusable machine: exit 2. */
export class UsageError extends Error {}

/**
 * Makes sure podman, docker-compose, debootstrap and runc are installed: a no-op (a few `--version`
 * calls) when they are, else one `apt-get install` (as root), so a fresh CI machine gets them.
 */
export async function ensurePodmanTools(): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of Object.entries(PODMAN_PACKAGES)) if (!(await available(cmd))) missing.push(pkg);
  if (missing.length === 0) return;
  const install = `apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0 || !(await available('apt-get'))) {
    throw new UsageError(`no Docker engine, and podman mode needs ${missing.join(', ')}: run \`${install}\` (as root), or use a machine with Docker`);
  }
  const started = Date.now();
  console.log(`compose: installing ${missing.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-qq'], { env, echo: false });
  await run('apt-get', ['install', '-y', '-qq', ...missing], { env, echo: false });
  console.log(`compose: installed in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** `podman system service` on a private socket, for docker-compose; stop() ends exactly that process. */
export interface PodmanService {
  /** DOCKER_HOST for docker-compose. */
  dockerHost: string;
  stop(): Promise<void>;
}

export async function startPodmanService(dir: string): Promise<PodmanService> {
  mkdirSync(dir, { recursive: true });
  const socket = resolve(dir, 'podman.sock');
  rmSync(socket, { force: true });
  const child: ChildProcess = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { env: podmanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => void (stderr = (stderr + b.toString()).slice(-2000)));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(socket, { force: true });
  };
  try {
    await waitFor('podman system service to answer', 30_000, async () => {
      if (child.exitCode !== null) throw new CheckFailed(`podman system service exited with ${child.exitCode}: ${stderr.trim()}`);
      return (await ping(socket)) ? true : undefined;
    }, 250);
  } catch (err) {
    await stop();
    throw err;
  }
  return { dockerHost: `unix://${socket}`, stop };
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((done) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2_000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
