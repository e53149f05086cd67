/**
 * Building one local image with podman, cached by the hash of its inputs: the hash is stored in
 * the image as a label, and an image whose label matches is kept as it is (no build at all, not
 * even a context upload). Inputs are files (their paths and bytes), pinned versions and the
 * parent image's hash, so changing any of them, or a parent, rebuilds exactly what depends on it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { podmanEnv } from './engine.js';
import { ROOT, run, secondsSince } from './run.js';

export const INPUTS_LABEL = 'io.kafka-onnx-scorer.inputs';

/** Files under `paths` (files or directories, relative to ROOT or absolute), sorted, recursively. */
export function filesOf(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    if (!existsSync(p)) throw new Error(`image input ${relative(ROOT, p)} does not exist`);
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else out.push(p);
  };
  for (const p of paths) walk(resolve(ROOT, p));
  return out.sort();
}

/**
 * sha256 over the pins and every file's path and bytes. Paths inside the checkout count relative
 * to it and others (the machine's CA bundle) as they are, so every clone of the same commit on
 * one machine gets the same hashes and reuses the same images.
 */
export function inputHash(files: string[], pins: Record<string, string>): string {
  const h = createHash('sha256');
  for (const [k, v] of Object.entries(pins).sort(([a], [b]) => a.localeCompare(b))) h.update(`pin ${k}=${v}\n`);
  for (const f of files) h.update(`file ${f.startsWith(ROOT) ? relative(ROOT, f) : f}\n`).update(readFileSync(f)).update('\n');
  return h.digest('hex').slice(0, 32);
}

/** The image's id and inputs label, or undefined when there is no such image. */
export async function inspectImage(tag: string): Promise<{ id: string; inputs: string; size: number } | undefined> {
  const r = await run('podman', ['image', 'inspect', '--format', `{{.Id}} {{.Size}} {{index .Labels "${INPUTS_LABEL}"}}`, tag], { echo: false, allowFail: true, env: podmanEnv() });
  if (r.code !== 0) return undefined;
  const [id = '', size = '0', inputs = ''] = r.stdout.trim().split(' ');
  return { id, inputs, size: Number(size) };
}

export interface BuildResult {
  tag: string;
  /** Seconds spent; 0 when the cached image was kept. */
  seconds: number;
  cached: boolean;
  sizeBytes: number;
}

/**
 * Keeps `tag` when its inputs label equals `hash`, else runs `build` (which must label the new
 * image with `hash`) and removes the image it replaced, if nothing else uses it.
 */
export async function cachedBuild(tag: string, hash: string, build: () => Promise<void>): Promise<BuildResult> {
  const before = await inspectImage(tag);
  if (before?.inputs === hash) return { tag, seconds: 0, cached: true, sizeBytes: before.size };
  const started = Date.now();
  console.log(`compose-images: building ${tag}${before ? ' (inputs changed)' : ''}`);
  await build();
  const after = await inspectImage(tag);
  if (after?.inputs !== hash) throw new Error(`${tag}: the build did not produce an image labelled with its inputs`);
  if (before && before.id !== after.id) await run('podman', ['rmi', before.id], { echo: false, allowFail: true, env: podmanEnv() });
  const seconds = secondsSince(started);
  console.log(`compose-images: built ${tag} in ${seconds} s, ${Math.round(after.size / 1e6)} MB`);
  return { tag, seconds, cached: false, sizeBytes: after.size };
}

export interface PodmanBuild {
  tag: string;
  hash: string;
  containerfile: string;
  context: string;
  target?: string;
  args?: Record<string, string>;
}

/**
 * `podman build` in Docker image format: the OCI format has no HEALTHCHECK, and the scorer's
 * must survive. `--pull=never`: every base is local; a missing one is an error, not a download.
 */
export async function podmanBuild(b: PodmanBuild): Promise<void> {
  const args = ['build', '--format', 'docker', '--pull=never', '--layers', '-f', b.containerfile, '-t', b.tag, '--label', `${INPUTS_LABEL}=${b.hash}`];
  if (b.target) args.push('--target', b.target);
  for (const [k, v] of Object.entries(b.args ?? {})) args.push('--build-arg', `${k}=${v}`);
  await run('podman', [...args, b.context], { env: podmanEnv() });
}
