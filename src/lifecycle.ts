/**
 * The service's shutdown order: a stack of cleanup steps pushed as each part starts, run in
 * reverse (last started, first stopped) once, within a deadline. A failing step is logged and
 * the rest still run: a broker that is gone must not keep the inference workers alive.
 */
import type { Logger } from 'pino';

export class Lifecycle {
  readonly #log: Logger;
  readonly #steps: { name: string; run: () => Promise<unknown> }[] = [];
  #stopping: Promise<boolean> | undefined;

  constructor(logger: Logger) {
    this.#log = logger;
  }

  /** Registers how to stop what just started. */
  onStop(name: string, run: () => Promise<unknown>): void {
    this.#steps.push({ name, run });
  }

  /** Runs every step in reverse order; resolves true when all finished within deadlineMs. Idempotent. */
  stop(deadlineMs: number): Promise<boolean> {
    this.#stopping ??= this.#stop(deadlineMs);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs)));
    const clean = await Promise.race([this.#runAll().then(() => true as const), timedOut]);
    clearTimeout(timer);
    return clean;
  }

  async #runAll(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      await step.run().catch((err: unknown) => this.#log.warn({ err, step: step.name }, 'cleanup step failed'));
    }
  }
}
