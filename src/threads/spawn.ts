/**
 * Starts a worker thread running a module of this package, compiled or as TypeScript source.
 * Compiled (dist/…/x.js), directly. As the .ts source (vitest, tsx), the worker needs tsx's loader
 * first, and Node 20 ignores ESM loaders in a Worker's execArgv (nodejs/node#47747, fixed in 22.2;
 * privatenumber/tsx#354): a tiny eval'd bootstrap registers tsx inside the worker, then imports the module.
 * Used by the inference workers (stages/infer/worker.ts) and the pipeline threads (threads/supervisor.ts).
 */
import { Worker } from 'node:worker_threads';

export function spawnModule(moduleUrl: string, workerData: unknown): Worker {
  if (!moduleUrl.endsWith('.ts')) return new Worker(new URL(moduleUrl), { workerData });
  // Resolved here: an eval'd worker resolves bare specifiers from the cwd, not from this package.
  const tsxApi = typeof import.meta.resolve === 'function' ? import.meta.resolve('tsx/esm/api') : 'tsx/esm/api';
  const boot = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
